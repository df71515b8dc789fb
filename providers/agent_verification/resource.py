"""The Pulumi resource class users write in their programs."""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import Resource

from providers.agent_verification.provider import AgentVerificationProvider
from providers.framework.adoption import refuse_import


class AgentVerification(Resource, module="windows", name="AgentVerification"):
    """Fails, naming the likely cause, when the agent does not answer from its own host; make it depend on every
    resource of the agent. ``status`` and ``served_thumbprint`` are what the last check saw."""

    status: pulumi.Output[int]
    served_thumbprint: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        connection: pulumi.Input[dict[str, Any]],
        hosting: pulumi.Input[str],
        url: pulumi.Input[str],
        runtime_path: pulumi.Input[str],
        app_file: pulumi.Input[str],
        identity: pulumi.Input[str],
        host_name: pulumi.Input[str] = "",
        port: pulumi.Input[int] = 443,
        ip_address: pulumi.Input[str] = "*",
        path: pulumi.Input[str] = "/",
        expect_body: pulumi.Input[str] = "",
        expected_thumbprint: pulumi.Input[str] = "",
        site_name: pulumi.Input[str] = "",
        pool_name: pulumi.Input[str] = "",
        service_name: pulumi.Input[str] = "",
        key_thumbprints: pulumi.Input[list[pulumi.Input[str]]] | None = None,
        runtime_family: pulumi.Input[str] = "8.0",
        wait_seconds: pulumi.Input[int] = 60,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "connection": connection,
            "hosting": hosting,
            "url": url,
            "host_name": host_name,
            "port": port,
            "ip_address": ip_address,
            "path": path,
            "expect_body": expect_body,
            "expected_thumbprint": expected_thumbprint,
            "site_name": site_name,
            "pool_name": pool_name,
            "service_name": service_name,
            "runtime_path": runtime_path,
            "app_file": app_file,
            "identity": identity,
            "key_thumbprints": key_thumbprints or [],
            "runtime_family": runtime_family,
            "wait_seconds": wait_seconds,
            "answers": True,
            "status": None,
            "served_thumbprint": None,
            "problem": None,
            "causes": None,
        }
        refuse_import("AgentVerification", resource_name, opts)
        super().__init__(AgentVerificationProvider(), resource_name, props, opts)

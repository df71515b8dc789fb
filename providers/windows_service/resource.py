"""The Pulumi resource class users write in their programs."""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import Resource

from providers.framework.adoption import refuse_import
from providers.framework.ownership import owner_id
from providers.windows_service.model import WindowsServiceModel
from providers.windows_service.provider import WindowsServiceProvider


class WindowsService(Resource, module="windows", name="WindowsService"):
    """A Windows service running the agent (``sc.exe create`` of the manual, without a password on any command line).

    The password, when given, is always wrapped as a Pulumi secret.
    """

    name: pulumi.Output[str]
    service_sid: pulumi.Output[str | None]
    account_sid: pulumi.Output[str | None]
    image_path: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        connection: pulumi.Input[dict[str, Any]],
        name: pulumi.Input[str],
        binary_path: pulumi.Input[str],
        arguments: pulumi.Input[list[str]] | None = None,
        display_name: pulumi.Input[str] | None = None,
        start_type: pulumi.Input[str] = "Automatic",
        account: pulumi.Input[str] = "LocalSystem",
        password: pulumi.Input[str] | None = None,
        description: pulumi.Input[str] = "",
        failure_actions: pulumi.Input[dict[str, Any]] | None = None,
        state: pulumi.Input[str] = "Running",
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        defaults = WindowsServiceModel.model_fields
        props: dict[str, Any] = {
            "connection": connection,
            "name": name,
            "display_name": display_name,
            "binary_path": binary_path,
            "arguments": arguments if arguments is not None else defaults["arguments"].default,
            "start_type": start_type,
            "account": account,
            "password": pulumi.Output.secret(password) if password is not None else None,
            "description": description,
            "failure_actions": failure_actions
            if failure_actions is not None
            else defaults["failure_actions"].default.model_dump(mode="json"),
            "state": state,
            "owner": owner_id("windows:WindowsService", resource_name, opts),
            "service_sid": None,
            "account_sid": None,
            "image_path": None,
        }
        hidden = sorted(WindowsServiceModel.secret_keys())
        secret_opts = pulumi.ResourceOptions(additional_secret_outputs=hidden)
        refuse_import("WindowsService", resource_name, opts)
        super().__init__(
            WindowsServiceProvider(), resource_name, props, pulumi.ResourceOptions.merge(opts, secret_opts)
        )

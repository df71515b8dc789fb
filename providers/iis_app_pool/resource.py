"""The Pulumi resource class users write in their programs."""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import Resource

from providers.framework.adoption import refuse_import
from providers.iis_app_pool.model import IisAppPoolModel
from providers.iis_app_pool.provider import IisAppPoolProvider


class IisAppPool(Resource, module="windows", name="IisAppPool"):
    """An IIS application pool; defaults follow the manual (No Managed Code, AlwaysRunning, no idle time-out,
    user profile loaded, no periodic recycling, ApplicationPoolIdentity).

    ``identity_account`` is the account to grant rights to (``IIS APPPOOL\\<name>`` for the built-in identity).
    """

    name: pulumi.Output[str]
    identity_account: pulumi.Output[str]
    identity_sid: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        connection: pulumi.Input[dict[str, Any]],
        name: pulumi.Input[str],
        managed_runtime_version: pulumi.Input[str] = "",
        pipeline_mode: pulumi.Input[str] = "Integrated",
        start_mode: pulumi.Input[str] = "AlwaysRunning",
        idle_timeout_minutes: pulumi.Input[int] = 0,
        load_user_profile: pulumi.Input[bool] = True,
        periodic_restart_minutes: pulumi.Input[int] = 0,
        identity_type: pulumi.Input[str] = "ApplicationPoolIdentity",
        identity_user: pulumi.Input[str] | None = None,
        identity_password: pulumi.Input[str] | None = None,
        state: pulumi.Input[str] = "Started",
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        if identity_password is not None:
            identity_password = pulumi.Output.secret(identity_password)
        props: dict[str, Any] = {
            "connection": connection,
            "name": name,
            "managed_runtime_version": managed_runtime_version,
            "pipeline_mode": pipeline_mode,
            "start_mode": start_mode,
            "idle_timeout_minutes": idle_timeout_minutes,
            "load_user_profile": load_user_profile,
            "periodic_restart_minutes": periodic_restart_minutes,
            "identity_type": identity_type,
            "identity_user": identity_user,
            "identity_password": identity_password,
            "state": state,
            "identity_account": None,
            "identity_sid": None,
        }
        secrets = pulumi.ResourceOptions(additional_secret_outputs=sorted(IisAppPoolModel.secret_keys()))
        refuse_import("IisAppPool", resource_name, opts)
        super().__init__(IisAppPoolProvider(), resource_name, props, pulumi.ResourceOptions.merge(opts, secrets))

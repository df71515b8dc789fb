"""The Pulumi resource class users write in their programs."""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import Resource

from providers.framework.adoption import refuse_import
from providers.hosting_bundle.provider import HostingBundleProvider


class HostingBundle(Resource, module="windows", name="HostingBundle"):
    """The .NET Hosting Bundle on one host: installed or repaired when the host needs it, skipped otherwise.

    Declare it after the Web-Server feature (the installer adds AspNetCoreModuleV2 only to an IIS that is there)
    and before the agents' sites. ``restart_pending`` says the installer asked for a restart that nobody did yet;
    ``machine_restart_pending`` that the host waits for one for any reason (other software's pending file renames,
    component servicing): information only, never this resource's drift.
    """

    installed_version: pulumi.Output[str]
    netcore_installed_version: pulumi.Output[str]
    aspnetcore_module_present: pulumi.Output[bool]
    restart_pending: pulumi.Output[bool]
    machine_restart_pending: pulumi.Output[bool]
    last_action: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        connection: pulumi.Input[dict[str, Any]],
        source_path: pulumi.Input[str],
        installer_name: pulumi.Input[str],
        sha256: pulumi.Input[str],
        size: pulumi.Input[int],
        version: pulumi.Input[str],
        install_timeout_s: pulumi.Input[int] = 480,
        restart: pulumi.Input[bool] = False,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "connection": connection,
            "source_path": source_path,
            "installer_name": installer_name,
            "sha256": sha256,
            "size": size,
            "version": version,
            "install_timeout_s": install_timeout_s,
            "restart": restart,
            "installed": True,
            "installed_version": None,
            "netcore_installed_version": None,
            "aspnetcore_module_present": None,
            "restart_pending": None,
            "machine_restart_pending": None,
            "last_action": None,
            "exit_code": None,
        }
        refuse_import("HostingBundle", resource_name, opts)
        super().__init__(HostingBundleProvider(), resource_name, props, opts)

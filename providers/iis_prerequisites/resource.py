"""The Pulumi resource class users write in their programs."""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import Resource

from providers.framework.adoption import refuse_import
from providers.iis_prerequisites.provider import IisPrerequisitesProvider


class IisPrerequisites(Resource, module="windows", name="IisPrerequisites"):
    """Fails with the manual's remedy when the host lacks IIS 10+, the hosting bundle (>= minimum) or the
    AspNetCoreModuleV2 module; make the IIS site depend on it. Changes nothing on the host."""

    iis_version: pulumi.Output[str]
    hosting_bundle_version: pulumi.Output[str]
    aspnetcore_module_present: pulumi.Output[bool]

    def __init__(
        self,
        resource_name: str,
        *,
        connection: pulumi.Input[dict[str, Any]],
        minimum_hosting_bundle: pulumi.Input[str] = "8.0",
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "connection": connection,
            "minimum_hosting_bundle": minimum_hosting_bundle,
            "iis_version": None,
            "hosting_bundle_version": None,
            "aspnetcore_module_present": None,
        }
        refuse_import("IisPrerequisites", resource_name, opts)
        super().__init__(IisPrerequisitesProvider(), resource_name, props, opts)

"""The Pulumi resource class users write in their programs."""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import Resource

from providers.framework.adoption import refuse_import
from providers.windows_feature.provider import WindowsFeatureProvider


class WindowsFeature(Resource, module="windows", name="WindowsFeature"):
    """Windows Server roles and features, installed with Install-WindowsFeature (Windows Server only).

    Deleting the resource leaves the features installed unless ``uninstall_on_delete=True``.
    """

    names: pulumi.Output[list[str]]
    installed: pulumi.Output[list[str]]
    restart_pending: pulumi.Output[bool]

    def __init__(
        self,
        resource_name: str,
        *,
        connection: pulumi.Input[dict[str, Any]],
        names: pulumi.Input[list[str]],
        include_management_tools: pulumi.Input[bool] = False,
        uninstall_on_delete: pulumi.Input[bool] = False,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "connection": connection,
            "names": names,
            "include_management_tools": include_management_tools,
            "uninstall_on_delete": uninstall_on_delete,
            "installed": None,
            "restart_pending": None,
        }
        refuse_import("WindowsFeature", resource_name, opts)
        super().__init__(WindowsFeatureProvider(), resource_name, props, opts)

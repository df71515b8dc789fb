"""The Pulumi resource class users write in their programs."""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import Resource

from providers.framework.adoption import refuse_import
from providers.iis_default_site_removal.provider import IisDefaultSiteRemovalProvider


class IisDefaultSiteRemoval(Resource, module="windows", name="IisDefaultSiteRemoval"):
    """Removes IIS's 'Default Web Site' and 'DefaultAppPool' (the manual removes them before creating the agent's
    site, freeing port 80). Destroy restores what it removed: pool and site as IIS created them (id 1 when free,
    http *:80:, %SystemDrive%\\inetpub\\wwwroot)."""

    removed_site: pulumi.Output[bool]
    removed_pool: pulumi.Output[bool]

    def __init__(
        self,
        resource_name: str,
        *,
        connection: pulumi.Input[dict[str, Any]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props: dict[str, Any] = {"connection": connection, "removed_site": None, "removed_pool": None}
        refuse_import("IisDefaultSiteRemoval", resource_name, opts)
        super().__init__(IisDefaultSiteRemovalProvider(), resource_name, props, opts)

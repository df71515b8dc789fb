"""The Pulumi resource class users write in their programs."""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import Resource

from providers.framework.adoption import refuse_import
from providers.framework.ownership import owner_id
from providers.iis_default_site_removal.provider import IisDefaultSiteRemovalProvider


class IisDefaultSiteRemoval(Resource, module="windows", name="IisDefaultSiteRemoval"):
    """Removes IIS's 'Default Web Site' and 'DefaultAppPool' (the manual removes them before creating the agent's
    site, freeing port 80). Each resource holds a share of the removal, recorded on the host; destroying the last
    one puts back what was removed, as it was (its id when free, bindings and certificates, settings, state)."""

    removed_site: pulumi.Output[bool]
    removed_pool: pulumi.Output[bool]

    def __init__(
        self,
        resource_name: str,
        *,
        connection: pulumi.Input[dict[str, Any]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "connection": connection,
            "owner": owner_id("windows:IisDefaultSiteRemoval", resource_name, opts),
            "removed_site": None,
            "removed_pool": None,
        }
        refuse_import("IisDefaultSiteRemoval", resource_name, opts)
        super().__init__(IisDefaultSiteRemovalProvider(), resource_name, props, opts)

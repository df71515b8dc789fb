"""The IisDefaultSiteRemoval properties (none but the connection: the names are IIS's own)."""

from __future__ import annotations

from typing import Any

from providers.framework.model import ResourceModel, prop

DEFAULT_SITE = "Default Web Site"
DEFAULT_POOL = "DefaultAppPool"


class IisDefaultSiteRemovalModel(ResourceModel):
    """The site and pool IIS creates on installation, removed (install-agents-saas-full-guide: Configure the Pool
    and Site, step 1). Destroying the last resource that asked for it puts back what was removed, as it was."""

    kind = "IisDefaultSiteRemoval"

    owner: str = prop(
        "",
        description="Set by the resource, not by you: the id it records on the host as one of the removal's "
        "owners (organization and URN). Destroy puts the site and pool back, as they were when removed, only "
        "when the last owner goes. A new id (a renamed stack or resource, or a state from before owners were "
        "recorded on the host) is an update that moves the record to it.",
    )

    def resource_id(self) -> str:
        return f"{DEFAULT_SITE}|{DEFAULT_POOL}"

    def script_input(self) -> dict[str, Any]:
        # What the state says this resource removed: the provider sets these on update and delete.
        return {
            "site_name": DEFAULT_SITE,
            "pool_name": DEFAULT_POOL,
            "owner": self.owner,
            "previous_owner": "",
            "restore_site": False,
            "restore_pool": False,
        }

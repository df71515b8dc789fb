"""The IisDefaultSiteRemoval properties (none but the connection: the names are IIS's own)."""

from __future__ import annotations

from typing import Any

from providers.framework.model import ResourceModel

DEFAULT_SITE = "Default Web Site"
DEFAULT_POOL = "DefaultAppPool"


class IisDefaultSiteRemovalModel(ResourceModel):
    """The site and pool IIS creates on installation, removed (install-agents-saas-full-guide: Configure the Pool
    and Site, step 1). Destroying the resource puts back what it removed, as IIS created it."""

    kind = "IisDefaultSiteRemoval"

    def resource_id(self) -> str:
        return f"{DEFAULT_SITE}|{DEFAULT_POOL}"

    def script_input(self) -> dict[str, Any]:
        # remove.ps1 restores only what this resource removed; the provider sets these on delete.
        return {"site_name": DEFAULT_SITE, "pool_name": DEFAULT_POOL, "restore_site": False, "restore_pool": False}

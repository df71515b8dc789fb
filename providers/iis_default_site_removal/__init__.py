"""IisDefaultSiteRemoval: the 'Default Web Site' and 'DefaultAppPool' removed (manual); destroy restores them."""

from providers.iis_default_site_removal.model import IisDefaultSiteRemovalModel
from providers.iis_default_site_removal.resource import IisDefaultSiteRemoval

__all__ = ["IisDefaultSiteRemoval", "IisDefaultSiteRemovalModel"]

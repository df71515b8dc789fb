"""IisSite: one IIS site (root application, physical path, pool, bindings with their certificates)."""

from providers.iis_site.model import BindingModel, IisSiteModel
from providers.iis_site.resource import IisSite

__all__ = ["BindingModel", "IisSite", "IisSiteModel"]

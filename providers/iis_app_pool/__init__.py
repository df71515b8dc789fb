"""IisAppPool: one IIS application pool, configured as the manual requires (No Managed Code, AlwaysRunning...)."""

from providers.iis_app_pool.model import IisAppPoolModel
from providers.iis_app_pool.resource import IisAppPool

__all__ = ["IisAppPool", "IisAppPoolModel"]

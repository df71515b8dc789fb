"""WindowsService: the agent as a Windows service (the manual's sc.exe create), password never on a command line."""

from providers.windows_service.model import WindowsServiceModel
from providers.windows_service.resource import WindowsService

__all__ = ["WindowsService", "WindowsServiceModel"]

"""IisPrerequisites: read-only check of IIS >= 10, the hosting bundle and AspNetCoreModuleV2."""

from providers.iis_prerequisites.model import IisPrerequisitesModel
from providers.iis_prerequisites.resource import IisPrerequisites

__all__ = ["IisPrerequisites", "IisPrerequisitesModel"]

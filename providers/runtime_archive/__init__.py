"""RuntimeArchive: the vendor's runtime archive, uploaded in chunks and extracted into Runtime."""

from providers.runtime_archive.model import RuntimeArchiveModel
from providers.runtime_archive.resource import RuntimeArchive

__all__ = ["RuntimeArchive", "RuntimeArchiveModel"]

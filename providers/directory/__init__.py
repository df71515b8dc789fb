"""Directory: a folder and its named sub-folders, created when missing; never emptied unless asked."""

from providers.directory.model import DirectoryModel
from providers.directory.resource import Directory

__all__ = ["Directory", "DirectoryModel"]

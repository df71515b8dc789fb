"""FileAcl: one account's explicit NTFS access entry on a folder or file; everything else on the ACL stays."""

from providers.file_acl.model import FileAclModel
from providers.file_acl.resource import FileAcl

__all__ = ["FileAcl", "FileAclModel"]

"""The runtime archive as it is on the machine that runs Pulumi: checked to be a zip, hashed
(providers.framework.upload).

Nothing here talks to a host. The stack loader uses ``inspect_archive`` to refuse a missing file or a
wrong SHA-256 before any host is contacted.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from providers.framework.upload import LocalFile, LocalFileRefused, existing_file, hashed

ArchiveFile = LocalFile


class ArchiveRefused(LocalFileRefused):
    """The local archive cannot be used; the message says why and what to do."""


def inspect_archive(path: str | Path) -> ArchiveFile:
    """The archive's name, size and SHA-256; refused when it is missing, empty or not a zip file."""
    resolved, stat = existing_file(path, ArchiveRefused, "the vendor's runtime archive (.zip)")
    if stat.st_size == 0:
        raise ArchiveRefused(f"file {str(path)!r} is empty; download the vendor's runtime archive again")
    if not zipfile.is_zipfile(resolved):
        raise ArchiveRefused(f"file {str(path)!r} is not a zip archive; give the vendor's runtime archive (.zip)")
    return hashed(resolved, stat)

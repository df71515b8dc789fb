"""The runtime archive as it is on the machine that runs Pulumi: checked, hashed and read in chunks.

Nothing here talks to a host. The stack loader uses ``inspect_archive`` to refuse a missing file or a
wrong SHA-256 before any host is contacted; the provider uses ``read_chunks`` to upload it.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

_READ_BLOCK = 1024 * 1024


class ArchiveRefused(ValueError):
    """The local archive cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class ArchiveFile:
    path: str  # absolute
    name: str  # the file name, what previews show
    size: int
    sha256: str  # lower-case hex


def inspect_archive(path: str | Path) -> ArchiveFile:
    """The archive's name, size and SHA-256; refused when it is missing, empty or not a zip file."""
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        raise ArchiveRefused(f"file {str(path)!r} does not exist; give the path of the vendor's runtime archive (.zip)")
    stat = resolved.stat()
    if stat.st_size == 0:
        raise ArchiveRefused(f"file {str(path)!r} is empty; download the vendor's runtime archive again")
    if not zipfile.is_zipfile(resolved):
        raise ArchiveRefused(f"file {str(path)!r} is not a zip archive; give the vendor's runtime archive (.zip)")
    return _inspect(str(resolved), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=16)
def _inspect(path: str, size: int, mtime_ns: int) -> ArchiveFile:
    # Keyed on size and modification time too: a file replaced in place is hashed again.
    return ArchiveFile(path, os.path.basename(path), size, sha256_of(path))


def sha256_of(path: str | Path, length: int | None = None) -> str:
    """SHA-256 of the file, or of its first ``length`` bytes."""
    digest = hashlib.sha256()
    remaining = length
    with open(path, "rb") as handle:
        while remaining is None or remaining > 0:
            block = handle.read(_READ_BLOCK if remaining is None else min(_READ_BLOCK, remaining))
            if not block:
                break
            digest.update(block)
            if remaining is not None:
                remaining -= len(block)
    return digest.hexdigest()


def read_chunks(path: str | Path, offset: int, chunk_bytes: int) -> Iterator[tuple[int, bytes]]:
    """(offset, data) of every chunk from ``offset`` to the end of the file."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        while block := handle.read(chunk_bytes):
            yield offset, block
            offset += len(block)

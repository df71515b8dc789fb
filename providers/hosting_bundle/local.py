"""The hosting bundle installer as it is on the machine that runs Pulumi: checked, hashed and read in chunks.

Nothing here talks to a host. The stack loader uses ``inspect_installer`` to refuse a missing file before any
host is contacted; the provider uses ``read_chunks`` to upload it.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

_READ_BLOCK = 1024 * 1024
# Microsoft names the installer after the version it installs (dotnet.microsoft.com/download/dotnet/8.0:
# dotnet-hosting-8.0.11-win.exe); a name that says another version than the stack is a mistake worth a stop.
_MICROSOFT_NAME = re.compile(r"^dotnet-hosting-(?P<version>\d+\.\d+\.\d+)-win\.exe$", re.IGNORECASE)


class InstallerRefused(ValueError):
    """The local installer cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class InstallerFile:
    path: str  # absolute
    name: str  # the file name, what previews show
    size: int
    sha256: str  # lower-case hex


def inspect_installer(path: str | Path, version: str) -> InstallerFile:
    """The installer's name, size and SHA-256; refused when it is missing, empty, not a Windows executable, or
    named by Microsoft after another version than ``version``."""
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        raise InstallerRefused(
            f"file {str(path)!r} does not exist; give the path of the .NET Hosting Bundle installer you downloaded "
            "(dotnet-hosting-<version>-win.exe)"
        )
    stat = resolved.stat()
    with open(resolved, "rb") as handle:
        magic = handle.read(2)
    if stat.st_size == 0 or magic != b"MZ":
        raise InstallerRefused(
            f"file {str(path)!r} is not a Windows executable (no 'MZ' header); download the hosting bundle installer "
            "again from https://dotnet.microsoft.com/download/dotnet"
        )
    named = _MICROSOFT_NAME.match(resolved.name)
    if named and named.group("version") != version:
        raise InstallerRefused(
            f"{resolved.name} installs {named.group('version')}, not the version {version} the stack names; set "
            f"version to {named.group('version')} or give the installer of {version}"
        )
    return _inspect(str(resolved), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=8)
def _inspect(path: str, size: int, mtime_ns: int) -> InstallerFile:
    # Keyed on size and modification time too: a file replaced in place is hashed again.
    return InstallerFile(path, os.path.basename(path), size, sha256_of(path))


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

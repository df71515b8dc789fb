"""The hosting bundle installer as it is on the machine that runs Pulumi: checked to be Microsoft's installer of the
version the stack names, hashed (providers.framework.upload).

Nothing here talks to a host. The stack loader uses ``inspect_installer`` to refuse a missing file before any
host is contacted.
"""

from __future__ import annotations

import re
from pathlib import Path

from providers.framework.upload import LocalFile, LocalFileRefused, existing_file, hashed

# Microsoft names the installer after the version it installs (dotnet.microsoft.com/download/dotnet/8.0:
# dotnet-hosting-8.0.11-win.exe); a name that says another version than the stack is a mistake worth a stop.
_MICROSOFT_NAME = re.compile(r"^dotnet-hosting-(?P<version>\d+\.\d+\.\d+)-win\.exe$", re.IGNORECASE)

InstallerFile = LocalFile


class InstallerRefused(LocalFileRefused):
    """The local installer cannot be used; the message says why and what to do."""


def inspect_installer(path: str | Path, version: str) -> InstallerFile:
    """The installer's name, size and SHA-256; refused when it is missing, empty, not a Windows executable, or
    named by Microsoft after another version than ``version``."""
    resolved, stat = existing_file(
        path, InstallerRefused, "the .NET Hosting Bundle installer you downloaded (dotnet-hosting-<version>-win.exe)"
    )
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
    return hashed(resolved, stat)

"""SIMULATOR: model of providers/scripting/ps/_owners.ps1, the owner records of shared host objects.

``%ProgramData%\\UsercubeIac\\Owners\\<kind>\\<key>\\owner-<hash>.json`` per owner and ``found.json`` (what the
object was before its first owner), in folders only SYSTEM and Administrators may use.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
from collections.abc import Iterator
from typing import Any

from devhost import ntfs
from devhost.fs import WindowsFs
from devhost.ops.envelope import OperationStopped, fail
from devhost.ps51 import ScriptFact

PROGRAM_DATA = "C:\\ProgramData"  # [Environment]::GetFolderPath('CommonApplicationData')
ADMIN_SIDS = ("S-1-5-18", "S-1-5-32-544")
# The named mutex 'Global\UsercubeIac-Owners': one for the whole host (the simulator is one process).
_HOST_MUTEX = threading.Lock()


def script_facts(operations: tuple[str, ...]) -> tuple[ScriptFact, ...]:
    """What the model below relies on in every script that includes _owners.ps1."""
    return (
        ScriptFact(
            operations,
            r"\[System\.IO\.Path\]::Combine\(\[Environment\]::GetFolderPath\('CommonApplicationData'\), "
            r"'UsercubeIac', 'Owners', \$Kind, \$Key\)",
            "owner records live in %ProgramData%\\UsercubeIac\\Owners\\<kind>\\<key>",
        ),
        ScriptFact(
            operations,
            r"\[void\]\[System\.IO\.Directory\]::CreateDirectory\(\$path, \(New-OwnersFolderSecurity\)\)",
            "each records folder is created with owner Administrators and a protected SYSTEM/Administrators DACL "
            "in the same call (Directory.CreateDirectory(String, DirectorySecurity))",
        ),
        ScriptFact(
            operations,
            r"New-Object System\.Threading\.Mutex\(\$false, 'Global\\UsercubeIac-Owners'\)",
            "ownership decisions of every process on the host are serialised by one named system mutex",
        ),
        ScriptFact(
            operations,
            r'\.Substring\(0, 32\)\s+return \[System\.IO\.Path\]::Combine\(\$Folder, "owner-\$hex\.json"\)',
            "an owner's record is owner-<32 hex digits of the SHA-256 of its id>.json",
        ),
        ScriptFact(
            operations,
            r"@\((Read-OwnerRecords|Get-CertificateBindings|Get-ReadersOfOthers)\b",
            "these functions return ,$array (one pipeline object, ps51.function_output): @(...) around the call "
            "would wrap it in another array, whose Count is always 1, and the model counts the records themselves",
            present=False,
        ),
    )


@contextlib.contextmanager
def host_lock() -> Iterator[None]:
    """Enter-OwnersLock / Exit-OwnersLock."""
    with _HOST_MUTEX:
        yield


def folder(kind: str, key: str) -> str:
    """Get-OwnersFolder."""
    return f"{PROGRAM_DATA}\\UsercubeIac\\Owners\\{kind}\\{key}"


def _levels(path: str) -> list[str]:
    kind = path.rsplit("\\", 1)[0]
    owners = kind.rsplit("\\", 1)[0]
    return [owners.rsplit("\\", 1)[0], owners, kind, path]


def _admin_only() -> ntfs.Descriptor:
    """New-OwnersFolderSecurity."""
    both = frozenset({ntfs.CONTAINER_INHERIT, ntfs.OBJECT_INHERIT})
    return ntfs.Descriptor(
        owner="S-1-5-32-544",
        protected=True,
        explicit=[ntfs.Ace(sid, ntfs.FULL_CONTROL, inheritance=both) for sid in ADMIN_SIDS],
    )


def _untrusted_reason(fs: WindowsFs, path: str) -> str | None:
    """Get-OwnersFolderUntrustedReason."""
    if fs.resolve(path).is_symlink():
        return "is a junction or symbolic link"
    descriptor = ntfs.NtfsStore(fs.root).descriptor(path)
    if descriptor.owner.upper() not in ADMIN_SIDS:
        return f"is owned by {descriptor.owner}, not by Administrators"
    if not descriptor.protected:
        return "inherits permissions"
    for ace in descriptor.explicit:
        if ace.sid.upper() not in ADMIN_SIDS:
            return f"grants {ace.sid} access"
    return None


def _untrusted(path: str, reason: str) -> OperationStopped:
    return OperationStopped(
        fail(
            "OwnersFolderUntrusted",
            f"the ownership records folder {path} {reason}; someone other than an administrator may have made or "
            "changed it: check it, delete it, then run again",
        )
    )


def initialize(fs: WindowsFs, path: str) -> None:
    """Initialize-OwnersFolder."""
    store = ntfs.NtfsStore(fs.root)
    for level in _levels(path):
        if not fs.resolve(level).is_dir():
            fs.resolve(level).mkdir(parents=True)
            store.set_descriptor(level, _admin_only())
            continue
        reason = _untrusted_reason(fs, level)
        if reason is None:
            continue
        if reason.startswith("is "):
            raise _untrusted(level, reason)
        store.set_descriptor(level, _admin_only())


def assert_trusted(fs: WindowsFs, path: str) -> None:
    """Assert-OwnersFolder."""
    for level in _levels(path):
        if not fs.resolve(level).is_dir():
            return
        reason = _untrusted_reason(fs, level)
        if reason is not None:
            raise _untrusted(level, reason)


def record_path(path: str, owner: str) -> str:
    """Get-OwnerRecordPath."""
    return f"{path}\\owner-{hashlib.sha256(owner.encode('utf-8')).hexdigest()[:32]}.json"


def found_path(path: str) -> str:
    return f"{path}\\found.json"


def read(fs: WindowsFs, path: str) -> Any:
    """Read-OwnersJson."""
    file = fs.resolve(path)
    return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else None


def write(fs: WindowsFs, path: str, value: Any) -> None:
    """Write-OwnersJson: written next to its place, then File.Replace (or File.Move the first time)."""
    temporary = fs.resolve(f"{path}.tmp")
    temporary.write_text(json.dumps(value, separators=(",", ":")), encoding="utf-8")
    os.replace(temporary, fs.resolve(path))


def exists(fs: WindowsFs, path: str) -> bool:
    return fs.resolve(path).exists()


def delete(fs: WindowsFs, path: str) -> None:
    fs.resolve(path).unlink(missing_ok=True)


def records(fs: WindowsFs, path: str) -> list[dict[str, Any]]:
    """Read-OwnerRecords."""
    directory = fs.resolve(path)
    if not directory.is_dir():
        return []
    return [
        json.loads(entry.read_text(encoding="utf-8"))
        for entry in sorted(directory.iterdir())
        if entry.name.lower().startswith("owner-") and entry.name.lower().endswith(".json")
    ]


def remove_folder(fs: WindowsFs, path: str) -> None:
    """Remove-OwnersFolder."""
    directory = fs.resolve(path)
    if directory.is_dir():
        shutil.rmtree(directory)
        ntfs.NtfsStore(fs.root).forget(path)

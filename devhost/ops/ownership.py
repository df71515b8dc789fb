"""SIMULATOR: model of providers/scripting/ps/_owners.ps1, the owner records of shared host objects.

``%ProgramData%\\UsercubeIac\\Owners\\<kind>\\<key>\\owner-<hash>.json`` per owner and ``found.json`` (what the
object was before its first owner), in folders only SYSTEM and Administrators may use.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from collections.abc import Iterator
from typing import Any

from devhost import named_mutex, ntfs
from devhost.fs import WindowsFs
from devhost.ops import host_mutex, staging
from devhost.ps51 import ScriptFact
from devhost.win32_files import delete_file, invoke_file_move, invoke_file_replace, temporary_name

PROGRAM_DATA = "C:\\ProgramData"  # [Environment]::GetFolderPath('CommonApplicationData')
ADMIN_SIDS = ("S-1-5-18", "S-1-5-32-544")
# _owners.ps1 Enter-OwnersLock: the named mutex 'Global\UsercubeIac-Owners', waited for 30 s at most.
OWNERS_MUTEX = "Global\\UsercubeIac-Owners"
LOCK_WAIT_S = 30.0


def script_facts(operations: tuple[str, ...]) -> tuple[ScriptFact, ...]:
    """What the model below relies on in every script that includes _owners.ps1."""
    return (
        ScriptFact(
            operations,
            r"\[System\.IO\.Path\]::Combine\(\[Environment\]::GetFolderPath\('CommonApplicationData'\), "
            r"'UsercubeIac', 'Owners', \$Kind, \$Key\)",
            "owner records live in %ProgramData%\\UsercubeIac\\Owners\\<kind>\\<key>",
        ),
        *staging.folder_facts(operations, operations),
        ScriptFact(
            operations,
            r"\$OwnersFolderTrust = New-FolderTrust 'OwnersFolderUntrusted' 'ownership records folder' ''",
            "the records folders' refusals say OwnersFolderUntrusted (ownership.OWNERS_TRUST)",
        ),
        ScriptFact(
            operations,
            r"\$OwnersMutexName = 'Global\\UsercubeIac-Owners'\s+\$OwnersLockWaitMs = 30000[\s\S]*"
            r"Enter-HostMutex -Name \$OwnersMutexName -WaitMs \$OwnersLockWaitMs [^\n]*-BusyId 'OwnersBusy'",
            "ownership decisions of every process on the host are serialised by one named system mutex, waited "
            "for 30 s at most (OwnersBusy)",
        ),
        *named_mutex.script_facts(operations),
        ScriptFact(
            operations,
            r"Invoke-FileReplace -Source \$temporary -Target \$Path -Backup \$backup",
            "a record is swapped in with a backup name: ReplaceFileW without one deletes the record on 1176 "
            "(learn.microsoft.com ReplaceFileW); the model runs the same retries (win32_files.invoke_file_replace)",
        ),
        ScriptFact(
            operations,
            r"\[System\.IO\.Directory\]::GetFiles\(\$Folder, 'owner-\*\.json'\)\.Length -gt 0\) \{ return \$true \}\s+"
            r"return \[System\.IO\.File\]::Exists\(\(Get-FoundRecordPath \$Folder\)\)",
            "recorded means an owner record or found.json exists, not merely the folder",
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
def host_lock(fs: WindowsFs) -> Iterator[None]:
    """Enter-OwnersLock / Exit-OwnersLock: OwnersBusy when another holder keeps it for the whole wait,
    OwnersLockDenied / HostLockUntrusted on a name another account took first."""
    with host_mutex.held(
        fs,
        OWNERS_MUTEX,
        LOCK_WAIT_S,
        what="ownership records",
        denied_id="OwnersLockDenied",
        busy_id="OwnersBusy",
        prop=None,
        queued="other operations on shared objects of this host were queued, or one is hung",
    ):
        yield


def folder(kind: str, key: str) -> str:
    """Get-OwnersFolder."""
    return f"{PROGRAM_DATA}\\UsercubeIac\\Owners\\{kind}\\{key}"


# The records folders' refusals (_owners.ps1 $OwnersFolderTrust); the folders themselves are _admin_folders.ps1's,
# modelled by devhost.ops.staging (owner trusted, every entry judged, planted entries removed on repair).
OWNERS_TRUST = staging.FolderTrust("OwnersFolderUntrusted", "ownership records folder")


def initialize(fs: WindowsFs, path: str) -> None:
    """Initialize-OwnersFolder: Initialize-TrustedFolder, every level from UsercubeIac down."""
    staging.initialize(fs, path, None, OWNERS_TRUST)


def assert_trusted(fs: WindowsFs, path: str) -> None:
    """Assert-OwnersFolder: Assert-TrustedFolder."""
    staging.assert_trusted(fs, path, None, OWNERS_TRUST)


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
    """Write-OwnersJson: written next to its place, then Invoke-FileReplace with a fresh backup name, deleted
    afterwards (or Invoke-FileMove the first time); ReplaceFileW's failures are devhost.win32_files'."""
    temporary = fs.resolve(f"{path}.tmp")
    temporary.write_text(json.dumps(value, separators=(",", ":")), encoding="utf-8")
    target = fs.resolve(path)
    if target.is_file():
        backup = temporary_name(target)
        invoke_file_replace(fs, temporary, target, backup)
        if backup.is_file():
            delete_file(fs, backup)
    else:
        invoke_file_move(fs, temporary, target)


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


def recorded(fs: WindowsFs, path: str) -> bool:
    """Test-OwnersRecorded: an owner record or found.json is there (an empty folder records nothing)."""
    directory = fs.resolve(path)
    if not directory.is_dir():
        return False
    names = [entry.name.lower() for entry in directory.iterdir() if entry.is_file()]
    return any(n.startswith("owner-") and n.endswith(".json") for n in names) or "found.json" in names


def remove_unused_folder(fs: WindowsFs, path: str) -> None:
    """Remove-UnusedOwnersFolder: a refused or failed set leaves no folder that records nothing."""
    if not recorded(fs, path):
        remove_folder(fs, path)


def remove_folder(fs: WindowsFs, path: str) -> None:
    """Remove-OwnersFolder."""
    directory = fs.resolve(path)
    if directory.is_dir():
        shutil.rmtree(directory)
        ntfs.NtfsStore(fs.root).forget(path)

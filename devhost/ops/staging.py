"""SIMULATOR: model of providers/scripting/ps/_upload.ps1 and _chunk.ps1, the staging folders and the chunked
upload the HostingBundle and RuntimeArchive scripts share (devhost.ops.hosting_bundle, devhost.ops.runtime_archive
give the folder and the setting an error names).

Owners and DACLs through devhost.ntfs, which starts from the DACLs Windows Server gives (%ProgramData% inherits
``C:\\``'s: BUILTIN\\Users may create folders and files, CREATOR OWNER gets full control of what they create).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from pathlib import Path
from typing import Any

from devhost import ntfs
from devhost.fileops import DotNetError, delete_file
from devhost.fs import WindowsFs
from devhost.ops.envelope import Envelope, OperationStopped, change, fail, succeed
from devhost.ps51 import ScriptFact

PROGRAM_DATA = "C:\\ProgramData"  # [Environment]::GetFolderPath('CommonApplicationData')
STAGING_TOP = f"{PROGRAM_DATA}\\UsercubeIac"
ADMIN_SIDS = ("S-1-5-18", "S-1-5-32-544")
ADMINISTRATORS = "S-1-5-32-544"


def script_facts(chunk: str, initialize: tuple[str, ...], every: tuple[str, ...]) -> tuple[ScriptFact, ...]:
    """The constructs of the shared includes this model relies on, for a resource's operations: ``chunk`` (its
    chunk script), ``initialize`` (those that create or check the folders), ``every`` (all that include them)."""
    return (
        ScriptFact(
            initialize,
            r"\[void\]\[System\.IO\.Directory\]::CreateDirectory\(\$path, \(New-AdminOnlySecurity\)\)",
            "each staging folder from %ProgramData%\\UsercubeIac down is created with owner Administrators and its "
            "protected SYSTEM/Administrators DACL in the same call (Directory.CreateDirectory(String, "
            "DirectorySecurity), .NET Framework); an existing one is checked instead (that call does nothing to it)",
        ),
        ScriptFact(
            every,
            r"\$top = \[System\.IO\.Path\]::Combine\(\[Environment\]::GetFolderPath\('CommonApplicationData'\), "
            r"'UsercubeIac'\)",
            "the levels checked start at %ProgramData%\\UsercubeIac, the parent Users could have made first",
        ),
        ScriptFact(
            every,
            r"\$security\.SetOwner\(\(New-Object System\.Security\.Principal\.SecurityIdentifier 'S-1-5-32-544'\)\)",
            "the staging folders are owned by Administrators",
        ),
        ScriptFact(
            every,
            r"if \(\$reason\.StartsWith\('is '\)\) \{ Stop-Untrusted \$path \$reason \$Property \}",
            "a staging folder that is a reparse point or owned by anyone else is refused, not repaired",
        ),
        ScriptFact(
            (chunk,),
            r"\$stream\.SetLength\(\$offset\)\s+\$stream\.Position = \$offset",
            "a chunk cuts the staging file to its offset before writing, so a chunk sent again lands where it did",
        ),
        ScriptFact(
            (chunk,),
            r"if \(\$offset -eq 0\) \{[^}]*foreach \(\$other in \[System\.IO\.Directory\]::GetFiles\(\$folder, "
            r"'upload-\*\.partial'\)\) \{\s+\[System\.IO\.File\]::Delete\(\$other\)",
            "the first chunk deletes every partial file of the folder, its own included: the file is made anew",
        ),
    )


def _stop(error_id: str, message: str, prop: str | None) -> OperationStopped:
    return OperationStopped(fail(error_id, message, prop=prop))


def admin_only() -> ntfs.Descriptor:
    """New-AdminOnlySecurity: owner Administrators, protected, SYSTEM and Administrators full control."""
    both = frozenset({ntfs.CONTAINER_INHERIT, ntfs.OBJECT_INHERIT})
    return ntfs.Descriptor(
        owner=ADMINISTRATORS,
        protected=True,
        explicit=[ntfs.Ace(sid, ntfs.FULL_CONTROL, inheritance=both) for sid in ADMIN_SIDS],
    )


def partial_path(folder: str, sha256: str) -> str:
    return f"{folder}\\upload-{sha256}.partial"


def staging_levels(folder: str) -> list[str]:
    """Get-StagingFolders: %ProgramData%\\UsercubeIac and each folder below it down to ``folder``."""
    assert folder.lower().startswith(STAGING_TOP.lower()), folder
    levels: list[str] = []
    path = folder
    while len(path) > len(STAGING_TOP):
        levels.insert(0, path)
        path = path.rsplit("\\", 1)[0]
    return [STAGING_TOP, *levels]


def untrusted_reason(fs: WindowsFs, path: str) -> str | None:
    """Get-UntrustedReason."""
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


def is_admin_only(fs: WindowsFs, path: str) -> bool:
    """Owned by SYSTEM or Administrators, protected, and every entry of SYSTEM or Administrators."""
    return untrusted_reason(fs, path) is None


def _untrusted(path: str, reason: str, prop: str | None) -> OperationStopped:
    return _stop(
        "StagingFolderUntrusted",
        f"the staging folder {path} {reason}; someone other than an administrator may have made or changed it: "
        "check it, delete it, then run again",
        prop,
    )


def initialize(fs: WindowsFs, folder: str, prop: str | None) -> None:
    """Initialize-AdminOnlyFolder."""
    store = ntfs.NtfsStore(fs.root)
    for path in staging_levels(folder):
        if not fs.resolve(path).is_dir():
            fs.resolve(path).mkdir(parents=True)  # (its parent, %ProgramData%, exists on Windows)
            store.set_descriptor(path, admin_only())
            continue
        reason = untrusted_reason(fs, path)
        if reason is None:
            continue
        if reason.startswith("is "):
            raise _untrusted(path, reason, prop)
        # SetAccessControl with an owner and a DACL: both are written (the sections the object sets).
        store.set_descriptor(path, admin_only())


def assert_trusted(fs: WindowsFs, folder: str, prop: str | None) -> None:
    """Assert-AdminOnlyFolder."""
    for path in staging_levels(folder):
        if not fs.resolve(path).is_dir():
            return
        reason = untrusted_reason(fs, path)
        if reason is not None:
            raise _untrusted(path, reason, prop)


def is_trusted(fs: WindowsFs, folder: str) -> bool:
    """Test-StagingTrusted (HostingBundle's get): every existing level is safe."""
    for path in staging_levels(folder):
        if not fs.resolve(path).is_dir():
            return True
        if untrusted_reason(fs, path) is not None:
            return False
    return True


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def _delete(fs: WindowsFs, path: str) -> None:
    """[System.IO.File]::Delete($path), outside any try: a failure ends the operation through the trap."""
    try:
        delete_file(fs, path)
    except DotNetError as error:
        raise OperationStopped(fail("UnexpectedError", error.called("Delete", 1), category="NotSpecified")) from None


def chunk(fs: WindowsFs, spec: dict[str, Any], folder: str, prop: str | None) -> Envelope:
    """_chunk.ps1 after Initialize-StagingFolder (``prop``: the setting its errors name)."""
    initialize(fs, folder, prop)
    partial = partial_path(folder, spec["sha256"])
    offset = int(spec["offset"])
    try:
        data = base64.b64decode(spec["data"], validate=True)
    except (binascii.Error, TypeError):
        message = (
            'Exception calling "FromBase64String" with "1" argument(s): "The input is not a valid Base-64 string as '
            "it contains a non-base 64 character, more than two padding characters, or an illegal character among "
            'the padding characters."'
        )
        return fail("UnexpectedError", message, category="NotSpecified")
    if offset == 0:
        for other in fs.resolve(folder).glob("upload-*.partial"):
            _delete(fs, f"{folder}\\{other.name}")
    target = fs.resolve(partial)
    target.touch()  # FileMode.OpenOrCreate: the file exists from here on, whatever follows
    held = target.stat().st_size
    if not (offset <= held and offset + len(data) <= int(spec["size"])):
        return fail(
            "UploadOutOfOrder",
            f"a chunk of {len(data)} bytes at offset {offset} does not follow the {held} bytes held of {spec['size']}; "
            "run the operation again (it continues from what the host holds)",
            prop="size",
        )
    # FileMode.OpenOrCreate, SetLength(offset), write at offset.
    with target.open("r+b") as handle:
        handle.truncate(offset)
        handle.seek(offset)
        handle.write(data)
    held = target.stat().st_size
    return succeed({"held_bytes": held}, [change("held_bytes", offset, held)])

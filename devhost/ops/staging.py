"""SIMULATOR: model of providers/scripting/ps/_upload.ps1, _admin_folders.ps1 and _chunk.ps1: the staging folders
(and, through FolderTrust, the ownership records folders of devhost.ops.ownership) and the chunked upload the
HostingBundle and RuntimeArchive scripts share (devhost.ops.hosting_bundle, devhost.ops.runtime_archive give the
folder and the setting an error names).

Owners and DACLs through devhost.ntfs, which starts from the DACLs Windows Server gives (%ProgramData% inherits
``C:\\``'s: BUILTIN\\Users may create folders and files, CREATOR OWNER gets full control of what they create).
Trusted owners: SYSTEM, Administrators and the deploying account (devhost.accounts.OPERATOR_USER). The knob
``staging_create_races`` models another account making a level between Directory.Exists and CreateDirectory.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devhost import accounts, ntfs
from devhost.fileops import DotNetError, delete_file
from devhost.fs import WindowsFs
from devhost.hooks import Knobs, sim_dir
from devhost.ops.envelope import Envelope, OperationStopped, change, fail, succeed
from devhost.ps51 import ScriptFact

PROGRAM_DATA = "C:\\ProgramData"  # [Environment]::GetFolderPath('CommonApplicationData')
STAGING_TOP = f"{PROGRAM_DATA}\\UsercubeIac"
ADMIN_SIDS = ("S-1-5-18", "S-1-5-32-544")
ADMINISTRATORS = "S-1-5-32-544"
# $TrustedOwnerSids: SYSTEM, Administrators and the account running the script (WindowsIdentity.GetCurrent().User),
# which owns what it made itself when the policy "Default owner for objects created by members of the
# Administrators group" says "Object creator".
TRUSTED_OWNERS = (*ADMIN_SIDS, accounts.OPERATOR_USER)
# The script's token: the deploying account's groups (accounts.OPERATOR_TOKEN) and its own SID, the token user,
# which may own, and be the only one named by, what it made itself (CREATOR OWNER's entry becomes its SID).
SCRIPT_TOKEN = frozenset({*accounts.OPERATOR_TOKEN, accounts.OPERATOR_USER})
# $FileWriteRights: FILE_WRITE_DATA, FILE_APPEND_DATA, DELETE, WRITE_DAC, WRITE_OWNER, GENERIC_ALL, GENERIC_WRITE.
FILE_WRITE_RIGHTS = 0x500D0006
# Knob ``staging_create_races``: [{"on": "<folder>", "owner": "<SID>"}], one-shot: that account creates the folder
# between Directory.Exists and CreateDirectory (it inherits its parent's DACL, owned by its creator).
RACE_KNOB = "staging_create_races"


@dataclass(frozen=True)
class FolderTrust:
    """_admin_folders.ps1 New-FolderTrust: what the refusals of one kind of folder say."""

    error_id: str
    name: str  # what the message calls the folder


STAGING = FolderTrust("StagingFolderUntrusted", "staging folder")


def script_facts(chunk: str, initialize: tuple[str, ...], every: tuple[str, ...]) -> tuple[ScriptFact, ...]:
    """The constructs of the shared includes this model relies on, for a resource's operations: ``chunk`` (its
    chunk script), ``initialize`` (those that create or check the folders), ``every`` (all that include them)."""
    return (*folder_facts(initialize, every), *_chunk_facts(chunk))


_REPAIR = r"\[System\.IO\.Directory\]::SetAccessControl\(\$path, \(New-AdminOnlySecurity\)\)"
_REMOVE_FOUND = r"foreach \(\$entry in \$planted\) \{ Remove-PlantedEntry \$entry \$Trust \}"
_READ_ENTRY_ACL = r"\$acl = \[System\.IO\.(Directory|File)\]::GetAccessControl\(\$entry\.FullName\)"


def folder_facts(initialize: tuple[str, ...], every: tuple[str, ...]) -> tuple[ScriptFact, ...]:
    """The constructs of _admin_folders.ps1 the folder model below relies on (the staging folders and the
    ownership records folders, devhost.ops.ownership)."""
    return (
        ScriptFact(
            initialize,
            r"if \(-not \[System\.IO\.Directory\]::Exists\(\$path\)\) \{\s+"
            r"\[void\]\[System\.IO\.Directory\]::CreateDirectory\(\$path, \(New-AdminOnlySecurity\)\)\s+\}\s+"
            r"\$reason = Get-UntrustedReason \$path",
            "each staging folder from %ProgramData%\\UsercubeIac down is created with owner Administrators and its "
            "protected SYSTEM/Administrators DACL in the same call (Directory.CreateDirectory(String, "
            "DirectorySecurity), .NET Framework), then checked like an existing one: another account may have made "
            "it first, and that call then returns it as it is",
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
            r"\$identity = \[System\.Security\.Principal\.WindowsIdentity\]::GetCurrent\(\)\s+"
            r"try \{ return \$identity\.User\.Value \} finally \{ \$identity\.Dispose\(\) \}\s+\}[\s\S]*"
            r"\$TrustedOwnerSids = @\(\$AdminSids \+ \(Get-ScriptUserSid\)\)",
            "owners trusted: SYSTEM, Administrators and the account running the script (accounts.OPERATOR_USER)",
        ),
        ScriptFact(
            every,
            r"if \(\$TrustedOwnerSids -notcontains \$owner\) \{ return @\{ refuse = \$true; text = \"is owned by "
            r"\$owner, not by Administrators\" \} \}\s+"
            r"foreach \(\$rule in \$acl\.GetAccessRules\(\$true, \$true, [^\n]*\n[^\n]*return @\{ refuse = \$false; ",
            "a level is judged by its owner and every entry, inherited ones included, not by its protection",
        ),
        ScriptFact(
            every,
            r"if \(\$reason\.refuse\) \{ Stop-Untrusted \$path \$reason\.text \$Trust \}",
            "a staging folder that is a reparse point or owned by anyone else is refused, not repaired: decided by "
            "Get-UntrustedReason's flag, as the model's UntrustedReason.refuse",
        ),
        ScriptFact(
            every,
            r"StartsWith\('is '\)",
            "refuse or repair is not read from the English text of the reason (review-owners3 O3)",
            present=False,
        ),
        ScriptFact(
            every,
            r"try \{\s+\$acl = \[System\.IO\.Directory\]::GetAccessControl\(\$Path\)\s+\} catch "
            r"\[System\.UnauthorizedAccessException\] \{[^}]*return @\{ refuse = \$true; text = 'does not let the "
            r"Administrators read its owner and permissions, so its owner cannot be checked \(an account not trusted "
            r"may own it\)' \}",
            "a level whose DACL withholds READ_CONTROL from the Administrators is refused, naming it, as the model's "
            "text (untrusted_reason; an OWNER RIGHTS entry may withhold it from a trusted owner: review-locks2 K4)",
        ),
        ScriptFact(
            every,
            r"Stop-Operation -Id \$Trust\.Id -Property \$Trust\.Property -Message \"the \$\(\$Trust\.Name\) \$Path "
            r"\$Reason; someone other than an administrator",
            "a refusal carries the error id, folder name and setting of its kind (FolderTrust)",
        ),
        ScriptFact(
            initialize,
            r"\$planted = Get-PlantedEntries \$path\s+try \{\s+" + _REPAIR + r"\s+\} "
            r"catch \[System\.UnauthorizedAccessException\] \{[^{}]*"
            + _REMOVE_FOUND
            + r"\s+try \{\s+"
            + _REPAIR
            + r"\s+\} catch \[System\.UnauthorizedAccessException\] \{\s+Stop-Untrusted \$path \"holds an entry "
            r"that does not let the Administrators change its permissions, so its own could not be put back "
            r"\(\$\(\$_\.Exception\.Message\)\)\" \$Trust\s+\}\s+\}\s+" + _REMOVE_FOUND + r"\s+"
            r"foreach \(\$entry in \(Get-PlantedEntries \$path\)\) \{ Remove-PlantedEntry \$entry \$Trust \}",
            "what others may have put in a level whose DACL is put back is found before the repair and deleted after, "
            "those found before first; a repair refused by a child (UnauthorizedAccessException) deletes them and "
            "writes the DACL again, and a second refusal is Stop-Untrusted naming the level (_set_admin_only); the "
            "list is taken as Get-PlantedEntries writes it (one object: no @() around the call, which would make the "
            "whole list one path)",
        ),
        ScriptFact(
            initialize,
            r"try \{\s+if \(\$isFolder\) \{ " + _READ_ENTRY_ACL + r" \} else \{ " + _READ_ENTRY_ACL + r" \}\s+"
            r"\} catch \[System\.UnauthorizedAccessException\] \{[^}]*\$found\.Add\(\$entry\.FullName\); continue\s+\}",
            "an entry whose DACL withholds READ_CONTROL from the Administrators (GetAccessControl throws "
            "UnauthorizedAccessException) is planted, not an UnexpectedError (planted_entries)",
        ),
        ScriptFact(
            initialize,
            r"\} catch \{\s+Stop-Untrusted \$Path \"was put in a \$\(\$Trust\.Name\) others could write to, and could "
            r"not be deleted \(\$\(\$_\.Exception\.Message\)\)\" \$Trust",
            "a planted entry that cannot be deleted (a folder the Administrators may not list) is refused with the "
            "folder kind's id, naming it and the .NET error (_remove_planted)",
        ),
        ScriptFact(
            initialize,
            r"\$others = \$TrustedOwnerSids -notcontains \$rule\.IdentityReference\.Value",
            "a file only trusted owners (the deploying account included) may write is not planted (planted_entries)",
        ),
    )


def _chunk_facts(chunk: str) -> tuple[ScriptFact, ...]:
    return (
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
    """Get-AdminFolderLevels: %ProgramData%\\UsercubeIac and each folder below it down to ``folder``."""
    assert folder.lower().startswith(STAGING_TOP.lower()), folder
    levels: list[str] = []
    path = folder
    while len(path) > len(STAGING_TOP):
        levels.insert(0, path)
        path = path.rsplit("\\", 1)[0]
    return [STAGING_TOP, *levels]


@dataclass(frozen=True)
class UntrustedReason:
    """Get-UntrustedReason's @{ refuse; text }: refuse, or put the DACL back (decided by the flag, not the text)."""

    refuse: bool
    text: str


def untrusted_reason(fs: WindowsFs, path: str) -> UntrustedReason | None:
    """Get-UntrustedReason: a reparse point, a level the Administrators may not read (GetAccessControl needs
    READ_CONTROL, which a trusted owner always has), an owner not trusted: refused; an entry (explicit or
    inherited) for anyone but SYSTEM and Administrators: repaired; a DACL that only inherits theirs is fine."""
    if fs.resolve(path).is_symlink():
        return UntrustedReason(True, "is a junction or symbolic link")
    store = ntfs.NtfsStore(fs.root)
    if not ntfs.access_granted(store, path, set(SCRIPT_TOKEN), ntfs.READ_CONTROL):
        text = (
            "does not let the Administrators read its owner and permissions, so its owner cannot be checked (an "
            "account not trusted may own it)"
        )
        return UntrustedReason(True, text)
    descriptor = store.descriptor(path)
    if descriptor.owner.upper() not in TRUSTED_OWNERS:
        return UntrustedReason(True, f"is owned by {descriptor.owner}, not by Administrators")
    for ace in store.explicit_and_inherited(path, is_container=True):
        if ace.sid.upper() not in ADMIN_SIDS:
            return UntrustedReason(False, f"grants {ace.sid} access")
    return None


def is_admin_only(fs: WindowsFs, path: str) -> bool:
    """Owned by a trusted account, and every entry of SYSTEM or Administrators."""
    return untrusted_reason(fs, path) is None


def _untrusted(path: str, reason: str, prop: str | None, trust: FolderTrust) -> OperationStopped:
    """Stop-Untrusted."""
    return _stop(
        trust.error_id,
        f"the {trust.name} {path} {reason}; someone other than an administrator may have made or changed it: "
        "check it, delete it, then run again",
        prop,
    )


def planted_entries(fs: WindowsFs, folder: str) -> list[str]:
    """Get-PlantedEntries: below a level others were let into, read before its DACL is put back."""
    store = ntfs.NtfsStore(fs.root)
    found: list[str] = []
    for entry in sorted(fs.resolve(folder).iterdir()):
        path = f"{folder}\\{entry.name}"
        if entry.is_symlink():
            found.append(path)
            continue
        if not ntfs.access_granted(store, path, set(SCRIPT_TOKEN), ntfs.READ_CONTROL):
            # GetAccessControl (owner, group, DACL) needs READ_CONTROL, which an owner always has (MS-DTYP 2.5.3.2):
            # an UnauthorizedAccessException, which the script catches, the entry counted as planted (review O1).
            found.append(path)
            continue
        if store.descriptor(path).owner.upper() not in TRUSTED_OWNERS:
            found.append(path)
            continue
        if entry.is_dir():
            found += planted_entries(fs, path)
            continue
        for ace in store.explicit_and_inherited(path, is_container=False):
            if ace.sid.upper() not in TRUSTED_OWNERS and ace.allow and ace.mask & FILE_WRITE_RIGHTS:
                found.append(path)
                break
    return found


def _remove_planted(fs: WindowsFs, path: str, prop: str | None, trust: FolderTrust) -> None:
    """Remove-PlantedEntry: Directory.Delete(path, true) removes a junction as a link; File.Delete a file, and
    nothing when it is gone already (found twice, or in a folder deleted before). A file needs no right of its own:
    FILE_DELETE_CHILD on the level (the Administrators' after the repair) grants DELETE (learn.microsoft.com, "File
    Security and Access Rights"). A folder is emptied first: .NET Framework's Directory.DeleteHelper lists it with
    FindFirstFile, which needs FILE_LIST_DIRECTORY on it (dotnet/referencesource mscorlib/system/io/directory.cs),
    so one whose DACL withholds that from the Administrators is refused, naming it (Stop-Untrusted)."""
    target = fs.resolve(path)
    store = ntfs.NtfsStore(fs.root)
    listable = ntfs.access_granted(store, path, set(SCRIPT_TOKEN), ntfs.FILE_READ_DATA)  # LIST_DIRECTORY
    if target.is_dir() and not target.is_symlink() and not listable:
        denied = f'Exception calling "Delete" with "2" argument(s): "Access to the path \'{path}\' is denied."'
        reason = f"was put in a {trust.name} others could write to, and could not be deleted ({denied})"
        raise _untrusted(path, reason, prop, trust)
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
    ntfs.NtfsStore(fs.root).forget(path)


# PowerShell's message for the UnauthorizedAccessException NativeObjectSecurity.Persist throws on ERROR_ACCESS_DENIED
# (no text of its own: the exception's default message).
SET_ACL_DENIED = (
    'Exception calling "SetAccessControl" with "2" argument(s): "Attempted to perform an unauthorized operation."'
)


def _propagation_denied(fs: WindowsFs, store: ntfs.NtfsStore, folder: str) -> bool:
    """Whether pushing a level's inheritable entries down fails: a child below it, reached through children that
    inherit (a protected one takes nothing from above, so nothing below it changes), whose DACL withholds
    READ_CONTROL or WRITE_DAC from the script's token; the system reads each child's descriptor and writes it back.
    Checked on the DACLs as they are before the level is written (those are the ones on disk when the child is
    opened). *Unverified* on a host: the review's evidence is a traced SetNamedSecurityInfoW returning 5 after its
    child opens failed (review-locks2 K1)."""
    for entry in sorted(fs.resolve(folder).iterdir()):
        path = f"{folder}\\{entry.name}"
        if not ntfs.access_granted(store, path, set(SCRIPT_TOKEN), ntfs.READ_CONTROL | ntfs.WRITE_DAC):
            return True
        inherits = not store.descriptor(path).protected
        if entry.is_dir() and not entry.is_symlink() and inherits and _propagation_denied(fs, store, path):
            return True
    return False


def _set_admin_only(fs: WindowsFs, path: str) -> bool:
    """[System.IO.Directory]::SetAccessControl($path, (New-AdminOnlySecurity)): owner and DACL written (the sections
    the object sets), then the inheritable entries pushed into the existing children (SetSecurityInfo and
    SetNamedSecurityInfo propagate them automatically: learn.microsoft.com, "Automatic Propagation of Inheritable
    ACEs"). A child that refuses it makes the call return ERROR_ACCESS_DENIED after the level was written, which
    .NET Framework's NativeObjectSecurity.Persist throws as UnauthorizedAccessException (dotnet/referencesource
    mscorlib/system/security/accesscontrol/nativeobjectsecurity.cs): False then."""
    store = ntfs.NtfsStore(fs.root)
    denied = _propagation_denied(fs, store, path)
    store.set_descriptor(path, admin_only())
    return not denied


def _create(fs: WindowsFs, path: str) -> None:
    """CreateDirectory(path, New-AdminOnlySecurity), with the race knob: when another account made the folder
    since Exists, .NET Framework's Directory.InternalCreateDirectory ignores ERROR_ALREADY_EXISTS and returns it
    as that account made it (dotnet/referencesource mscorlib/system/io/directory.cs)."""
    store = ntfs.NtfsStore(fs.root)
    fs.resolve(path).mkdir(parents=True)  # (its parent, %ProgramData%, exists on Windows)
    race = Knobs(sim_dir(fs.root) / "knobs.json").take_fault(path, key=RACE_KNOB)
    if race is not None:
        store.set_descriptor(path, ntfs.Descriptor(owner=str(race["owner"]), protected=False, explicit=[]))
        return
    store.set_descriptor(path, admin_only())


def initialize(fs: WindowsFs, folder: str, prop: str | None, trust: FolderTrust = STAGING) -> None:
    """Initialize-TrustedFolder (Initialize-AdminOnlyFolder for the staging folders)."""
    for path in staging_levels(folder):
        if not fs.resolve(path).is_dir():
            _create(fs, path)
        reason = untrusted_reason(fs, path)
        if reason is None:
            continue
        if reason.refuse:
            raise _untrusted(path, reason.text, prop, trust)
        planted = planted_entries(fs, path)
        if not _set_admin_only(fs, path):
            # The level is written; the Administrators' FILE_DELETE_CHILD lets the planted entries go, then it is
            # written again (review-locks2 K1).
            for entry in planted:
                _remove_planted(fs, entry, prop, trust)
            if not _set_admin_only(fs, path):
                refused = (
                    "holds an entry that does not let the Administrators change its permissions, so its own could not "
                    f"be put back ({SET_ACL_DENIED})"
                )
                raise _untrusted(path, refused, prop, trust)
        for entry in planted:  # deleted before anything below may end the run: the next one trusts the level
            _remove_planted(fs, entry, prop, trust)
        for entry in planted_entries(fs, path):
            _remove_planted(fs, entry, prop, trust)


def assert_trusted(fs: WindowsFs, folder: str, prop: str | None, trust: FolderTrust = STAGING) -> None:
    """Assert-TrustedFolder (Assert-AdminOnlyFolder for the staging folders)."""
    for path in staging_levels(folder):
        if not fs.resolve(path).is_dir():
            return
        reason = untrusted_reason(fs, path)
        if reason is not None:
            raise _untrusted(path, reason.text, prop, trust)


def repair_needed(fs: WindowsFs, folder: str, prop: str | None) -> str | None:
    """Get-StagingRepair: the first existing level set would repair (``<path> <reason>``), refusing what set would
    refuse above it; nothing below it is judged."""
    for path in staging_levels(folder):
        if not fs.resolve(path).is_dir():
            return None
        reason = untrusted_reason(fs, path)
        if reason is None:
            continue
        if reason.refuse:
            raise _untrusted(path, reason.text, prop, STAGING)
        return f"{path} {reason.text}"
    return None


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

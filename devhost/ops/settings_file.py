"""SIMULATOR: model of providers/settings_file/scripts/{get,set,remove}.ps1."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from devhost import accounts, ntfs, ps51
from devhost.fs import WindowsFs
from devhost.ops import dacl_lock
from devhost.ops.envelope import Envelope, OperationStopped, change, fail, operation, require_keys, succeed
from devhost.ops.script_accounts import account_sid, comparable_mask
from devhost.ps51 import ScriptFact
from devhost.win32_files import (
    MoveFileError,
    ReplaceFileError,
    delete_file,
    invoke_file_move,
    invoke_file_replace,
    temporary_name,
)

_SET = ("settings_file/set",)
_ALL = ("settings_file/get", "settings_file/set", "settings_file/remove")
# The constructs of the reviewed scripts that the model below relies on (checked by bless_scripts).
SCRIPT_FACTS = (
    ScriptFact(
        _SET,
        r"return , \$bytes",
        "ConvertTo-FileBytes must return its byte[] with the unary comma: PowerShell unrolls a returned "
        "array, so empty content reaches the caller as $null and ComputeHash/WriteAllBytes throw "
        "ArgumentNullException (about_Return)",
    ),
    ScriptFact(_SET, r"\[byte\[\]\] \$desired = ConvertTo-FileBytes", "the desired content is kept as byte[]"),
    ScriptFact(
        _ALL,
        r"\|\s*(ForEach-Object|Where-Object|%|\?)\s*\{",
        "nothing is piped into ForEach-Object or Where-Object: with Module Logging on, event 4103 records every "
        "value bound to a cmdlet's -InputObject (about_Logging_Windows, 'module logging'), which for "
        "Get-Sha256Hex were the bytes of a secret file's hash",
        present=False,
    ),
    ScriptFact(
        _ALL,
        re.escape("[System.BitConverter]::ToString($sha.ComputeHash($Bytes)).Replace('-', '').ToLowerInvariant()"),
        "the hash is turned into hex by .NET alone (the model's hashlib hexdigest)",
    ),
    ScriptFact(
        _SET,
        r"Invoke-FileReplace -Source \$temporary -Target \$path",
        "File.Replace (ReplaceFileW) can fail half-way; the script recovers the target from the temporary file",
    ),
    ScriptFact(
        _SET,
        r"if \(\(Test-Path -LiteralPath \$temporary\) -and \(Test-Path -LiteralPath \$path -PathType Leaf\)\)",
        "the temporary file is deleted only once the target exists: after ReplaceFileW error 1177 it holds the "
        "only copy of the new content (learn.microsoft.com ReplaceFileW)",
    ),
    ScriptFact(
        _SET,
        r"if \(\(Test-Path -LiteralPath \$Source -PathType Leaf\) -and -not \(Test-Path -LiteralPath \$Target\)\) "
        r"\{\s+Invoke-FileMove \$Source \$Target",
        "after a failed File.Replace whose target is gone (1177), the new content is moved into place with the "
        "retries of Invoke-FileMove: the sharing violation that failed the replace can fail the move too",
    ),
    ScriptFact(
        _SET,
        r"\[System\.IO\.File\]::Move\(\$Source, \$Target\)\s+return\s+\} catch \{\s+if \(\$attempt -ge 5 -or "
        r"\$TransientFileErrors -notcontains \(Get-Win32Code \$_\)\) \{ throw \}",
        "File.Move is retried on access denied, sharing and lock violations (5, 32, 33), five times, as the model's "
        "_invoke_file_move does",
    ),
    ScriptFact(_SET, r"\$TransientFileErrors = @\(5, 32, 33\)", "the transient Win32 errors the model retries"),
    ScriptFact(
        _SET,
        r"\} else \{\s+Invoke-FileMove \$temporary \$path",
        "a new file is moved into place with the same retries",
    ),
    ScriptFact(
        _SET,
        r"if \(\$Spec\.keep_backup\) \{ \$backup = \"\$path\.bak\" \} else \{ \$backup = New-TemporaryPath \$path \}",
        "File.Replace always gets a backup name: without one, ReplaceFileW error 1177 leaves the replaced file under "
        "a name of the system's choosing (learn.microsoft.com ReplaceFileW, Return value)",
    ),
    ScriptFact(
        _SET,
        r"if \(-not \$Spec\.keep_backup\) \{ Remove-FileQuietly \$backup \}",
        "the previous version under a temporary backup name is deleted when no backup is kept (retried, and left "
        "for remove to sweep when still held: the simulator's deletes of it never fail)",
    ),
    ScriptFact(
        _SET,
        re.escape("'.' + [System.IO.Path]::GetFileName($Path) + '.'")
        + re.escape(" + [guid]::NewGuid().ToString('N').Substring(0, 8) + '.tmp'"),
        "temporary names are '.<name>.<8 hex digits>.tmp' (14 characters more than the path, which "
        "SettingsFileModel allows for under MAX_PATH)",
    ),
    ScriptFact(
        ("settings_file/remove",),
        re.escape(r"'\.([0-9a-f]{8}|[0-9a-f]{32})\.tmp$'"),
        "remove takes temporary files of both name lengths (the 32-digit ones earlier versions left)",
    ),
    ScriptFact(
        _SET,
        r"\[System\.IO\.File\]::Create\(\$temporary, 4096, \[System\.IO\.FileOptions\]::None, "
        r"\(New-ProtectedFileSecurity \$readerSids\)\)",
        "a file with readers is created with its protected DACL and owner in CreateFile's security descriptor "
        "(File.Create(String, Int32, FileOptions, FileSecurity), .NET Framework): the model gives the temporary "
        "file that descriptor from its creation",
    ),
    ScriptFact(
        _SET,
        r"if \(-not \$aclOk\) \{\s+Set-ProtectedAcl \$path \$readerSids[\s\S]*if \(\$present -and -not "
        r"\$before\.content_readable\) \{\s+\$previousHash = \(Get-SettingsFileState \$path\)\.sha256"
        r"[\s\S]*if \(-not \$contentOk\)",
        "the target's permissions are repaired before the content is replaced (ReplaceFileW gives the new file the "
        "replaced file's DACL: learn.microsoft.com ReplaceFileW, Remarks), and an unreadable file's content is "
        "read once they let the Administrators read it",
    ),
    ScriptFact(
        _ALL,
        r"\$acl = Get-FileAcl \$Path\s+try \{\s+\$bytes = \[System\.IO\.File\]::ReadAllBytes\(\$Path\)\s+\} catch "
        r"\{[\s\S]{0,200}if \(\$reason -isnot \[System\.UnauthorizedAccessException\]\) \{ throw \}",
        "the permissions are read before the content (READ_CONTROL: the owner always has it, MS-DTYP 2.5.3.2), "
        "and a file whose DACL denies the Administrators FILE_READ_DATA is reported with its content unknown",
    ),
    ScriptFact(
        _ALL,
        r"\$security\.SetAccessRuleProtection\(\$true, \$false\)",
        "the protected DACL copies none of the inherited entries (ObjectSecurity.SetAccessRuleProtection("
        "isProtected, preserveInheritance=false))",
    ),
    ScriptFact(
        _ALL,
        r"GetAccessRules\(\$true, \$true, \[System\.Security\.Principal\.SecurityIdentifier\]\)",
        "get reports explicit and inherited entries, by SID",
    ),
    ScriptFact(
        _ALL,
        r"\$security\.GetOwner\(\[System\.Security\.Principal\.SecurityIdentifier\]\)",
        "get reports the owner (GetAccessControl reads the Owner section with the Access section)",
    ),
    ScriptFact(
        _ALL,
        r"if \(-not \$Acl\.protected -or \$Acl\.owner -ne \$OwnerSid\) \{ return \$false \}",
        "an owner other than BUILTIN\\Administrators is drift: an owner may always rewrite the DACL",
    ),
    ScriptFact(
        _SET,
        r"\$file\.SetAccessControl\(\(New-ProtectedDacl \$ReaderSids\)\)\s+if \(\(Get-FileAcl \$Path\)\.owner -ne "
        r"\$OwnerSid\) \{[\s\S]{0,200}\$owner\.SetOwner\(",
        "Set-ProtectedAcl writes the DACL alone (WRITE_DAC: the owner's), then the owner (WRITE_OWNER, which that "
        "DACL grants the Administrators), as the model's _set_protected does",
    ),
    *dacl_lock.script_facts(_SET),
    ScriptFact(
        _SET,
        r"if \(-not \$aclOk -or -not \$backupAclOk\) \{\s+\$daclLock = Enter-DaclLock\s+try \{\s+"
        r"if \(-not \$aclOk\) \{ Set-ProtectedAcl \$path \$readerSids \}\s+"
        r"if \(-not \$backupAclOk\) \{ Set-ProtectedAcl \$before\.backup_path \$readerSids \}\s+"
        r"\} finally \{\s+Exit-DaclLock \$daclLock\s+\}",
        "the file's and the backup's protected DACLs are written under FileAcl's DACL lock, taken once for both: a "
        "FileAcl pushing inheritable entries down a folder above the file reads and writes each child's descriptor "
        "(learn.microsoft.com, Automatic Propagation of Inheritable ACEs) and could write the old one back over the "
        "protected DACL; one wait per operation keeps AclBusy within command_timeout_s",
    ),
    ScriptFact(
        _SET,
        r"= Enter-DaclLock\b[\s\S]*= Enter-DaclLock\b",
        "set takes the DACL lock once: the model holds it once, around both Set-ProtectedAcl calls (each "
        "Enter-DaclLock may wait the whole dacl_lock_wait_ms)",
        present=False,
    ),
    ScriptFact(
        _SET,
        r"function Set-ProtectedAcl\(\[string\] \$Path, \[string\[\]\] \$ReaderSids\) \{[^}]*Enter-DaclLock",
        "Set-ProtectedAcl takes no lock itself: its caller holds the DACL lock for both files",
        present=False,
    ),
    ScriptFact(
        ("settings_file/remove",),
        r"Remove-Item -LiteralPath \$before\.backup_path -Force",
        "remove deletes the backup it made (and the temporary files): destroy leaves no copy of the secrets",
    ),
)

_KEYS = {"path", "content", "encoding", "keep_backup", "readers"}
_OPTIONAL = {dacl_lock.WAIT_KEY}  # SettingsFileModel always sends it; the script waits 300 s without it
_BOM = {"utf-8-bom": b"\xef\xbb\xbf", "utf-16": b"\xff\xfe"}


def _encoding_of(data: bytes) -> str:
    for name, bom in _BOM.items():
        if data.startswith(bom):
            return name
    return "utf-8"


def _encode(text: str, encoding: str) -> bytes:
    if encoding == "utf-16":
        return _BOM["utf-16"] + text.encode("utf-16-le")
    return _BOM.get(encoding, b"") + text.encode("utf-8")


def _decode(data: bytes, encoding: str) -> str:
    body = data[len(_BOM.get(encoding, b"")) :]
    # .NET's decoders replace invalid sequences with U+FFFD, they do not fail.
    return body.decode("utf-16-le" if encoding == "utf-16" else "utf-8", errors="replace")


# -- What the deploying account may do (accounts.OPERATOR_TOKEN, an elevated administrator) ----------------


def _unauthorized(method: str, arguments: int, message: str) -> OperationStopped:
    """The trap's envelope for an UnauthorizedAccessException of a .NET call (a MethodInvocationException:
    category NotSpecified)."""
    return OperationStopped(
        fail(
            "UnexpectedError",
            f'Exception calling "{method}" with "{arguments}" argument(s): "{message}"',
            category="NotSpecified",
        )
    )


def _require(fs: WindowsFs, path: str, desired: int, method: str, arguments: int) -> None:
    """The access check of opening ``path`` for ``desired`` (ntfs.access_granted: the DACL, and the owner's
    implicit READ_CONTROL and WRITE_DAC). .NET's GetAccessControl/SetAccessControl report a denial as
    "Attempted to perform an unauthorized operation." (PrivilegeNotHeld/UnauthorizedAccessException)."""
    if not ntfs.access_granted(ntfs.NtfsStore(fs.root), path, set(accounts.OPERATOR_TOKEN), desired):
        raise _unauthorized(method, arguments, "Attempted to perform an unauthorized operation.")


def _name_of(fs: WindowsFs, sid: str) -> str:
    try:
        return accounts.lookup_sid(fs.root, sid).name
    except accounts.IdentityNotMapped:
        return sid


def _acl(fs: WindowsFs, path: str) -> dict[str, Any]:
    """Get-FileAcl: GetAccessControl(Access, Owner), which needs READ_CONTROL; the owner, the protection and the
    entries, explicit first, names as Windows translates them."""
    _require(fs, path, ntfs.READ_CONTROL, "GetAccessControl", 1)
    store = ntfs.NtfsStore(fs.root)
    entries = []
    for ace in store.explicit_and_inherited(path, is_container=False):
        entries.append(
            {
                "sid": ace.sid.upper(),
                "name": _name_of(fs, ace.sid),
                "access": "Allow" if ace.allow else "Deny",
                "mask": ace.mask,
                "inherited": ace.inherited,
            }
        )
    descriptor = store.descriptor(path)
    return {
        "protected": descriptor.protected,
        "owner": descriptor.owner.upper(),
        "owner_name": _name_of(fs, descriptor.owner),
        "entries": entries,
    }


def _state(fs: WindowsFs, path: str) -> dict[str, Any] | Envelope:
    target = fs.resolve(path)
    backup = fs.resolve(path + ".bak")
    backup_path = path + ".bak" if backup.is_file() else None
    backup_acl = _acl(fs, backup_path) if backup_path else None
    if not target.is_file():
        if target.exists():
            return fail("PathIsNotAFile", f"'{path}' exists and is not a file", prop="path")
        return {"ensure": "absent", "path": path, "backup_path": backup_path, "backup_acl": backup_acl}
    acl = _acl(fs, path)
    if not ntfs.can_read_file(ntfs.NtfsStore(fs.root), path, set(accounts.OPERATOR_TOKEN)):
        # ReadAllBytes opens the file for FILE_READ_DATA: an UnauthorizedAccessException, which the script
        # turns into a state with the content unknown.
        return {
            "ensure": "present",
            "path": path,
            "content_readable": False,
            "content": None,
            "encoding": None,
            "sha256": None,
            "size": None,
            "backup_path": backup_path,
            "acl": acl,
            "backup_acl": backup_acl,
        }
    data = target.read_bytes()
    encoding = _encoding_of(data)
    return {
        "ensure": "present",
        "path": path,
        "content_readable": True,
        "content": _decode(data, encoding),
        "encoding": encoding,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "backup_path": backup_path,
        "acl": acl,
        "backup_acl": backup_acl,
    }


# -- Protected permissions (the scripts' New-ProtectedFileSecurity / Test-ProtectedAcl) --------------

_KEPT = (accounts.SYSTEM, accounts.ADMINISTRATORS)
_OWNER = accounts.ADMINISTRATORS
_FULL_CONTROL_COMPARABLE = 0xF01FF
_READ_COMPARABLE = 0x20089


def _reader_sid(fs: WindowsFs, name: str) -> str:
    """ConvertTo-ReaderSid: a SID as given, otherwise ConvertTo-AccountSid."""
    if name.upper().startswith("S-1-"):
        return name.upper()
    return account_sid(fs.root, name)


def _resolve_reader(fs: WindowsFs, name: str) -> str:
    """Resolve-ReaderSid: a reader that does not translate stops the operation with the fix."""
    try:
        return _reader_sid(fs, name)
    except accounts.IdentityNotMapped:
        raise OperationStopped(
            fail(
                "IdentityNotMapped",
                f"readers: '{name}': Some or all identity references could not be translated. Create the account "
                "first (a built-in one: give its SID, S-1-...); for 'IIS AppPool\\<pool>' the application pool "
                "must exist (make this resource depend on it).",
                prop="readers",
                category="ObjectNotFound",
            )
        ) from None


def _declared_reader_sids(fs: WindowsFs, spec: dict[str, Any]) -> list[str | None] | None:
    """Get-DeclaredReaderSids: None for a reader that does not translate (get never fails on it)."""
    if spec["readers"] is None:
        return None
    sids: list[str | None] = []
    for name in spec["readers"]:
        try:
            sids.append(_reader_sid(fs, name))
        except accounts.IdentityNotMapped:
            sids.append(None)
    return sids


def protected_descriptor(reader_sids: list[str]) -> ntfs.Descriptor:
    """New-ProtectedFileSecurity: SetAccessRuleProtection($true, $false), AddAccessRule for each account
    (FullControl or Read; .NET adds Synchronize to allow entries; one entry per SID), SetOwner(Administrators)."""
    explicit: list[ntfs.Ace] = []
    for sid in _KEPT:
        explicit = ntfs.merge_entry(explicit, ntfs.Ace(sid, ntfs.access_mask_for(ntfs.FULL_CONTROL, True)))
    for sid in reader_sids:
        if sid not in _KEPT:
            explicit = ntfs.merge_entry(explicit, ntfs.Ace(sid, ntfs.access_mask_for(_READ_COMPARABLE, True)))
    return ntfs.Descriptor(owner=_OWNER, protected=True, explicit=explicit)


def _is_protected(acl: dict[str, Any], reader_sids: list[str]) -> bool:
    """Test-ProtectedAcl."""
    if not acl["protected"] or acl["owner"] != _OWNER:
        return False
    expected = dict.fromkeys(_KEPT, _FULL_CONTROL_COMPARABLE)
    for sid in reader_sids:
        expected.setdefault(sid, _READ_COMPARABLE)
    seen: set[str] = set()
    for entry in acl["entries"]:
        sid = entry["sid"]
        if entry["inherited"] or entry["access"] != "Allow" or sid not in expected or sid in seen:
            return False
        if comparable_mask(entry["mask"]) != expected[sid]:
            return False
        seen.add(sid)
    return len(seen) == len(expected)


def _set_protected(fs: WindowsFs, path: str, reader_sids: list[str]) -> None:
    """Set-ProtectedAcl: SetAccessControl of the DACL alone (WRITE_DAC; the owner stays, as SetAccessControl
    persists only the sections that were set), then, when the owner differs, of the owner alone (WRITE_OWNER,
    checked against the DACL just written). The caller holds the DACL lock."""
    store = ntfs.NtfsStore(fs.root)
    _require(fs, path, ntfs.WRITE_DAC, "SetAccessControl", 1)
    desired = protected_descriptor(reader_sids)
    current = store.descriptor(path)
    store.set_descriptor(path, ntfs.Descriptor(current.owner, desired.protected, desired.explicit))
    if current.owner.upper() != _OWNER:
        _require(fs, path, ntfs.WRITE_OWNER, "SetAccessControl", 1)
        store.set_descriptor(path, ntfs.Descriptor(_OWNER, desired.protected, desired.explicit))


def _format_acl(acl: dict[str, Any]) -> list[str]:
    """Format-Acl."""
    lines = [f"owner: {acl['owner_name']}"] if acl["owner"] != _OWNER else []
    lines += [] if acl["protected"] else ["inherits the folder's permissions"]
    for entry in acl["entries"]:
        origin = " (inherited)" if entry["inherited"] else ""
        lines.append(f"{entry['name']}: {entry['access']} 0x{comparable_mask(entry['mask']):X}{origin}")
    return lines


def _temporary_files(fs: WindowsFs, path: str) -> list[Path]:
    """Get-TemporaryFiles: '.<name>.<8 or 32 hex digits>.tmp' next to the target."""
    target = fs.resolve(path)
    if not target.parent.is_dir():
        return []
    pattern = re.compile(r"^\." + re.escape(target.name) + r"\.([0-9a-f]{8}|[0-9a-f]{32})\.tmp$", re.IGNORECASE)
    return sorted(entry for entry in target.parent.iterdir() if entry.is_file() and pattern.match(entry.name))


@operation
def get(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS, _OPTIONAL)
    state = _state(fs, spec["path"])
    if isinstance(state, Envelope):
        return state
    return succeed({**state, "reader_sids": _declared_reader_sids(fs, spec)})


@operation
def set_(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS, _OPTIONAL)
    path = spec["path"]
    readers = None if spec["readers"] is None else [_resolve_reader(fs, name) for name in spec["readers"]]
    before = _state(fs, path)
    if isinstance(before, Envelope):
        return before
    if spec["encoding"] not in ("utf-8", "utf-8-bom", "utf-16"):
        return fail("UnknownEncoding", f"unknown encoding '{spec['encoding']}'", prop="encoding")
    # [byte[]] $desired = ConvertTo-FileBytes ...: the script returns `, $bytes`, so even empty
    # content arrives as a byte[] (ps51.function_output) and not as $null.
    desired = ps51.function_output(_encode(spec["content"], spec["encoding"]), unary_comma=True)
    if desired is None:
        return fail(
            "UnexpectedError",
            'Exception calling "ComputeHash" with "1" argument(s): "Value cannot be null.\r\nParameter name: buffer"',
            category="NotSpecified",
        )
    desired = bytes(desired)
    desired_hash = hashlib.sha256(desired).hexdigest()
    present = before["ensure"] == "present"
    previous_hash = before.get("sha256")
    content_ok = present and before["content_readable"] and previous_hash == desired_hash
    acl_ok = readers is None or not present or _is_protected(before["acl"], readers)
    backup_ok = readers is None or before["backup_path"] is None or _is_protected(before["backup_acl"], readers)
    if content_ok and acl_ok and backup_ok:
        return succeed({**before, "reader_sids": readers})
    if present and not before["content_readable"] and readers is None:
        return fail(
            "ContentUnreadable",
            f"'{path}': its permissions do not let the Administrators read it, and this resource does not manage "
            "them (no readers). Declare readers to have them set, or grant BUILTIN\\Administrators Full control by "
            f'hand (icacls "{path}" /grant *S-1-5-32-544:F).',
            prop="readers",
            category="PermissionDenied",
        )
    target = fs.resolve(path)
    changes = []
    if not target.parent.is_dir():
        target.parent.mkdir(parents=True)
        changes.append(change("parent_folder", None, path.rsplit("\\", 1)[0]))
    if not acl_ok or not backup_ok:
        assert readers is not None
        # One Enter-DaclLock for the file and its backup (FileAcl's propagation must not write an old descriptor
        # back over either), so that one operation spends the wait once.
        with dacl_lock.held(fs, spec):
            if not acl_ok:
                _set_protected(fs, path, readers)
            if not backup_ok:
                _set_protected(fs, before["backup_path"], readers)
    if not acl_ok:
        changes.append(change("readers", _format_acl(before["acl"]), _format_acl(_acl(fs, path))))
    if not backup_ok:
        after_backup = _acl(fs, before["backup_path"])
        changes.append(change("backup_readers", _format_acl(before["backup_acl"]), _format_acl(after_backup)))
    if present and not before["content_readable"]:
        # Readable now that the protected permissions give the Administrators Full control.
        again = _state(fs, path)
        assert isinstance(again, dict)
        previous_hash = again["sha256"]
        content_ok = previous_hash == desired_hash
    if not content_ok:
        failure = _write_content(fs, target, desired, readers, spec["keep_backup"], present)
        if failure is not None:
            return failure
    after = _state(fs, path)
    assert isinstance(after, dict)
    if not content_ok:
        changes.append(change("content", previous_hash, after["sha256"]))
    return succeed({**after, "reader_sids": readers}, changes)


def _write_content(
    fs: WindowsFs, target: Path, desired: bytes, readers: list[str] | None, keep_backup: bool, present: bool
) -> Envelope | None:
    """The temporary file, created with the protected descriptor when readers are given (File.Create with
    a FileSecurity: CreateFile applies it at creation), then swapped in. File.Replace always gets a backup
    name: '<path>.bak', or a temporary name deleted afterwards when no backup is kept."""
    temporary = temporary_name(target)
    fs.resolve(fs.to_windows(temporary))  # MAX_PATH: .NET checks the path before CreateFile
    store = ntfs.NtfsStore(fs.root)
    if readers is not None:
        store.set_descriptor(fs.to_windows(temporary), protected_descriptor(readers))
    # Otherwise WriteAllBytes: the new file (a fresh name, no descriptor) inherits from its folder, owned by the
    # token's default owner (accounts.OPERATOR_DEFAULT_OWNER, ntfs.Descriptor's default).
    temporary.write_bytes(desired)
    try:
        if present:
            backup = target.with_name(target.name + ".bak") if keep_backup else temporary_name(target)
            fs.resolve(fs.to_windows(backup))
            invoke_file_replace(fs, temporary, target, backup)
            if not keep_backup and backup.is_file():
                delete_file(fs, backup)
        else:
            invoke_file_move(fs, temporary, target)
    except ReplaceFileError as error:
        return fail(
            "UnexpectedError",
            f'Exception calling "Replace" with "3" argument(s): "{error}"',
            category="NotSpecified",
        )
    except MoveFileError as error:
        return fail(
            "UnexpectedError",
            f'Exception calling "Move" with "2" argument(s): "{error}"',
            category="NotSpecified",
        )
    finally:
        if temporary.exists() and target.is_file():
            delete_file(fs, temporary)
    return None


@operation
def remove(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS, _OPTIONAL)
    path = spec["path"]
    before = _state(fs, path)
    if isinstance(before, Envelope):
        return before
    temporaries = _temporary_files(fs, path)
    changes = []
    if before["ensure"] == "present":
        delete_file(fs, fs.resolve(path))
        changes.append(change("ensure", "present", "absent"))
    if before["backup_path"] is not None:
        delete_file(fs, fs.resolve(before["backup_path"]))
        changes.append(change("backup_path", before["backup_path"], None))
    for temporary in temporaries:
        windows_path = fs.to_windows(temporary)
        delete_file(fs, temporary)
        changes.append(change("temporary_file", windows_path, None))
    after = _state(fs, path)
    assert isinstance(after, dict)
    return succeed(after, changes)


OPERATIONS = {"settings_file/get": get, "settings_file/set": set_, "settings_file/remove": remove}

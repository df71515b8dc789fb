"""SIMULATOR: model of providers/settings_file/scripts/{get,set,remove}.ps1."""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

from devhost import accounts, ntfs, ps51
from devhost.fs import WindowsFs
from devhost.ops.envelope import Envelope, OperationStopped, change, fail, operation, require_keys, succeed
from devhost.ps51 import ScriptFact

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
        _SET,
        r"Invoke-FileReplace -Source \$temporary -Target \$path",
        "File.Replace (ReplaceFileW) can fail half-way; the script recovers the target from the temporary file",
    ),
    ScriptFact(
        _SET,
        r"if \(\(Test-Path -LiteralPath \$temporary\) -and \(Test-Path -LiteralPath \$path -PathType Leaf\)\)",
        "the temporary file is deleted only once the target exists: after ReplaceFileW error 1176 with no "
        "backup it holds the only copy (learn.microsoft.com ReplaceFileW)",
    ),
    ScriptFact(
        _SET,
        r"if \(\(Test-Path -LiteralPath \$Source -PathType Leaf\) -and -not \(Test-Path",
        "after a failed File.Replace whose target is gone (1176 without backup, 1177), the new content is moved "
        "into place",
    ),
    ScriptFact(
        _SET,
        r"\[System\.IO\.File\]::Create\(\$temporary, 4096, \[System\.IO\.FileOptions\]::None, "
        r"\(New-ProtectedFileSecurity \$readerSids\)\)",
        "a file with readers is created with its protected DACL in CreateFile's security descriptor "
        "(File.Create(String, Int32, FileOptions, FileSecurity), .NET Framework): the model gives the temporary "
        "file that descriptor from its creation",
    ),
    ScriptFact(
        _SET,
        r"if \(-not \$aclOk\) \{\s+Set-ProtectedAcl \$path \$readerSids[\s\S]*if \(-not \$contentOk\)",
        "the target's permissions are repaired before the content is replaced: ReplaceFileW gives the new file "
        "the replaced file's DACL (learn.microsoft.com ReplaceFileW, Remarks)",
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
        ("settings_file/remove",),
        r"Remove-Item -LiteralPath \$before\.backup_path -Force",
        "remove deletes the backup it made (and the temporary files): destroy leaves no copy of the secrets",
    ),
)

_KEYS = {"path", "content", "encoding", "keep_backup", "readers"}
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


def _acl(fs: WindowsFs, path: str) -> dict[str, Any]:
    """Get-FileAcl: the file's protection and entries, explicit first, names as Windows translates them."""
    store = ntfs.NtfsStore(fs.root)
    entries = []
    for ace in store.explicit_and_inherited(path, is_container=False):
        try:
            name = accounts.lookup_sid(fs.root, ace.sid).name
        except accounts.IdentityNotMapped:
            name = ace.sid
        entries.append(
            {
                "sid": ace.sid.upper(),
                "name": name,
                "access": "Allow" if ace.allow else "Deny",
                "mask": ace.mask,
                "inherited": ace.inherited,
            }
        )
    return {"protected": store.descriptor(path).protected, "entries": entries}


def _state(fs: WindowsFs, path: str) -> dict[str, Any] | Envelope:
    target = fs.resolve(path)
    backup = fs.resolve(path + ".bak")
    backup_path = path + ".bak" if backup.is_file() else None
    backup_acl = _acl(fs, backup_path) if backup_path else None
    if not target.is_file():
        if target.exists():
            return fail("PathIsNotAFile", f"'{path}' exists and is not a file", prop="path")
        return {"ensure": "absent", "path": path, "backup_path": backup_path, "backup_acl": backup_acl}
    data = target.read_bytes()
    encoding = _encoding_of(data)
    return {
        "ensure": "present",
        "path": path,
        "content": _decode(data, encoding),
        "encoding": encoding,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "backup_path": backup_path,
        "acl": _acl(fs, path),
        "backup_acl": backup_acl,
    }


# -- Protected permissions (the scripts' New-ProtectedFileSecurity / Test-ProtectedAcl) --------------

_KEPT = (accounts.SYSTEM, accounts.ADMINISTRATORS)
_FULL_CONTROL_COMPARABLE = 0xF01FF
_READ_COMPARABLE = 0x20089


def _comparable(mask: int) -> int:
    return ntfs.map_generic(mask & 0xFFFFFFFF) & ~ntfs.SYNCHRONIZE


def _resolve_reader(fs: WindowsFs, name: str) -> str:
    """Resolve-ReaderSid: a reader that does not translate stops the operation with the fix."""
    try:
        return accounts.resolve(fs.root, name).sid.upper()
    except accounts.IdentityNotMapped:
        raise OperationStopped(
            fail(
                "IdentityNotMapped",
                f"readers: '{name}': Some or all identity references could not be translated. Create the account "
                "first; for 'IIS AppPool\\<pool>' the application pool must exist (make this resource depend on it).",
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
            sids.append(accounts.resolve(fs.root, name).sid.upper())
        except accounts.IdentityNotMapped:
            sids.append(None)
    return sids


def protected_descriptor(reader_sids: list[str]) -> ntfs.Descriptor:
    """New-ProtectedFileSecurity: SetAccessRuleProtection($true, $false), then AddAccessRule for each
    account (FullControl or Read; .NET adds Synchronize to allow entries; one entry per SID)."""
    explicit: list[ntfs.Ace] = []
    for sid in _KEPT:
        explicit = ntfs.merge_entry(explicit, ntfs.Ace(sid, ntfs.access_mask_for(ntfs.FULL_CONTROL, True)))
    for sid in reader_sids:
        if sid not in _KEPT:
            explicit = ntfs.merge_entry(explicit, ntfs.Ace(sid, ntfs.access_mask_for(_READ_COMPARABLE, True)))
    return ntfs.Descriptor(owner=accounts.ADMINISTRATORS, protected=True, explicit=explicit)


def _is_protected(acl: dict[str, Any], reader_sids: list[str]) -> bool:
    """Test-ProtectedAcl."""
    if not acl["protected"]:
        return False
    expected = dict.fromkeys(_KEPT, _FULL_CONTROL_COMPARABLE)
    for sid in reader_sids:
        expected.setdefault(sid, _READ_COMPARABLE)
    seen: set[str] = set()
    for entry in acl["entries"]:
        sid = entry["sid"]
        if entry["inherited"] or entry["access"] != "Allow" or sid not in expected or sid in seen:
            return False
        if _comparable(entry["mask"]) != expected[sid]:
            return False
        seen.add(sid)
    return len(seen) == len(expected)


def _set_protected(fs: WindowsFs, path: str, reader_sids: list[str]) -> None:
    """Set-ProtectedAcl: SetAccessControl writes the DACL and its protection; the owner stays."""
    store = ntfs.NtfsStore(fs.root)
    current = store.descriptor(path)
    desired = protected_descriptor(reader_sids)
    store.set_descriptor(path, ntfs.Descriptor(current.owner, desired.protected, desired.explicit))


def _format_acl(acl: dict[str, Any]) -> list[str]:
    """Format-Acl."""
    lines = [] if acl["protected"] else ["inherits the folder's permissions"]
    for entry in acl["entries"]:
        origin = " (inherited)" if entry["inherited"] else ""
        lines.append(f"{entry['name']}: {entry['access']} 0x{_comparable(entry['mask']):X}{origin}")
    return lines


# -- ReplaceFileW as Windows does it (learn.microsoft.com/windows/win32/api/winbase/nf-winbase-replacefilew) --

REPLACE_FAULTS = "replace_file_faults.json"  # under _sim/: Win32 error codes, one consumed per ReplaceFile call
_REPLACE_MESSAGES = {
    5: "Access to the path is denied.",
    32: "The process cannot access the file because it is being used by another process.",
    1175: "Unable to remove the file to be replaced.",
    1176: "Unable to move the replacement file to the file to be replaced. The file to be replaced has "
    "retained its original name.",
    1177: "Unable to move the replacement file to the file to be replaced. The file to be replaced has been "
    "renamed using the backup name.",
}


class ReplaceFileError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(_REPLACE_MESSAGES[code])
        self.code = code


def _next_fault(fs: WindowsFs) -> int | None:
    path = fs.root / "_sim" / REPLACE_FAULTS
    if not path.is_file():
        return None
    faults: list[int] = json.loads(path.read_text(encoding="utf-8"))
    if not faults:
        return None
    path.write_text(json.dumps(faults[1:]), encoding="utf-8")
    if faults[0] not in _REPLACE_MESSAGES:
        raise ValueError(f"SIMULATOR: ReplaceFileW error {faults[0]} is not modelled")
    return faults[0]


def _move(fs: WindowsFs, source: Path, target: Path) -> None:
    """File.Move / MoveFileEx on one volume: the file keeps its security descriptor (ntfs.rename)."""
    os.replace(source, target)
    ntfs.NtfsStore(fs.root).rename(fs.to_windows(source), fs.to_windows(target))


def _delete(fs: WindowsFs, path: Path) -> None:
    """Remove-Item: the file goes, and its security descriptor with it."""
    windows_path = fs.to_windows(path)
    path.unlink()
    ntfs.NtfsStore(fs.root).forget(windows_path)


def replace_file(fs: WindowsFs, source: Path, target: Path, backup: Path | None) -> None:
    """File.Replace(source, target, backup): what each documented failure leaves behind, content and
    security descriptors (the result carries the replaced file's DACL: ntfs.NtfsStore.replace_file)."""
    code = _next_fault(fs)
    if code in (5, 32, 1175):  # nothing moved: both files keep their names
        raise ReplaceFileError(code)
    store = ntfs.NtfsStore(fs.root)
    if code == 1176:
        # "If lpBackupFileName was specified, the replaced and replacement files retain their original
        # file names. Otherwise, the replaced file no longer exists and the replacement file exists
        # under its original name."
        if backup is None:
            _delete(fs, target)
        raise ReplaceFileError(code)
    if code == 1177:
        # "The replacement file still exists under its original name; however, it has inherited the file
        # streams and attributes from the file it is replacing. The file to be replaced still exists with
        # a different name. If lpBackupFileName is specified, it will be the name of the replaced file."
        store.copy_dacl(fs.to_windows(target), fs.to_windows(source))
        _move(fs, target, backup if backup is not None else target.with_name(f"{target.name}.~{uuid.uuid4().hex}"))
        raise ReplaceFileError(code)
    store.replace_file(fs.to_windows(target), fs.to_windows(source), fs.to_windows(backup) if backup else None)
    if backup is not None:
        os.replace(target, backup)
    os.replace(source, target)


def _invoke_file_replace(fs: WindowsFs, source: Path, target: Path, backup: Path | None) -> None:
    """The script's Invoke-FileReplace: the target is recovered from the source when it is gone,
    sharing errors are retried up to 5 times."""
    for attempt in range(1, 6):
        try:
            replace_file(fs, source, target, backup)
            return
        except ReplaceFileError as error:
            if source.is_file() and not target.exists():
                _move(fs, source, target)
                return
            if attempt == 5 or error.code not in (5, 32, 33, 1175):
                raise


def _temporary_files(fs: WindowsFs, path: str) -> list[Path]:
    """Get-TemporaryFiles: '.<name>.<32 hex digits>.tmp' next to the target."""
    target = fs.resolve(path)
    if not target.parent.is_dir():
        return []
    pattern = re.compile(r"^\." + re.escape(target.name) + r"\.[0-9a-f]{32}\.tmp$", re.IGNORECASE)
    return sorted(entry for entry in target.parent.iterdir() if entry.is_file() and pattern.match(entry.name))


@operation
def get(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    state = _state(fs, spec["path"])
    if isinstance(state, Envelope):
        return state
    return succeed({**state, "reader_sids": _declared_reader_sids(fs, spec)})


@operation
def set_(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
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
    present = before["ensure"] == "present"
    content_ok = present and before["sha256"] == hashlib.sha256(desired).hexdigest()
    acl_ok = readers is None or not present or _is_protected(before["acl"], readers)
    backup_ok = readers is None or before["backup_path"] is None or _is_protected(before["backup_acl"], readers)
    if content_ok and acl_ok and backup_ok:
        return succeed({**before, "reader_sids": readers})
    target = fs.resolve(path)
    changes = []
    if not target.parent.is_dir():
        target.parent.mkdir(parents=True)
        changes.append(change("parent_folder", None, path.rsplit("\\", 1)[0]))
    if not acl_ok:
        assert readers is not None
        _set_protected(fs, path, readers)
        changes.append(change("readers", _format_acl(before["acl"]), _format_acl(_acl(fs, path))))
    if not backup_ok:
        assert readers is not None
        _set_protected(fs, before["backup_path"], readers)
        after_backup = _acl(fs, before["backup_path"])
        changes.append(change("backup_readers", _format_acl(before["backup_acl"]), _format_acl(after_backup)))
    if not content_ok:
        failure = _write_content(fs, path, target, desired, readers, present and spec["keep_backup"], present)
        if failure is not None:
            return failure
    after = _state(fs, path)
    assert isinstance(after, dict)
    if not content_ok:
        changes.append(change("content", before.get("sha256"), after["sha256"]))
    return succeed({**after, "reader_sids": readers}, changes)


def _write_content(
    fs: WindowsFs, path: str, target: Path, desired: bytes, readers: list[str] | None, backup: bool, present: bool
) -> Envelope | None:
    """The temporary file, created with the protected descriptor when readers are given (File.Create with
    a FileSecurity: CreateFile applies it at creation), then swapped in."""
    temporary = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    store = ntfs.NtfsStore(fs.root)
    if readers is not None:
        store.set_descriptor(fs.to_windows(temporary), protected_descriptor(readers))
    # Otherwise WriteAllBytes: the new file (a fresh GUID name, no descriptor) inherits from its folder.
    temporary.write_bytes(desired)
    try:
        if present:
            _invoke_file_replace(fs, temporary, target, fs.resolve(path + ".bak") if backup else None)
        else:
            _move(fs, temporary, target)
    except ReplaceFileError as error:
        return fail(
            "UnexpectedError",
            f'Exception calling "Replace" with "3" argument(s): "{error}"',
            category="NotSpecified",
        )
    finally:
        if temporary.exists() and target.is_file():
            _delete(fs, temporary)
    return None


@operation
def remove(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    path = spec["path"]
    before = _state(fs, path)
    if isinstance(before, Envelope):
        return before
    temporaries = _temporary_files(fs, path)
    changes = []
    if before["ensure"] == "present":
        _delete(fs, fs.resolve(path))
        changes.append(change("ensure", "present", "absent"))
    if before["backup_path"] is not None:
        _delete(fs, fs.resolve(before["backup_path"]))
        changes.append(change("backup_path", before["backup_path"], None))
    for temporary in temporaries:
        windows_path = fs.to_windows(temporary)
        _delete(fs, temporary)
        changes.append(change("temporary_file", windows_path, None))
    after = _state(fs, path)
    assert isinstance(after, dict)
    return succeed(after, changes)


OPERATIONS = {"settings_file/get": get, "settings_file/set": set_, "settings_file/remove": remove}

"""SIMULATOR: model of providers/settings_file/scripts/{get,set,remove}.ps1."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

from devhost import ps51
from devhost.fs import WindowsFs
from devhost.ops.envelope import Envelope, change, fail, require_keys, succeed
from devhost.ps51 import ScriptFact

_SET = ("settings_file/set",)
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
)

_KEYS = {"path", "content", "encoding", "keep_backup"}
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


def _state(fs: WindowsFs, path: str) -> dict[str, Any] | Envelope:
    target = fs.resolve(path)
    backup = fs.resolve(path + ".bak")
    backup_path = path + ".bak" if backup.is_file() else None
    if not target.is_file():
        if target.exists():
            return fail("PathIsNotAFile", f"'{path}' exists and is not a file", prop="path")
        return {"ensure": "absent", "path": path, "backup_path": backup_path}
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
    }


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


def replace_file(fs: WindowsFs, source: Path, target: Path, backup: Path | None) -> None:
    """File.Replace(source, target, backup): what each documented failure leaves behind."""
    code = _next_fault(fs)
    if code in (5, 32, 1175):  # nothing moved: both files keep their names
        raise ReplaceFileError(code)
    if code == 1176:
        # "If lpBackupFileName was specified, the replaced and replacement files retain their original
        # file names. Otherwise, the replaced file no longer exists and the replacement file exists
        # under its original name."
        if backup is None:
            target.unlink()
        raise ReplaceFileError(code)
    if code == 1177:
        # "The replacement file still exists under its original name ... The file to be replaced still
        # exists with a different name. If lpBackupFileName is specified, it will be the name of the
        # replaced file."
        os.replace(target, backup if backup is not None else target.with_name(f"{target.name}.~{uuid.uuid4().hex}"))
        raise ReplaceFileError(code)
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
                os.replace(source, target)
                return
            if attempt == 5 or error.code not in (5, 32, 33, 1175):
                raise


def get(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    state = _state(fs, spec["path"])
    return state if isinstance(state, Envelope) else succeed(state)


def set_(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    path = spec["path"]
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
    if before["ensure"] == "present" and before["sha256"] == hashlib.sha256(desired).hexdigest():
        return succeed(before)
    target = fs.resolve(path)
    changes = []
    if not target.parent.is_dir():
        target.parent.mkdir(parents=True)
        changes.append(change("parent_folder", None, path.rsplit("\\", 1)[0]))
    temporary = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    temporary.write_bytes(desired)
    try:
        if before["ensure"] == "present":
            backup = fs.resolve(path + ".bak") if spec["keep_backup"] else None
            _invoke_file_replace(fs, temporary, target, backup)
        else:
            os.replace(temporary, target)
    except ReplaceFileError as error:
        return fail(
            "UnexpectedError",
            f'Exception calling "Replace" with "3" argument(s): "{error}"',
            category="NotSpecified",
        )
    finally:
        if temporary.exists() and target.is_file():
            temporary.unlink()
    after = _state(fs, path)
    assert isinstance(after, dict)
    changes.append(change("content", before.get("sha256"), after["sha256"]))
    return succeed(after, changes)


def remove(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    before = _state(fs, spec["path"])
    if isinstance(before, Envelope) or before["ensure"] == "absent":
        return before if isinstance(before, Envelope) else succeed(before)
    Path(fs.resolve(spec["path"])).unlink()
    after = _state(fs, spec["path"])
    assert isinstance(after, dict)
    return succeed(after, [change("ensure", "present", "absent")])


OPERATIONS = {"settings_file/get": get, "settings_file/set": set_, "settings_file/remove": remove}

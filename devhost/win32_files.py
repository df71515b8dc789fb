"""SIMULATOR: the Win32 file operations behind .NET's File.Replace and File.Move, with what each documented
failure leaves behind (content and security descriptors), and knobs that make the next call fail."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from devhost import ntfs
from devhost.fs import WindowsFs

# -- ReplaceFileW as Windows does it (learn.microsoft.com/windows/win32/api/winbase/nf-winbase-replacefilew) --

REPLACE_FAULTS = "replace_file_faults.json"  # under _sim/: Win32 error codes, one consumed per ReplaceFile call
# under _sim/: Win32 error codes, one consumed per File.Move (MoveFileEx): an antivirus or file
# watcher holding the file fails the move with a sharing violation (32) or access denied (5), and nothing moves
# (learn.microsoft.com MoveFileExW: it fails as opening the file would; System Error Codes 5, 32, 33).
MOVE_FAULTS = "move_file_faults.json"
_REPLACE_MESSAGES = {
    5: "Access to the path is denied.",
    32: "The process cannot access the file because it is being used by another process.",
    1175: "Unable to remove the file to be replaced.",
    1176: "Unable to move the replacement file to the file to be replaced. The file to be replaced has "
    "retained its original name.",
    1177: "Unable to move the replacement file to the file to be replaced. The file to be replaced has been "
    "renamed using the backup name.",
}
_MOVE_MESSAGES = {
    5: "Access to the path is denied.",
    32: "The process cannot access the file because it is being used by another process.",
    33: "The process cannot access the file because another process has locked a portion of the file.",
    183: "Cannot create a file when that file already exists.",
}


class ReplaceFileError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(_REPLACE_MESSAGES[code])
        self.code = code


class MoveFileError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(_MOVE_MESSAGES[code])
        self.code = code


def _next_fault(fs: WindowsFs, knob: str, modelled: dict[int, str]) -> int | None:
    path = fs.root / "_sim" / knob
    if not path.is_file():
        return None
    faults: list[int] = json.loads(path.read_text(encoding="utf-8"))
    if not faults:
        return None
    path.write_text(json.dumps(faults[1:]), encoding="utf-8")
    if faults[0] not in modelled:
        raise ValueError(f"SIMULATOR: error {faults[0]} of {knob} is not modelled")
    return faults[0]


def _move(fs: WindowsFs, source: Path, target: Path) -> None:
    """A rename on one volume: the file keeps its security descriptor (ntfs.rename)."""
    os.replace(source, target)
    ntfs.NtfsStore(fs.root).rename(fs.to_windows(source), fs.to_windows(target))


def file_move(fs: WindowsFs, source: Path, target: Path) -> None:
    """File.Move(source, target) (MoveFileEx without REPLACE_EXISTING): a fault of MOVE_FAULTS fails it with
    nothing moved."""
    code = _next_fault(fs, MOVE_FAULTS, _MOVE_MESSAGES)
    if code is not None:
        raise MoveFileError(code)
    if target.exists():
        raise MoveFileError(183)
    _move(fs, source, target)


def delete_file(fs: WindowsFs, path: Path) -> None:
    """Remove-Item: the file goes, and its security descriptor with it."""
    windows_path = fs.to_windows(path)
    path.unlink()
    ntfs.NtfsStore(fs.root).forget(windows_path)


def replace_file(fs: WindowsFs, source: Path, target: Path, backup: Path | None) -> None:
    """File.Replace(source, target, backup): what each documented failure leaves behind, content and
    security descriptors (the result carries the replaced file's DACL: ntfs.NtfsStore.replace_file)."""
    code = _next_fault(fs, REPLACE_FAULTS, _REPLACE_MESSAGES)
    if code in (5, 32, 1175):  # nothing moved: both files keep their names
        raise ReplaceFileError(code)
    store = ntfs.NtfsStore(fs.root)
    if code == 1176:
        # "If lpBackupFileName was specified, the replaced and replacement files retain their original
        # file names. Otherwise, the replaced file no longer exists and the replacement file exists
        # under its original name."
        if backup is None:
            delete_file(fs, target)
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


# -- the scripts' retrying wrappers (providers/scripting/ps/_files.ps1) --

# _files.ps1 $TransientFileErrors (SettingsFile and _owners.ps1): access denied, sharing and lock violations.
_TRANSIENT = (5, 32, 33)


def invoke_file_move(fs: WindowsFs, source: Path, target: Path) -> None:
    """_files.ps1 Invoke-FileMove: File.Move, retried up to 5 times on 5, 32 and 33."""
    for attempt in range(1, 6):
        try:
            file_move(fs, source, target)
            return
        except MoveFileError as error:
            if attempt == 5 or error.code not in _TRANSIENT:
                raise


def invoke_file_replace(fs: WindowsFs, source: Path, target: Path, backup: Path) -> None:
    """_files.ps1 Invoke-FileReplace: the target is recovered from the source (Invoke-FileMove) when it is
    gone; sharing errors, 1175 and 1176 (with a backup name both files keep their names) are retried up to 5
    times."""
    for attempt in range(1, 6):
        try:
            replace_file(fs, source, target, backup)
            return
        except ReplaceFileError as error:
            if source.is_file() and not target.exists():
                invoke_file_move(fs, source, target)
                return
            if attempt == 5 or error.code not in (*_TRANSIENT, 1175, 1176):
                raise


def temporary_name(target: Path) -> Path:
    """New-TemporaryPath: '.<name>.<8 hex digits>.tmp' next to the target."""
    return target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.tmp"

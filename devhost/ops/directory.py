"""SIMULATOR: model of providers/directory/scripts/{get,set,remove}.ps1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devhost.fs import WindowsFs
from devhost.ntfs import NtfsStore
from devhost.ops.envelope import Envelope, OperationStopped, change, fail, operation, require_keys, succeed
from devhost.ps51 import ScriptFact

_KEYS = {"path", "subfolders", "delete_contents"}

SCRIPT_FACTS = (
    ScriptFact(
        ("directory/remove",),
        r"if \(Test-ReparsePoint \$Folder\) \{\s*"
        r"\[System\.IO\.Directory\]::Delete\(\$Folder\.FullName, \$false\)\s*return",
        "a created folder replaced by a junction (mklink /J) is removed as a link: GetFileSystemInfos on it "
        "lists the target, so entering it deletes the target's files (Directory.Delete remarks, learn.microsoft.com)",
    ),
    ScriptFact(
        ("directory/remove",),
        r"if \(Test-BehindLink \$folder @\(\$Spec\.created\)\) \{ continue \}",
        "a created folder below a created folder that is now a junction lies in the junction's target",
    ),
)


def _not_a_folder(path: str, prop: str, fix: str) -> OperationStopped:
    return OperationStopped(fail("PathIsNotAFolder", f"'{path}' exists and is a file, not a folder{fix}", prop=prop))


def _state(fs: WindowsFs, spec: dict[str, Any]) -> dict[str, Any]:
    """Get-DirectoryState."""
    path = spec["path"]
    root = fs.resolve(path)
    if not root.is_dir():
        if root.exists():
            raise _not_a_folder(path, "path", "; choose another path or move the file away.")
        return {"ensure": "absent", "path": path, "subfolders": []}
    present = []
    for name in spec["subfolders"]:
        target = fs.resolve(f"{path}\\{name}")
        if target.is_dir():
            present.append(name)
        elif target.exists():
            raise _not_a_folder(f"{path}\\{name}", "subfolders", "; move the file away or rename the sub-folder.")
    return {"ensure": "present", "path": path, "subfolders": present}


def _new_folder_tree(fs: WindowsFs, path: str) -> list[str]:
    """New-FolderTree: create ``path`` and missing parents; return the created ones, parents first."""
    missing: list[str] = []
    current = path
    while len(current) > 3 and not fs.resolve(current).is_dir():
        if fs.resolve(current).exists():
            raise _not_a_folder(current, "path", ".")
        missing.insert(0, current)
        current = current.rsplit("\\", 1)[0]
        current = current + "\\" if len(current) == 2 else current
    drive = fs.root / path[0].upper()
    if path[0].upper() != "C" and not drive.is_dir():
        # Directory.CreateDirectory on a drive that does not exist (the trap reports it).
        reason = f"Could not find a part of the path '{path[:3]}'."
        message = f'Exception calling "CreateDirectory" with "1" argument(s): "{reason}"'
        raise OperationStopped(fail("UnexpectedError", message, category="NotSpecified"))
    for folder in missing:
        fs.resolve(folder).mkdir(parents=True, exist_ok=True)
    return missing


@operation
def get(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    return succeed(_state(fs, spec))


@operation
def set_(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    path = spec["path"]
    before = _state(fs, spec)
    created = _new_folder_tree(fs, path)
    for name in spec["subfolders"]:
        created += _new_folder_tree(fs, f"{path}\\{name}")
    after = {**_state(fs, spec), "created": created}
    if not created:
        return succeed(after)
    changes = [change("ensure", "absent", "present")] if before["ensure"] == "absent" else []
    changes.append(change("subfolders", before["subfolders"], after["subfolders"]))
    return succeed(after, changes)


def _delete_link(link: Path) -> None:
    """Directory.Delete(path, false) on a junction or directory symbolic link (a symlink here): the
    link goes, its target stays (learn.microsoft.com, Directory.Delete remarks)."""
    link.unlink()


def _remove_tree(folder: Path) -> None:
    """The script's Remove-FolderTree: a junction or directory symbolic link, inside the tree or the
    folder itself, is removed as a link, never entered. Listing a link enters it (GetFileSystemInfos
    on a junction lists its target, as ``iterdir`` on a symlink does), so an unchecked root link would
    have its target emptied; Remove-Item -Recurse in Windows PowerShell 5.1 did that for nested links
    (PowerShell/PowerShell#621)."""
    if folder.is_symlink():
        _delete_link(folder)
        return
    for entry in list(folder.iterdir()):
        if entry.is_dir():
            _remove_tree(entry)
        else:
            entry.unlink()
    folder.rmdir()


def _behind_link(fs: WindowsFs, folder: str, created: list[str]) -> bool:
    """Test-BehindLink: a created folder above ``folder`` is now a link, so ``folder`` is in its target."""
    return any(
        folder.lower().startswith(parent.lower() + "\\") and fs.resolve(parent).is_symlink() for parent in created
    )


@operation
def remove(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS | {"created"})
    ntfs = NtfsStore(fs.root)
    removed: list[str] = []
    kept: list[str] = []
    for folder in sorted(spec["created"], key=len, reverse=True):
        target = fs.resolve(folder)
        if not target.is_dir() or _behind_link(fs, folder, spec["created"]):
            continue
        if spec["delete_contents"]:
            _remove_tree(target)
        elif not any(target.iterdir()):
            if target.is_symlink():
                _delete_link(target)  # Remove-Item on a link to an empty folder removes the link
            else:
                target.rmdir()
        else:
            kept.append(folder)
            continue
        ntfs.forget(folder)  # the folder's security descriptor goes with it
        removed.append(folder)
    state = {
        "ensure": "present" if fs.resolve(spec["path"]).is_dir() else "absent",
        "path": spec["path"],
        "removed": removed,
        "kept": kept,
    }
    return succeed(state, [change("folder", folder, None) for folder in removed])


OPERATIONS = {"directory/get": get, "directory/set": set_, "directory/remove": remove}

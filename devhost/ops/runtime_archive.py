"""SIMULATOR: model of providers/runtime_archive/scripts/{get,chunk,set,remove}.ps1.

File operations go through devhost.fileops (a running agent's images cannot be deleted or overwritten, only
renamed; files other programs hold open), the archive through devhost.ziparchive (.NET Framework's ZipFile),
pools through devhost.iis and services through devhost.scm. Every stop and start of an agent is recorded in
the journal as ``{"kind": "agent", "action": "stop" | "start", "what": "pool" | "service", "name"}``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from devhost import iis, ntfs, scm
from devhost.fileops import DotNetError, delete_empty_folder, delete_file, move_file, remove_tree
from devhost.fs import WindowsFs
from devhost.hooks import Journal, sim_dir
from devhost.ops.envelope import Envelope, OperationStopped, change, fail, operation, require_keys, succeed
from devhost.ops.iis_common import not_installed, object_state
from devhost.ps51 import ScriptFact
from devhost.ziparchive import extract_to_directory, open_read

_KEYS = {"runtime_path", "archive_name", "sha256", "size", "keep_files", "app_pool", "service_name"}
_CHUNK_KEYS = {"runtime_path", "sha256", "size", "offset", "data"}
PROGRAM_DATA = "C:\\ProgramData"  # [Environment]::GetFolderPath('CommonApplicationData')
ADMIN_SIDS = ("S-1-5-18", "S-1-5-32-544")
NEW_FOLDER, OLD_FOLDER = ".iac-new", ".iac-old"
MAX_PATH = 259
# Path.GetInvalidFileNameChars() on Windows.
_INVALID_NAME = re.compile(r'["<>|:*?\\/\x00-\x1f]')

_SET = ("runtime_archive/set",)
_ALL = ("runtime_archive/get", "runtime_archive/chunk", "runtime_archive/set", "runtime_archive/remove")
# The constructs of the reviewed scripts that the model below relies on (checked by bless_scripts).
SCRIPT_FACTS = (
    ScriptFact(
        _ALL,
        r"\.Substring\(0, 16\)\s+return \[System\.IO\.Path\]::Combine\(\[Environment\]::GetFolderPath\("
        r"'CommonApplicationData'\), 'UsercubeIac', 'RuntimeArchive', \$key\)",
        "the staging folder is %ProgramData%\\UsercubeIac\\RuntimeArchive\\<16 hex digits of the Runtime path's "
        "SHA-256>",
    ),
    ScriptFact(
        ("runtime_archive/chunk",),
        r"\[System\.IO\.Directory\]::CreateDirectory\(\$root, \(New-AdminOnlySecurity\)\)",
        "the staging root is created with its protected SYSTEM/Administrators DACL in the same call "
        "(Directory.CreateDirectory(String, DirectorySecurity), .NET Framework)",
    ),
    ScriptFact(
        ("runtime_archive/chunk",),
        r"\$stream\.SetLength\(\$offset\)\s+\$stream\.Position = \$offset",
        "a chunk cuts the staging file to its offset before writing, so a chunk sent again lands where it did",
    ),
    ScriptFact(
        _SET,
        r"\[System\.IO\.Compression\.ZipFile\]::ExtractToDirectory\(\$partial, \$new\)",
        "the archive is extracted into Runtime\\.iac-new, which the script has just removed: ExtractToDirectory "
        "never overwrites (IOException for a file that exists; learn.microsoft.com ZipFile.ExtractToDirectory)",
    ),
    ScriptFact(
        _SET,
        r"Remove-Tree \$new  # left by an operation that was interrupted\s+Remove-Tree \$old",
        "leftover work folders of an interrupted operation are removed before the extraction",
    ),
    ScriptFact(
        _SET,
        r"if \(\$replaced\.Count \+ \$obsolete\.Count -gt 0\) \{ \$stopped = Stop-Agent \$Spec \}",
        "the agent is stopped only when a file it runs from is to be replaced or removed",
    ),
    ScriptFact(
        _SET,
        r"for \(\$index = \$moves\.Count - 1; \$index -ge 0; \$index--\) \{\s+"
        r"\[System\.IO\.File\]::Move\(\$moves\[\$index\]\[1\], \$moves\[\$index\]\[0\]\)",
        "a failed swap is undone newest move first",
    ),
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"if \(\(\$folder\.Attributes -band \[System\.IO\.FileAttributes\]::ReparsePoint\) -ne 0\) \{\s+"
        r"\[System\.IO\.Directory\]::Delete\(\$Path, \$false\)",
        "Remove-Tree removes a junction as a link, never entering it (Directory.Delete remarks; "
        "PowerShell/PowerShell#621 for Remove-Item -Recurse)",
    ),
)


# -- the staging folder ---------------------------------------------------------------------------------


def staging_folder(runtime_path: str) -> str:
    """Get-StagingFolder (ToLowerInvariant and Python's lower() agree on the ASCII paths Windows setups use)."""
    key = hashlib.sha256(runtime_path.lower().encode("utf-8")).hexdigest()[:16]
    return f"{PROGRAM_DATA}\\UsercubeIac\\RuntimeArchive\\{key}"


def partial_path(folder: str, sha256: str) -> str:
    return f"{folder}\\upload-{sha256}.partial"


def _admin_only() -> ntfs.Descriptor:
    """New-AdminOnlySecurity: protected, SYSTEM and Administrators full control, inherited below."""
    both = frozenset({ntfs.CONTAINER_INHERIT, ntfs.OBJECT_INHERIT})
    return ntfs.Descriptor(
        protected=True, explicit=[ntfs.Ace(sid, ntfs.FULL_CONTROL, inheritance=both) for sid in ADMIN_SIDS]
    )


def is_admin_only(store: ntfs.NtfsStore, path: str) -> bool:
    """Test-AdminOnly: protected, and every entry of SYSTEM or Administrators."""
    descriptor = store.descriptor(path)
    return descriptor.protected and all(ace.sid.upper() in ADMIN_SIDS for ace in descriptor.explicit)


def _initialize_staging(fs: WindowsFs, folder: str) -> None:
    root = folder.rsplit("\\", 1)[0]
    store = ntfs.NtfsStore(fs.root)
    if not fs.resolve(root).is_dir():
        fs.resolve(root.rsplit("\\", 1)[0]).mkdir(parents=True, exist_ok=True)
        fs.resolve(root).mkdir()
        store.set_descriptor(root, _admin_only())
    elif not is_admin_only(store, root):
        # SetAccessControl writes the DACL only (the sections the new object changed): the owner stays.
        store.set_descriptor(root, ntfs.Descriptor(store.descriptor(root).owner, True, _admin_only().explicit))
    fs.resolve(folder).mkdir(parents=True, exist_ok=True)


def _manifest(fs: WindowsFs, folder: str) -> dict[str, Any] | None:
    path = fs.resolve(f"{folder}\\manifest.json")
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _write_manifest(fs: WindowsFs, folder: str, manifest: dict[str, Any]) -> None:
    temporary = fs.resolve(f"{folder}\\manifest.json.tmp")
    temporary.write_text(json.dumps(manifest, separators=(",", ":")), encoding="utf-8")
    os.replace(temporary, fs.resolve(f"{folder}\\manifest.json"))


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def _state(fs: WindowsFs, spec: dict[str, Any]) -> dict[str, Any]:
    """Get-ArchiveState."""
    runtime = spec["runtime_path"]
    folder = staging_folder(runtime)
    state: dict[str, Any] = {
        "ensure": "absent",
        "runtime_path": runtime,
        "sha256": None,
        "archive_name": None,
        "file_count": 0,
        "missing_files": [],
        "held_bytes": 0,
        "held_sha256": None,
    }
    manifest = _manifest(fs, folder)
    if manifest is not None:
        files = list(manifest["files"])
        missing = [name for name in files if not fs.resolve(f"{runtime}\\{name}").is_file()]
        state.update(
            ensure="present",
            sha256=manifest["sha256"],
            archive_name=manifest["archive_name"],
            file_count=len(files),
            missing_files=missing[:20],
        )
    partial = fs.resolve(partial_path(folder, spec["sha256"]))
    if partial.is_file():
        state.update(held_bytes=partial.stat().st_size, held_sha256=_sha256_file(partial))
    return state


# -- the archive's entries -------------------------------------------------------------------------------


def _stop(error_id: str, message: str, prop: str) -> OperationStopped:
    return OperationStopped(fail(error_id, message, prop=prop))


def _file_list(fs: WindowsFs, zip_path: str, runtime: str) -> list[str]:
    """Get-ArchiveFileList: every entry checked before anything is extracted."""
    files: list[str] = []
    seen: set[str] = set()
    try:
        entries = open_read(fs, zip_path)
    except DotNetError as error:
        raise OperationStopped(fail("UnexpectedError", error.called("OpenRead", 1), category="NotSpecified")) from None
    for entry in entries:
        name = entry.full_name.replace("/", "\\")
        is_folder = name.endswith("\\")
        relative = name.rstrip("\\")
        parts = relative.split("\\")
        if not relative or any(part in ("", ".", "..") or _INVALID_NAME.search(part) for part in parts):
            raise _stop(
                "ArchiveEntryRefused",
                f"the archive's entry '{entry.full_name}' is not a relative path inside the folder; this archive "
                "cannot be extracted safely",
                "sha256",
            )
        if parts[0].lower() in (NEW_FOLDER, OLD_FOLDER):
            raise _stop(
                "ArchiveEntryRefused",
                f"the archive's entry '{entry.full_name}' uses the name {parts[0]}, which the extraction needs for "
                "itself",
                "sha256",
            )
        longest = f"{runtime}\\{NEW_FOLDER}\\{relative}"
        if len(longest) > MAX_PATH:
            raise _stop(
                "ArchivePathTooLong",
                f"'{longest}' would be {len(longest)} characters; Windows PowerShell 5.1 (.NET Framework) handles at "
                "most 259: choose a shorter working directory",
                "runtime_path",
            )
        if is_folder:
            continue
        if relative.lower() in seen:
            raise _stop(
                "ArchiveEntryRefused", f"the archive holds '{relative}' twice (names ignore case on Windows)", "sha256"
            )
        seen.add(relative.lower())
        files.append(relative)
    return files


# -- the agent -------------------------------------------------------------------------------------------


def _journal(fs: WindowsFs, action: str, what: str, name: str) -> None:
    Journal(sim_dir(fs.root) / "journal.jsonl")({"kind": "agent", "action": action, "what": what, "name": name})


def _stop_agent(fs: WindowsFs, spec: dict[str, Any]) -> list[str]:
    """Stop-Agent."""
    stopped: list[str] = []
    if spec["app_pool"]:
        if not iis.is_installed(fs.root):
            raise OperationStopped(not_installed())
        manager = iis.ServerManager(fs.root)
        name = spec["app_pool"]
        if manager.find_pool(name) is not None and object_state(lambda: manager.pool_state(name)) == "Started":
            manager.stop_pool(name)  # WAS: Stopped once the worker process has gone
            _journal(fs, "stop", "pool", name)
            stopped.append("pool")
    if spec["service_name"]:
        service = scm.get(fs.root, spec["service_name"])
        if service is not None and service.state == "Running":
            scm.stop(fs.root, spec["service_name"])
            _journal(fs, "stop", "service", spec["service_name"])
            stopped.append("service")
    return stopped


def _start_agent(fs: WindowsFs, spec: dict[str, Any], stopped: list[str]) -> None:
    """Start-Agent."""
    if "pool" in stopped:
        name = spec["app_pool"]
        state = iis.ServerManager(fs.root).start_pool(name)
        _journal(fs, "start", "pool", name)
        if state != "Started":
            raise _stop(
                "AgentStartFailed",
                f"application pool '{name}' did not start again (state {state}); see the System event log (WAS), "
                "then start it",
                "app_pool",
            )
    if "service" in stopped:
        name = spec["service_name"]
        try:
            scm.start(fs.root, name)
        except scm.ScmError:
            # ServiceController.Start wraps the Win32 error in InvalidOperationException; the trap reports it.
            message = (
                f'Exception calling "Start" with "0" argument(s): "Cannot start service {name} on computer \'.\'."'
            )
            raise OperationStopped(fail("UnexpectedError", message, category="NotSpecified")) from None
        _journal(fs, "start", "service", name)


def _trap(error: DotNetError, method: str, arguments: int) -> OperationStopped:
    """An exception the script does not catch: the prelude's trap reports PowerShell's wrapper message."""
    return OperationStopped(fail("UnexpectedError", error.called(method, arguments), category="NotSpecified"))


def _delete(fs: WindowsFs, path: str) -> None:
    """[System.IO.File]::Delete($path), outside any try: a failure ends the operation through the trap."""
    try:
        delete_file(fs, path)
    except DotNetError as error:
        raise _trap(error, "Delete", 1) from None


def _remove_tree(fs: WindowsFs, path: str) -> None:
    try:
        remove_tree(fs, path)
    except DotNetError as error:
        raise _trap(error, "Delete", 0) from None


def _remove_empty_parents(fs: WindowsFs, runtime: str, relative: list[str]) -> None:
    """Remove-EmptyParents."""
    folders: set[str] = set()
    for file in relative:
        parent = file.rsplit("\\", 1)[0] if "\\" in file else ""
        while parent:
            folders.add(parent)
            parent = parent.rsplit("\\", 1)[0] if "\\" in parent else ""
    for folder in sorted(folders, key=len, reverse=True):
        full = fs.resolve(f"{runtime}\\{folder}")
        if full.is_dir() and not any(full.iterdir()):
            delete_empty_folder(fs, f"{runtime}\\{folder}")


# -- the operations --------------------------------------------------------------------------------------


@operation
def get(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    return succeed(_state(fs, spec))


@operation
def chunk(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _CHUNK_KEYS)
    folder = staging_folder(spec["runtime_path"])
    _initialize_staging(fs, folder)
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
            if other.name.lower() != partial.rsplit("\\", 1)[-1].lower():
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


@operation
def set_(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    runtime, sha = spec["runtime_path"], spec["sha256"]
    folder = staging_folder(runtime)
    before = _state(fs, spec)
    if before["sha256"] == sha and not before["missing_files"]:
        return succeed(before)
    partial = partial_path(folder, sha)
    if before["held_bytes"] != int(spec["size"]):
        return fail(
            "ArchiveNotUploaded",
            f"the host holds {before['held_bytes']} of the archive's {spec['size']} bytes; upload it first (the chunk "
            "operation)",
            prop="sha256",
        )
    if before["held_sha256"] != sha:
        _delete(fs, partial)
        return fail(
            "ArchiveHashMismatch",
            f"the uploaded file has SHA-256 {before['held_sha256']}, not {sha}; it was deleted, and the next run "
            "uploads it again",
            prop="sha256",
        )
    keep = {str(name).lower() for name in spec["keep_files"]}
    files = [name for name in _file_list(fs, partial, runtime) if name.lower() not in keep]
    incoming = {name.lower() for name in files}
    manifest = _manifest(fs, folder)
    previous = list(manifest["files"]) if manifest is not None else []
    obsolete = [
        name
        for name in previous
        if name.lower() not in incoming and name.lower() not in keep and fs.resolve(f"{runtime}\\{name}").is_file()
    ]
    replaced = [name for name in files if fs.resolve(f"{runtime}\\{name}").is_file()]

    changes = []
    if not fs.resolve(runtime).is_dir():
        fs.resolve(runtime).mkdir(parents=True)
        changes.append(change("runtime_path", None, runtime))
    new, old = f"{runtime}\\{NEW_FOLDER}", f"{runtime}\\{OLD_FOLDER}"
    _remove_tree(fs, new)
    _remove_tree(fs, old)
    try:
        extract_to_directory(fs, partial, new)
    except DotNetError as error:
        _remove_tree(fs, new)
        return fail(
            "ExtractionFailed",
            f"extracting {spec['archive_name']} failed: {error.message} The version in {runtime} was not touched and "
            "still runs.",
            prop="sha256",
        )

    stopped = _stop_agent(fs, spec) if replaced or obsolete else []
    moves: list[tuple[str, str]] = []
    try:
        for name in [*replaced, *obsolete]:
            aside = f"{old}\\{name}"
            fs.resolve(aside).parent.mkdir(parents=True, exist_ok=True)
            move_file(fs, f"{runtime}\\{name}", aside)  # Move-FileWithRetry: a held file stays held
            moves.append((f"{runtime}\\{name}", aside))
        for name in files:
            target = f"{runtime}\\{name}"
            fs.resolve(target).parent.mkdir(parents=True, exist_ok=True)
            move_file(fs, f"{new}\\{name}", target)
            moves.append((f"{new}\\{name}", target))
        _write_manifest(fs, folder, {"sha256": sha, "archive_name": spec["archive_name"], "files": files})
    except DotNetError as error:
        for origin, moved in reversed(moves):
            try:
                move_file(fs, moved, origin)
            except DotNetError as undo:
                raise _trap(undo, "Move", 2) from None
        _remove_tree(fs, new)
        _remove_tree(fs, old)
        _start_agent(fs, spec, stopped)
        return fail(
            "SwapFailed",
            f"installing {spec['archive_name']} in {runtime} failed: {error.message} Every file was put back; the "
            "previous version runs.",
            prop="sha256",
        )
    _remove_tree(fs, old)
    _remove_tree(fs, new)
    _remove_empty_parents(fs, runtime, obsolete)
    _delete(fs, partial)
    _start_agent(fs, spec, stopped)
    changes.append(change("sha256", before["sha256"], sha))
    changes.append(change("files", len(previous), len(files)))
    if obsolete:
        changes.append(change("removed_files", len(obsolete), 0))
    for what in stopped:
        changes.append(change(f"agent_{what}", "Started", "stopped for the upgrade, started again"))
    return succeed(_state(fs, spec), changes)


@operation
def remove(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    runtime = spec["runtime_path"]
    folder = staging_folder(runtime)
    before = _state(fs, spec)
    present: list[str] = []
    if before["ensure"] == "present":
        manifest = _manifest(fs, folder)
        assert manifest is not None
        present = [name for name in manifest["files"] if fs.resolve(f"{runtime}\\{name}").is_file()]
    stopped = _stop_agent(fs, spec) if present else []
    for name in present:
        _delete(fs, f"{runtime}\\{name}")
    _remove_empty_parents(fs, runtime, present)
    for work in (NEW_FOLDER, OLD_FOLDER):
        _remove_tree(fs, f"{runtime}\\{work}")
    _remove_tree(fs, folder)
    ntfs.NtfsStore(fs.root).forget(folder)
    _start_agent(fs, spec, stopped)
    after = _state(fs, spec)
    if before["ensure"] == "absent" and not present:
        return succeed(after)
    return succeed(after, [change("ensure", before["ensure"], "absent"), change("files", len(present), 0)])


OPERATIONS = {
    "runtime_archive/get": get,
    "runtime_archive/chunk": chunk,
    "runtime_archive/set": set_,
    "runtime_archive/remove": remove,
}

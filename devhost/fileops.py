"""SIMULATOR: the .NET Framework file operations the RuntimeArchive scripts use (File.Move, File.Delete,
FileInfo.Delete, Directory.Delete), with what running programs and open handles forbid.

Program images. Windows maps a program's .exe and its DLLs into the process: while it runs they can be
neither opened for writing nor deleted ("DeleteFile fails if an application attempts to delete a file that
has other handles open for normal I/O or as a memory-mapped file", learn.microsoft.com DeleteFile; ASP.NET
Core's "Locked deployment files": the app's files are locked while it runs, stop the app pool to release
them, learn.microsoft.com "Host ASP.NET Core on Windows with IIS"), but they can be renamed or moved on the
same volume, since the lock protects the file's data, not its directory entry (stackoverflow.com/q/14774099,
a loaded assembly renamed while it runs). Which files a running agent holds: the .dll and .exe files below its
content root whose content was there when it started (modified no later than its start: a file written
afterwards was never loaded, and a held file keeps its modification time when it is renamed, so it stays
held), for an IIS site that is Started with its pool Started (the in-process ASP.NET Core app runs in
w3wp.exe and loads at the later of the two starts; the project's pools start AlwaysRunning with preload), or
below the program folder of a running service. A file in the work folders the scripts use (.iac-new, .iac-old)
is held only when it was moved there after the program started (a rename sets its change time, st_ctime):
a program loads its images from where they are when it starts. An application pool's worker goes on
holding its images after the pool stopped, for the knob ``pool_worker_exit_s`` seconds (default 0; up to
the pool's shutdownTimeLimit on Windows, see devhost.iis.ServerManager.stop_pool). Not modelled: a held
file moved out of the content root (it would stay held on Windows; the scripts never move one there).

Other programs' handles. ``knobs.json`` ``files_held_open`` lists Windows paths some other program (an
antivirus scan, an editor) holds open without sharing: moving or deleting one fails with a sharing violation.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from devhost import accounts, iis, ntfs, scm
from devhost.fs import WindowsFs
from devhost.hooks import read_knobs

_IMAGES = (".dll", ".exe")
_WORK_FOLDERS = (".iac-new", ".iac-old")


class DotNetError(Exception):
    """A .NET exception as a script sees it: its type, message and HRESULT."""

    def __init__(self, type_name: str, message: str, hresult: int = 0) -> None:
        super().__init__(message)
        self.type_name = type_name
        self.message = message
        self.hresult = hresult

    def called(self, method: str, arguments: int) -> str:
        """The message PowerShell's MethodInvocationException wraps it in (what a trap reports)."""
        return f'Exception calling "{method}" with "{arguments}" argument(s): "{self.message}"'


def _sharing_violation(path: str) -> DotNetError:
    return DotNetError(
        "System.IO.IOException",
        f"The process cannot access the file '{path}' because it is being used by another process.",
        0x80070020,
    )


def _access_denied(path: str) -> DotNetError:
    return DotNetError("System.UnauthorizedAccessException", f"Access to the path '{path}' is denied.", 0x80070005)


def _content_roots(state_dir: Path) -> list[tuple[str, float, str]]:
    """(content root in lower case, when its program started, the program) of every running agent."""
    roots: list[tuple[str, float, str]] = []
    if iis.is_installed(state_dir):
        manager = iis.ServerManager(state_dir)
        for name in manager.site_names():
            site = manager.find_site(name)
            assert site is not None
            pool = manager.application_pool_of(site)
            # (A site WAS has not picked up yet is not Started: it runs nothing.)
            site_start, pool_start = manager.running_since("sites", name), manager.running_since("pools", pool)
            root = manager.root_directory(site).get("physicalPath", "").replace("%SystemDrive%", "C:")
            if site_start is not None and pool_start is not None:
                started = max(site_start, pool_start)
                roots.append((root.rstrip("\\").lower(), started, f"w3wp.exe (application pool {pool})"))
            exiting = manager.exiting_worker_since(pool)
            exit_at = worker_exit_at(state_dir, pool)
            if exiting is not None and exit_at is not None and time.time() < exit_at:
                roots.append((root.rstrip("\\").lower(), exiting[0], f"w3wp.exe (application pool {pool}, exiting)"))
    for service in scm.load(state_dir).values():
        if service.state != "Stopped" and not service.system:  # (its process runs: paused or pending too)
            folder, _, exe = scm.executable_of(service.image_path).rpartition("\\")
            roots.append((folder.lower(), service.started_at, f"{exe} (service {service.name})"))
    return roots


def held_by(state_dir: Path, windows_path: str) -> str | None:
    """The running program whose image ``windows_path`` is, or None."""
    lowered = windows_path.lower()
    if not lowered.endswith(_IMAGES):
        return None
    file = WindowsFs(state_dir).resolve(windows_path)
    if not file.is_file():
        return None
    status = file.stat()
    for root, started, program in _content_roots(state_dir):
        if not root or not lowered.startswith(root + "\\") or status.st_mtime > started:
            continue
        in_work_folder = lowered[len(root) + 1 :].split("\\", 1)[0] in _WORK_FOLDERS
        if not in_work_folder or status.st_ctime >= started:
            return program
    return None


def timespan_s(text: str) -> float:
    """A configuration TimeSpan, [d.]hh:mm:ss."""
    days = 0
    if "." in text.split(":")[0]:
        head, text = text.split(".", 1)
        days = int(head)
    hours, minutes, seconds = text.split(":")
    return (days * 24 + int(hours)) * 3600 + int(minutes) * 60 + float(seconds)


def worker_exit_at(state_dir: Path, pool: str) -> float | None:
    """When the last stopped worker of ``pool`` exits (None: it had none): the knob ``pool_worker_exit_s`` after
    the stop, but no later than the pool's shutdownTimeLimit, when WAS terminates it (learn.microsoft.com
    applicationPools <processModel>: "If the worker process does not shut down within the shutdownTimeLimit, it
    will be terminated")."""
    manager = iis.ServerManager(state_dir)
    exiting = manager.exiting_worker_since(pool)
    element = manager.find_pool(pool)
    if exiting is None or element is None:
        return None
    limit = timespan_s(manager.pool_value(element, "processModel/shutdownTimeLimit"))
    return exiting[1] + min(float(read_knobs(state_dir).get("pool_worker_exit_s") or 0), limit)


def _held_open(state_dir: Path, windows_path: str) -> bool:
    held = read_knobs(state_dir).get("files_held_open") or []
    return windows_path.lower() in {str(path).lower() for path in held}


def open_to_read(fs: WindowsFs, path: str) -> None:
    """The open of File.ReadAllText / ReadAllBytes (FileAccess.Read, FileShare.Read), for a file that exists:
    IOException on a sharing violation (another program holds it open without sharing, ``files_held_open``),
    UnauthorizedAccessException when its DACL does not grant the deploying administrator FILE_READ_DATA (an
    explicit deny entry, say: an administrator's token gets no bypass, learn.microsoft.com "How DACLs Control
    Access to an Object"). Both are listed under File.ReadAllText's exceptions (learn.microsoft.com)."""
    if _held_open(fs.root, path):
        raise _sharing_violation(path)
    if not ntfs.can_read_file(ntfs.NtfsStore(fs.root), path, set(accounts.OPERATOR_TOKEN)):
        raise _access_denied(path)


def move_file(fs: WindowsFs, source: str, target: str) -> None:
    """File.Move(source, target): a rename on the same volume, allowed for a running program's image."""
    src, dst = fs.resolve(source), fs.resolve(target)
    if not src.is_file():
        raise DotNetError("System.IO.FileNotFoundException", f"Could not find file '{source}'.", 0x80070002)
    if dst.exists():
        raise DotNetError("System.IO.IOException", "Cannot create a file when that file already exists.", 0x800700B7)
    if not dst.parent.is_dir():
        raise DotNetError("System.IO.DirectoryNotFoundException", "Could not find a part of the path.", 0x80070003)
    if _held_open(fs.root, source):
        raise _sharing_violation(source)
    os.replace(src, dst)
    ntfs.NtfsStore(fs.root).rename(source, target)  # it keeps its own security descriptor


def delete_file(fs: WindowsFs, path: str) -> None:
    """File.Delete / FileInfo.Delete (after the scripts cleared its attributes): refused for a running
    program's image and for a file another program holds open; a missing file is no error.

    A mapped image cannot be deleted even with no handle open: the file system refuses it with
    STATUS_CANNOT_DELETE (learn.microsoft.com, Windows drivers, "Executable Images"), which DeleteFile reports
    as ERROR_ACCESS_DENIED (5; support.microsoft.com "Mapping NT Status Error Codes to Win32 Error Codes"), so
    .NET throws UnauthorizedAccessException. (ERROR_USER_MAPPED_FILE, 1224, is what writing or truncating a
    file with a user-mapped section gives, learn.microsoft.com System Error Codes 1000-1299; the scripts never
    overwrite an image.)"""
    target = fs.resolve(path)
    if not target.exists():
        return
    if held_by(fs.root, path) is not None:
        raise _access_denied(path)
    if _held_open(fs.root, path):
        raise _sharing_violation(path)
    target.unlink()
    ntfs.NtfsStore(fs.root).forget(path)


def write_file(fs: WindowsFs, path: str, data: bytes) -> None:
    """A new file's content (FileMode.CreateNew): the caller has checked that it does not exist."""
    target = fs.resolve(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def delete_empty_folder(fs: WindowsFs, path: str) -> None:
    """Directory.Delete(path, false)."""
    folder = fs.resolve(path)
    if any(folder.iterdir()):
        raise DotNetError("System.IO.IOException", "The directory is not empty.", 0x80070091)
    folder.rmdir()


def remove_tree(fs: WindowsFs, path: str) -> None:
    """The scripts' Remove-Tree: files deleted one by one (FileInfo.Delete, whose failure the scripts do not
    catch), then each folder; a link (a symlink here, a junction on Windows) is removed as a link, never
    entered."""
    folder = fs.resolve(path)
    if not folder.exists() and not folder.is_symlink():
        return
    if folder.is_symlink():
        folder.unlink()
        return
    for entry in sorted(folder.iterdir()):
        child = f"{path}\\{entry.name}"
        if entry.is_dir() and not entry.is_symlink():
            remove_tree(fs, child)
        elif entry.is_symlink():
            entry.unlink()
        else:
            delete_file(fs, child)
    folder.rmdir()
    ntfs.NtfsStore(fs.root).forget(path)

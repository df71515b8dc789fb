"""SIMULATOR: the .NET Hosting Bundle installer (dotnet-hosting-<version>-win.exe, a WiX Burn bundle) run silently.

The simulated host cannot run a Windows executable. It runs a *stand-in*: a file that starts with ``MZ`` and holds
the line ``SIMULATED-DOTNET-HOSTING-BUNDLE <version>`` in its first 4 KiB (``stand_in_installer`` writes one; the
tests use it as the installer a user downloads). Any other file is refused loudly: the simulator does not know what
a real executable would do.

What a run does, with its exit code, from Microsoft's documentation where it says so:
- the command line is the bundle's own (its help text, dotnet/aspnetcore ``bundle.wxl``: ``/install | /repair``,
  ``/quiet``, ``/norestart``, ``/log <file>``); anything else is refused as not modelled;
- ``/install`` of a version not installed registers the ASP.NET Core shared framework
  (``HKLM\\SOFTWARE\\Microsoft\\ASP.NET Core\\Shared Framework\\v<major.minor>\\<version>``) and adds the
  AspNetCoreModuleV2 global module to IIS only if IIS is installed at that moment
  (learn.microsoft.com, "The .NET Hosting Bundle": "If the Hosting Bundle is installed before IIS, the bundle
  installation must be repaired"): exit 0;
- ``/install`` of the version already installed changes nothing (Burn finds the bundle present and plans no
  package; the manual's remedy is a repair, not a second install): exit 0;
- ``/install`` of an older version than one of the same major.minor already installed: Burn detects a downgrade of
  the related bundle and refuses it, exit 1638 (ERROR_PRODUCT_VERSION, "Another version of this product is already
  installed", learn.microsoft.com "MsiExec.exe and InstMsi.exe error messages"; WiX's standard bootstrapper
  application records BOOTSTRAPPER_RELATED_OPERATION_DOWNGRADE);
- ``/repair`` of the installed version adds AspNetCoreModuleV2 when IIS is there and the module is not, and
  records the .NET runtime (Microsoft.NETCore.App) of its version again (a Burn repair repairs every package of the
  bundle, the runtime's MSI among them): exit 0;
  ``/repair`` of a version that is not installed is not modelled (refused);
- replacing ``aspnetcorev2.dll`` while an IIS worker process has it loaded (a started pool with start mode
  AlwaysRunning has its w3wp.exe running, and every worker loads the global modules) cannot happen in place: Windows
  Installer schedules the file for the next start (MoveFileEx with MOVEFILE_DELAY_UNTIL_REBOOT, recorded in
  ``PendingFileRenameOperations``) and the run exits 3010 (ERROR_SUCCESS_REBOOT_REQUIRED: "a restart is required to
  complete the install"); the installer never restarts the host under ``/norestart``;
- one-shot knob ``installer_faults`` (``{"on": "hosting-bundle", "exit_code": 1603}``): the next run fails with
  that code and changes nothing (1603 is a fatal error, rolled back; 1618 another installation in progress);
  ``{"on": "hosting-bundle", "times_out": true}``: the run does not end within the script's wait (a hung custom
  action, say). The script then ends the bundle and the processes it started (``kill_hosting_bundle``, which also
  models failing Win32_Process listings, knob ``cim_faults``): nothing is
  installed, and the MSI transaction the bundle's engine had begun in the Windows Installer service (msiexec /V,
  not a child of the bundle) is rolled back by that service, which owns the mutex ``Global\\_MSIExecute`` until it
  is done (learn.microsoft.com "_MSIExecute Mutex"); here until ``finish_rollback`` (a test's "later") or a
  restart.
The log file named by ``/log`` gets a few lines, as the real one does (much longer there).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from devhost import features, iis
from devhost.fs import WindowsFs
from devhost.hooks import Journal, Knobs, sim_dir

STAND_IN_MARKER = b"SIMULATED-DOTNET-HOSTING-BUNDLE "
SESSION_MANAGER = "HKLM:\\SYSTEM\\CurrentControlSet\\Control\\Session Manager"
PENDING_RENAMES = "PendingFileRenameOperations"
ANCM_FILE = "C:\\Program Files\\IIS\\Asp.Net Core Module\\V2\\aspnetcorev2.dll"
SUCCESS, PRODUCT_VERSION, REBOOT_REQUIRED = 0, 1638, 3010
_VERSION = re.compile(rb"SIMULATED-DOTNET-HOSTING-BUNDLE (\d+\.\d+\.\d+)\r?\n")


class NotModelled(Exception):
    """A run the simulator does not model: reported loudly, never guessed."""


def stand_in_installer(path: Path, version: str, size: int = 64 * 1024) -> Path:
    """Write a stand-in hosting bundle installer of ``version`` (``size`` bytes, for upload tests)."""
    head = b"MZ\r\n" + STAND_IN_MARKER + version.encode("ascii") + b"\r\n"
    filler = bytes((index * 31 + 7) % 251 for index in range(max(0, size - len(head))))
    path.write_bytes(head + filler)
    return path


def stand_in_version(data: bytes) -> str:
    """The version a stand-in installs; NotModelled for any other file."""
    found = _VERSION.search(data[:4096])
    if not data.startswith(b"MZ") or found is None:
        raise NotModelled(
            "SIMULATOR: this file is not a stand-in hosting bundle installer (devhost.installers.stand_in_installer); "
            "the simulated host cannot run a real Windows executable"
        )
    return found.group(1).decode("ascii")


def _parse(version: str) -> tuple[int, int, int]:
    major, minor, patch = (int(part) for part in version.split("."))
    return major, minor, patch


def installed_runtimes(state_dir: Path) -> list[str]:
    """Every ASP.NET Core runtime version the registry lists (Shared Framework\\v<family>\\<version>)."""
    found = []
    for family in iis.registry_subkeys(state_dir, iis.ASPNETCORE_SHARED_FRAMEWORK):
        found += iis.registry_subkeys(state_dir, f"{iis.ASPNETCORE_SHARED_FRAMEWORK}\\{family}")
    return found


def installed_netcore_runtimes(state_dir: Path) -> list[str]:
    """Every .NET runtime (Microsoft.NETCore.App) version the registry lists (value names, 32-bit view)."""
    return sorted((iis.registry_key(state_dir, iis.NETCORE_APP_VERSIONS) or {}).keys())


def module_registered(state_dir: Path) -> bool:
    if not iis.is_installed(state_dir):
        return False
    return iis.ASPNETCORE_MODULE.lower() in {m.lower() for m in iis.ServerManager(state_dir).global_modules()}


def worker_holds_module(state_dir: Path) -> bool:
    """A w3wp.exe runs with the global modules loaded: a started pool that starts its worker without waiting for
    a request (start mode AlwaysRunning)."""
    if not module_registered(state_dir):
        return False
    manager = iis.ServerManager(state_dir)
    for name in manager.pool_names():
        pool = manager.find_pool(name)
        running = pool is not None and manager.pool_state(name) == "Started"
        if running and pool is not None and manager.pool_value(pool, "startMode") == "AlwaysRunning":
            return True
    return False


def restart_pending(state_dir: Path) -> bool:
    """PendingFileRenameOperations is set, or component servicing waits for a restart (the features model)."""
    values = iis.registry_key(state_dir, SESSION_MANAGER) or {}
    return PENDING_RENAMES in values or bool(features.load(state_dir).get("restart_pending"))


def _schedule_rename(state_dir: Path, windows_path: str) -> None:
    values = dict(iis.registry_key(state_dir, SESSION_MANAGER) or {})
    pending = list(values.get(PENDING_RENAMES) or [])
    pending += [f"\\??\\{windows_path}.new", f"!\\??\\{windows_path}"]
    values[PENDING_RENAMES] = pending
    iis.set_registry_key(state_dir, SESSION_MANAGER, values)


def complete_restart(state_dir: Path) -> None:
    """The machine starts again: the renames scheduled for the start are done (and the value is gone), and no
    installation runs any more."""
    finish_rollback(state_dir)
    values = dict(iis.registry_key(state_dir, SESSION_MANAGER) or {})
    if PENDING_RENAMES in values:
        del values[PENDING_RENAMES]
        iis.set_registry_key(state_dir, SESSION_MANAGER, values)


def _msi_file(state_dir: Path) -> Path:
    return sim_dir(state_dir) / "windows_installer.json"


def _msi_state(state_dir: Path) -> dict[str, Any]:
    path = _msi_file(state_dir)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _update_msi_state(state_dir: Path, **values: bool) -> None:
    path = _msi_file(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**_msi_state(state_dir), **values}), encoding="utf-8")


def installation_running(state_dir: Path) -> bool:
    """Whether the Windows Installer service owns Global\\_MSIExecute (an installation or its rollback runs)."""
    return bool(_msi_state(state_dir).get("executing"))


def finish_rollback(state_dir: Path) -> None:
    """The service finished rolling back what a killed bundle had begun: the mutex is free again."""
    _update_msi_state(state_dir, executing=False)


def deny_msi_mutex(state_dir: Path) -> None:
    """Global\\_MSIExecute exists with a DACL that refuses the deploying administrator Synchronize|Modify (a
    security product's hardening, say). Mutex.TryOpenExisting then throws UnauthorizedAccessException rather than
    returning false: dotnet/referencesource mscorlib/system/threading/mutex.cs OpenExistingWorker maps
    ERROR_ACCESS_DENIED to __Error.WinIOError, which throws UnauthorizedAccessException, whether or not the mutex is
    owned (the open fails before anything can be asked of it)."""
    _update_msi_state(state_dir, access_denied=True)


def msi_mutex_denied(state_dir: Path) -> bool:
    """Whether opening Global\\_MSIExecute is refused to the deploying account (deny_msi_mutex)."""
    return bool(_msi_state(state_dir).get("access_denied"))


def kill_hosting_bundle(state_dir: Path, installer: str) -> bool:
    """Stop-InstallerTree, round by round as the script runs it; the service rolls back what was begun.

    The bundle has started two processes: its elevated engine, running since before the time-out, and one started
    between round 0's listing and the Kill that ends the bundle (Burn's clean-room copy starting the elevated engine,
    say), which only a listing after round 0 can find. Each round lists Win32_Process (Get-CimInstance); knob
    ``cim_faults`` holds one entry per listing, in order: ``{"on": "Win32_Process"}`` makes that listing fail (a
    CimException: WMI busy, restarting, or past -OperationTimeoutSec), ``{"on": "Win32_Process", "fails": false}``
    lets it list (to place a failure after good listings). Round 0 ends the bundle in a finally block whatever its
    listing did; a failed listing proves nothing and the next round lists again; a good listing after round 0 that
    finds nothing new ends the walk; ten rounds at most, so ten failures leave the children running. A failure here
    is at once: a listing hung until its 5-s time-out is not modelled (no clock), nor the script's 10-s bound on
    beginning rounds, which only such hangs reach. Journalled as
    one ``process_killed`` of the bundle, ``tree`` saying whether every process it started was ended. Its engine's
    MSI transaction is in the Windows Installer service either way (rolled back, or still running under a live
    engine): the service owns Global\\_MSIExecute. Returns Stop-InstallerTree's answer: whether the walk ended on a
    good listing that found nothing new (after nine failures the tenth round may end everything, unknowingly)."""
    knobs = Knobs(sim_dir(state_dir) / "knobs.json")
    engine_ended = late_ended = complete = False
    for round_ in range(10):
        fault = knobs.take_fault("Win32_Process", key="cim_faults")
        if fault is not None and fault.get("fails", True):
            continue
        found_new = not engine_ended or (round_ > 0 and not late_ended)
        engine_ended = True
        late_ended = late_ended or round_ > 0
        if not found_new and round_ > 0:
            complete = True
            break
    _update_msi_state(state_dir, executing=True)
    event = {"kind": "process_killed", "image": installer, "tree": engine_ended and late_ended}
    Journal(sim_dir(state_dir) / "journal.jsonl")(event)
    return complete


def run_hosting_bundle(fs: WindowsFs, installer: str, verb: str, log: str) -> int | None:
    """``<installer> <verb> /quiet /norestart /log <log>``: the exit code (the script waits for it), None when it
    did not end within the wait (the script ends it then: kill_hosting_bundle)."""
    state_dir = fs.root
    if verb not in ("/install", "/repair"):
        raise NotModelled(f"SIMULATOR: the hosting bundle's {verb!r} is not modelled (only /install and /repair)")
    if installation_running(state_dir):
        raise NotModelled("SIMULATOR: a bundle started while Windows Installer owns _MSIExecute is not modelled")
    version = stand_in_version(fs.resolve(installer).read_bytes())
    lines = [f"[{time.strftime('%Y-%m-%dT%H:%M:%S')}] Burn: {verb} of dotnet-hosting {version} (SIMULATOR)"]
    fault = Knobs(sim_dir(state_dir) / "knobs.json").take_fault("hosting-bundle", key="installer_faults")
    if fault is not None and fault.get("times_out"):
        lines.append("Applying execute package: Microsoft.AspNetCore... (still running)")
        target = fs.resolve(log)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\r\n".join(lines) + "\r\n", encoding="utf-16")
        return None
    code = int(fault["exit_code"]) if fault is not None else _apply(state_dir, verb, version)
    lines.append(f"Exit code: 0x{code:x}, {code}")
    target = fs.resolve(log)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\r\n".join(lines) + "\r\n", encoding="utf-16")
    return code


def _apply(state_dir: Path, verb: str, version: str) -> int:
    wanted = _parse(version)
    same_family = [_parse(v) for v in installed_runtimes(state_dir) if _parse(v)[:2] == wanted[:2]]
    if verb == "/repair":
        if wanted not in same_family:
            raise NotModelled(f"SIMULATOR: /repair of hosting bundle {version}, not installed, is not modelled")
        iis.register_netcore_runtime(state_dir, version)  # a repair reinstalls every package of the bundle
        return _write_module(state_dir)
    if any(other > wanted for other in same_family):
        return PRODUCT_VERSION
    if wanted in same_family:
        return SUCCESS  # already present: Burn plans nothing, and repairs nothing
    busy = worker_holds_module(state_dir)
    iis.install_hosting_bundle(state_dir, version)  # the shared framework, and the module when IIS is there
    if busy:
        _schedule_rename(state_dir, ANCM_FILE)
        return REBOOT_REQUIRED
    return SUCCESS


def _write_module(state_dir: Path) -> int:
    """A repair rewrites the module's files and registers it in IIS again (when IIS is installed)."""
    if not iis.is_installed(state_dir):
        return SUCCESS
    if worker_holds_module(state_dir):
        _schedule_rename(state_dir, ANCM_FILE)
        return REBOOT_REQUIRED
    if not module_registered(state_dir):
        iis.add_global_module(state_dir, iis.ASPNETCORE_MODULE, iis.ASPNETCORE_MODULE_IMAGE)
    return SUCCESS

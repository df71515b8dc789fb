"""SIMULATOR: model of providers/hosting_bundle/scripts/{get,chunk,set,remove}.ps1.

The registry and IIS through devhost.iis, the installer's run through devhost.installers (a stand-in of the real
Burn bundle), the staging folders and the upload through devhost.ops.staging (shared with the runtime archive).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from devhost import fileops, iis, installers, ntfs, power
from devhost.fs import WindowsFs
from devhost.ops import staging
from devhost.ops.envelope import Envelope, OperationStopped, change, fail, operation, require_keys, succeed
from devhost.ops.iis_common import not_installed
from devhost.ps51 import ScriptFact

_KEYS = {"installer_name", "sha256", "size", "version", "install_timeout_s"}
_CHUNK_KEYS = {"sha256", "size", "offset", "data"}
STAGING_ROOT = "C:\\ProgramData\\UsercubeIac\\HostingBundle"  # [Environment]::GetFolderPath('CommonApplicationData')

_ALL = ("hosting_bundle/get", "hosting_bundle/chunk", "hosting_bundle/set", "hosting_bundle/remove")
_RESTART = ("hosting_bundle/restart",)
_SET = ("hosting_bundle/set",)
# The constructs of the reviewed scripts that the model below relies on (checked by bless_scripts).
SCRIPT_FACTS = (
    *staging.script_facts("hosting_bundle/chunk", ("hosting_bundle/chunk", "hosting_bundle/set"), _ALL),
    ScriptFact(
        _ALL,
        r"\[System\.IO\.Path\]::Combine\(\[Environment\]::GetFolderPath\('CommonApplicationData'\), 'UsercubeIac', "
        r"'HostingBundle'\)",
        "the staging folder is %ProgramData%\\UsercubeIac\\HostingBundle",
    ),
    ScriptFact(
        _SET,
        r"Initialize-StagingFolder \(Get-InstallerFolder \$root \(\[string\]\$Spec\.sha256\)\)\s+"
        r"Move-LegacyRestartRecord\s+\$installer = Publish-StagedInstaller",
        "set makes every level down to the installer's own folder safe (or refuses it) before it publishes the file",
    ),
    ScriptFact(
        _SET,
        r"\$hold = \[System\.IO\.FileStream\]::new\(\$Path, \[System\.IO\.FileMode\]::Open, "
        r"\[System\.IO\.FileAccess\]::Read, \[System\.IO\.FileShare\]::Read\)\s+\$verified = \$false\s+try \{\s+"
        r"\$actual = Get-StreamSha256 \$hold",
        "the installer is hashed through a handle that shares reading only, kept open until the process has started "
        "(CreateFileW dwShareMode: nobody can write, delete or rename it meanwhile)",
    ),
    ScriptFact(
        ("hosting_bundle/get",),
        r"\$trusted = Test-StagingTrusted \(Get-InstallerFolder \$root",
        "get counts nothing held in staging folders that are not safe (chunk and set repair or refuse them)",
    ),
    ScriptFact(
        ("hosting_bundle/get", "hosting_bundle/set"),
        r"if \(\$runtime\.Major -eq \$requested\.Major -and \$runtime\.Minor -eq \$requested\.Minor\)",
        "only runtimes of the installer's major.minor count (the runtime's roll-forward stays within it)",
    ),
    ScriptFact(
        ("hosting_bundle/get", "hosting_bundle/set"),
        r"\[Microsoft\.Win32\.RegistryKey\]::OpenBaseKey\(\[Microsoft\.Win32\.RegistryHive\]::LocalMachine, "
        r"\[Microsoft\.Win32\.RegistryView\]::Registry32\)\s+try \{\s+\$key = \$base\.OpenSubKey\("
        r"'SOFTWARE\\dotnet\\Setup\\InstalledVersions\\x64\\sharedfx\\Microsoft\.NETCore\.App'\)",
        "the .NET runtime's versions are read in the 32-bit view (devhost.iis.NETCORE_APP_VERSIONS), value names",
    ),
    ScriptFact(
        ("hosting_bundle/get", "hosting_bundle/set"),
        r"\} elseif \(\$null -eq \$netcore -or \$netcore -lt \$requested\) \{",
        "the .NET runtime of the installer's major.minor, at its version or newer, is needed too (repair, or blocked)",
    ),
    ScriptFact(
        _SET,
        r'\$info\.Arguments = "\$Verb /quiet /norestart /log `"\$Log`""',
        'the installer runs as `<verb> /quiet /norestart /log "<log>"` (devhost.installers models exactly that)',
    ),
    ScriptFact(
        _SET,
        r"\$info\.UseShellExecute = \$false\s+\$info\.CreateNoWindow = \$true\s+"
        r"\$info\.RedirectStandardInput = \$true\s+\$info\.RedirectStandardOutput = \$true\s+"
        r"\$info\.RedirectStandardError = \$true",
        "the installer gets pipes of its own as stdin, stdout and stderr (ProcessStartInfo.RedirectStandard*), never "
        "the loop's: devhost.installers models a process that writes nothing into the framed responses",
    ),
    ScriptFact(
        _SET,
        r"\$process\.StandardInput\.Close\(\)\s+\$drains = @\(\$process\.StandardOutput\.ReadToEndAsync\(\), "
        r"\$process\.StandardError\.ReadToEndAsync\(\)\)",
        "its redirected output is drained by .NET tasks (a full pipe would block it; an OutputDataReceived script "
        "block would run on a thread-pool thread without a runspace)",
    ),
    ScriptFact(
        _SET,
        r"\$process\.StandardOutput\.Dispose\(\)\s+\$process\.StandardError\.Dispose\(\)\s+\$process\.Dispose\(\)",
        "the redirected readers are closed in the finally block with the process (Process.Dispose leaves them open "
        "on .NET Framework): nothing of the installer's pipes outlives the operation",
    ),
    ScriptFact(
        _SET,
        r"\} finally \{\s+(?:#[^\n]*\s+)*if \(-not \$verified\) \{ \$hold\.Dispose\(\) \}",
        "the installer's hold is closed in a finally block on every way out but a verified hash",
    ),
    ScriptFact(
        _SET,
        r"if \(-not \$process\.WaitForExit\(\$TimeoutSeconds \* 1000\)\) \{\s+"
        r"\$TreeListed\.Value = Stop-InstallerTree \$process\s+"
        r"return \$null",
        "an installer that does not end within install_timeout_s is ended with its children (kill_hosting_bundle)",
    ),
    ScriptFact(
        _SET,
        r"try \{ \$Process\.Kill\(\) \} catch \[System\.InvalidOperationException\], \[System\.ArgumentException\], "
        r"\[System\.ComponentModel\.Win32Exception\] \{ \$null = \$_ \}",
        "an installer that exits (or may not be ended) before its Kill throws InvalidOperationException, "
        "ArgumentException or Win32Exception (access denied on a terminating process): caught, the result stays "
        "InstallerTimedOut (kill_hosting_bundle)",
    ),
    ScriptFact(
        _SET,
        r"try \{\s+try \{ \$null = \$child\.Handle \} catch \[System\.ComponentModel\.Win32Exception\] "
        r"\{ \$null = \$_ \}\s+\$started = \$child\.StartTime\s+"
        r"if \(\[math\]::Abs\(\(\$started\.ToUniversalTime\(\) - \(Get-StartUtc \$Entry\)\)\.Ticks\) "
        r"-lt \[System\.TimeSpan\]::TicksPerMillisecond\) "
        r"\{ \$child\.Kill\(\) \}\s+\} catch \[System\.InvalidOperationException\], \[System\.ArgumentException\], "
        r"\[System\.ComponentModel\.Win32Exception\] \{ \$null = \$_ \}",
        "a listed child is ended only if its start is the listed CreationDate (its id may have been reused since), "
        "through the handle it keeps open (Process.Handle), and one that exits or may not be ended in between is no "
        "failure: the rest of the tree is still ended",
    ),
    ScriptFact(
        _SET,
        r"\$child = \[System\.Diagnostics\.Process\]::GetProcessById\(\[int\]\$Entry\.ProcessId\) \} "
        r"catch \[System\.ArgumentException\] \{ return \}[^\n]*\s+\$Held\.Add\(\$child\)",
        "each listed member's Process object is kept (its handle open) until the walk ends: its id cannot be reused "
        "meanwhile",
    ),
    ScriptFact(
        _SET,
        r"\} finally \{\s+(?:#[^\n]*\s+)*foreach \(\$heldProcess in \$held\) \{ \$heldProcess\.Dispose\(\) \}\s+\}\s+"
        r"\[void\]\$Process\.WaitForExit\(5000\)\s+return \$complete",
        "the members' Process objects are disposed in a finally block once the walk is over",
    ),
    ScriptFact(
        _SET,
        r"\$complete = \$false\s+\$walk = [^\n]+\s+try \{\s+for \(\$round = 0;[\s\S]*?"
        r"\$treeListed = \$true\s+\$code = Invoke-Installer [^\n]* \(\[ref\]\$treeListed\)\s+"
        r"if \(\$null -eq \$code\) \{\s+\$ended = 'and was ended, with the processes it started'\s+"
        r"if \(-not \$treeListed\) \{\s+\$ended = \"and was ended, but the processes it started could not all be "
        r"found \(listing Win32_Process through WMI failed, or new ones still appeared at the last listing\); its "
        r"installer engine may still be running: check the host's processes before running up again\"\s+\}\s+"
        r"Stop-Operation -Id 'InstallerTimedOut' [^\n]*\) \$ended; see \$log",
        "InstallerTimedOut says when the walk did not end on a good listing that found nothing new (Stop-InstallerTree "
        "returns it; kill_hosting_bundle's answer): the installer's engine may still run",
    ),
    ScriptFact(
        _SET,
        r"\$walk = \[System\.Diagnostics\.Stopwatch\]::StartNew\(\)\s+try \{\s+"
        r"for \(\$round = 0; \$round -lt 10 -and \(\$round -eq 0 -or \$walk\.Elapsed\.TotalSeconds -lt 10\); "
        r"\$round\+\+\) \{\s+\$new = @\(\)\s+"
        r"\$listing = \$null\s+try \{\s+(?:#[^\n]*\s+)*\$listing = Get-NewDescendants \$known \$seen\s+"
        r"if \(\$null -ne \$listing\) \{ \$new = \$listing \}\s+"
        r"for \(\$i = \$new\.Count - 1; \$i -ge 0; \$i--\) \{ Stop-ListedProcess \$new\[\$i\] \$held \}[\s\S]*?"
        r"if \(\$null -eq \$listing\) \{ continue \}\s+(?:#[^\n]*\s+)*"
        r"if \(\$new\.Count -eq 0 -and \$round -gt 0\) \{ \$complete = \$true; break \}\s+\$known\.AddRange\(\$new\)",
        "the tree is ended leaves first and listed again until nothing new appears (a process Burn starts meanwhile "
        "is found under its parent, ended or not); a failed listing goes on to the next round, never ends the walk "
        "(kill_hosting_bundle walks the same rounds)",
    ),
    ScriptFact(
        _SET,
        r"Stop-ListedProcess \$new\[\$i\] \$held \}\s+\} finally \{\s+(?:#[^\n]*\s+)*if \(\$round -eq 0\) \{\s+"
        r"try \{ \$Process\.Kill\(\) \}",
        "round 0 ends the installer itself in a finally block, whatever its listing and its Kills did "
        "(kill_hosting_bundle: ended even when the listing fails)",
    ),
    ScriptFact(
        _SET,
        r"\$all = @\(\)\s+try \{\s+\$all = @\(Get-CimInstance -ClassName Win32_Process -Property "
        r"@\('ProcessId', 'ParentProcessId', 'CreationDate'\) -OperationTimeoutSec 5\)\s+\} catch \{\s+"
        r"return \$null\s+\}",
        "a Win32_Process listing that fails or hangs past 5 s (CimException, terminating under EAP=Stop) is $null, "
        "told apart from an empty listing, not an UnexpectedError (kill_hosting_bundle's knob cim_faults)",
    ),
    ScriptFact(
        _SET,
        r"-and \(\$null -eq \$reusedAt -or \$_\.CreationDate\.ToUniversalTime\(\) -lt \$reusedAt\)",
        "an ended member's id taken by a later process: only what was created before that process counts as the "
        "member's child (Windows reuses ids; an orphan keeps its parent's)",
    ),
    ScriptFact(
        _SET,
        r"Where-Object \{ \[int\]\$_\.ParentProcessId -eq \$parentId -and \$null -ne \$_\.CreationDate -and "
        r"\$_\.CreationDate\.ToUniversalTime\(\) -ge \$parentStart -and",
        "a child counts only if created at or after its parent, both starts in UTC (in the hour a DST change "
        "repeats, local times of two instants are equal)",
    ),
    ScriptFact(
        _SET,
        r"if \(\$null -eq \$Entry\.CreationDate\) \{ return \$null \}\s+"
        r"return \$Entry\.CreationDate\.ToUniversalTime\(\)",
        "start times are compared in UTC (Get-StartUtc: ids, reuse and the start check of each Kill)",
    ),
    ScriptFact(
        _SET,
        r"Get-ChildProcessIds",
        "a tree listed once, before its parent is ended, lets what is started afterwards escape",
        present=False,
    ),
    ScriptFact(
        _SET,
        r"\.Kill\(\) \} catch \[System\.InvalidOperationException\] \{",
        "a Kill that catches InvalidOperationException only lets Win32Exception and ArgumentException end the "
        "operation as UnexpectedError, with the rest of the tree left running",
        present=False,
    ),
    ScriptFact(
        _SET,
        r"try \{\s+\$exists = \[System\.Threading\.Mutex\]::TryOpenExisting\('Global\\_MSIExecute', \[ref\]\$mutex\)\s+"
        r"\} catch \[System\.UnauthorizedAccessException\] \{\s+\$denied = \$true\s+\}",
        "a Global\\_MSIExecute whose DACL refuses this account throws UnauthorizedAccessException from TryOpenExisting "
        "(referencesource Mutex.OpenExistingWorker): it exists and cannot be tested (installers.msi_mutex_denied)",
    ),
    ScriptFact(
        _SET,
        r"if \(\$denied\) \{\s+Stop-Operation -Id 'InstallerMutexDenied' -Category 'PermissionDenied' "
        r"-Message \"Windows "
        r"Installer's mutex Global\\_MSIExecute exists but this account may not open it \(access denied\), [^\"]*"
        r"connect as an administrator of the host \(elevated\), or check the mutex's DACL[^\"]*\"\s+\}\s+"
        r"if \(\$owned\) \{",
        "a mutex this account may not open is InstallerMutexDenied (PermissionDenied) with its own message (the "
        "account or the DACL is the fix, not waiting), before the owned one",
    ),
    ScriptFact(
        _SET,
        r"\$installer = Publish-StagedInstaller \$Spec \$root\s+Assert-NoInstallationRunning \$Spec",
        "no installer is started while Windows Installer owns Global\\_MSIExecute (installers.installation_running)",
    ),
    ScriptFact(
        _SET,
        r"\[System\.Threading\.Mutex\]::TryOpenExisting\('Global\\_MSIExecute', \[ref\]\$mutex\)",
        "the mutex tested is Windows Installer's Global\\_MSIExecute",
    ),
    ScriptFact(
        _SET,
        r"if \(@\(0, 1638, 1641, 3010\) -notcontains \$code\)",
        "0, 1638, 1641 and 3010 are not failures by themselves: the state is read again after the run",
    ),
    ScriptFact(
        _SET,
        r"if \(\$code -eq 3010 -or \$code -eq 1641\) \{ Write-RestartOwed \$code \}\s+"
        r"\$after = Get-BundleState \$Spec",
        "the installer's own restart request (3010, 1641) is recorded before the state is read again; "
        "restart_pending is that record, not the machine's PendingFileRenameOperations",
    ),
    ScriptFact(
        _SET,
        r"\$owed = \$parent\.CreateSubKey\(\$RestartOwedName, "
        r"\[Microsoft\.Win32\.RegistryKeyPermissionCheck\]::ReadWriteSubTree, "
        r"\[Microsoft\.Win32\.RegistryOptions\]::Volatile\)",
        "the record is the volatile key HKLM\\SOFTWARE\\UsercubeIac\\HostingBundle\\RestartOwed (gone at the next "
        "start: iis.create_volatile_key, cleared by power's restart), under a stable parent",
    ),
    ScriptFact(
        ("hosting_bundle/get", "hosting_bundle/set"),
        r"\$RestartOwedParent = 'SOFTWARE\\UsercubeIac\\HostingBundle'\s+\$RestartOwedName = 'RestartOwed'[\s\S]*"
        r"\[Microsoft\.Win32\.RegistryView\]::Registry64",
        "the key is HKLM\\SOFTWARE\\UsercubeIac\\HostingBundle\\RestartOwed, in the 64-bit view",
    ),
    ScriptFact(
        _SET,
        r"\$parent\.DeleteSubKeyTree\(\$RestartOwedName, \$false\)\s+"
        r"\$owed = \$parent\.CreateSubKey\(\$RestartOwedName,",
        "a RestartOwed that exists is deleted before it is created volatile (CreateSubKey ignores Volatile for a key "
        "that exists: _write_restart_owed)",
    ),
    ScriptFact(
        ("hosting_bundle/get", "hosting_bundle/set"),
        r"try \{\s+\$record = \$JsonSerializer\.DeserializeObject\(\[System\.IO\.File\]::ReadAllText\(\$path\)\)\s+"
        r"\} catch \[System\.ArgumentException\], \[System\.InvalidOperationException\], \[System\.IO\.IOException\], "
        r"\[System\.UnauthorizedAccessException\] \{\s+return \$false\s+\}\s+"
        r"if \(\$record -isnot \[System\.Collections\.Generic\.Dictionary\[string, object\]\] -or "
        r"-not \$record\.ContainsKey\('boot_time'\)\) \{ return \$false \}",
        "a restart-required.json that cannot be read (held open, access denied) or is corrupt, or one without "
        "boot_time, is no record (_legacy_restart_record)",
    ),
    ScriptFact(
        ("hosting_bundle/get", "hosting_bundle/set"),
        r"return \(\(Test-RestartOwed\) -or \(Test-LegacyRestartRecord \$BootTime\)\)",
        "an earlier version's restart-required.json counts while it names this boot (upgrade path)",
    ),
    ScriptFact(
        _SET,
        r"Initialize-StagingFolder \(Get-InstallerFolder \$root \(\[string\]\$Spec\.sha256\)\)\s+"
        r"Move-LegacyRestartRecord",
        "set turns an earlier version's record into the key and deletes it, once the folders are safe",
    ),
    ScriptFact(
        ("hosting_bundle/get", "hosting_bundle/set"),
        r"machine_restart_pending = \(Test-MachineRestartPending\)",
        "the machine's pending restart (any software's) is reported apart, as information",
    ),
    ScriptFact(
        _RESTART,
        r"\$before = Get-BootTime\s+Restart-Computer -Force\s+Complete-Operation",
        "the restart is Restart-Computer -Force, which returns while the shutdown begins (the answer still gets out)",
    ),
    ScriptFact(
        ("hosting_bundle/remove",),
        r"\[System\.IO\.Directory\]::Delete\(\$root, \$true\)",
        "remove deletes the staging folder only (Directory.Delete, which removes a junction as a link)",
    ),
)


def _stop(error_id: str, message: str, prop: str | None = None, category: str = "InvalidOperation") -> OperationStopped:
    return OperationStopped(fail(error_id, message, prop=prop, category=category))


def _version(text: str) -> tuple[int, ...] | None:
    """[version]::TryParse: 2 to 4 numeric parts; System.Version compares missing parts as -1."""
    parts = text.split(".")
    if not 2 <= len(parts) <= 4 or not all(p.isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts) + (-1,) * (4 - len(parts))


def _text(version: tuple[int, ...]) -> str:
    return ".".join(str(p) for p in version if p >= 0)


def partial_path(sha256: str) -> str:
    return staging.partial_path(STAGING_ROOT, sha256)


def installer_folder(sha256: str) -> str:
    return f"{STAGING_ROOT}\\{sha256}"


def _state(fs: WindowsFs, spec: dict[str, Any]) -> dict[str, Any]:
    """Get-BundleState."""
    state_dir = fs.root
    requested = _version(spec["version"])
    assert requested is not None, "the model validates version"
    installed: tuple[int, ...] | None = None
    every = []
    for text in installers.installed_runtimes(state_dir):
        parsed = _version(text)
        if parsed is None:
            continue
        every.append(_text(parsed))
        if parsed[:2] == requested[:2] and (installed is None or parsed > installed):
            installed = parsed
    netcore: tuple[int, ...] | None = None
    for text in installers.installed_netcore_runtimes(state_dir):
        parsed = _version(text)
        if parsed is not None and parsed[:2] == requested[:2] and (netcore is None or parsed > netcore):
            netcore = parsed
    iis_installed = fs_iis_installed(state_dir)
    module = None
    if iis_installed:
        if not iis.is_installed(state_dir):
            raise OperationStopped(not_installed())  # Import-IisAdministration: InetStp without the IIS assembly
        module = installers.module_registered(state_dir)
    state: dict[str, Any] = {
        "ensure": "present",
        "version": spec["version"],
        "installed_version": _text(installed) if installed else None,
        "installed_versions": every,
        "netcore_installed_version": _text(netcore) if netcore else None,
        "iis_installed": iis_installed,
        "aspnetcore_module_present": module,
        "restart_pending": _installer_restart_pending(fs),
        "machine_restart_pending": installers.restart_pending(state_dir),
        "boot_time": power.boot_time(state_dir),
        "action": "none",
        "reason": "",
        "held_bytes": 0,
        "held_sha256": None,
        "staged": False,
    }
    family = f"{requested[0]}.{requested[1]}"
    if installed is None or installed < requested:
        state["action"] = "install"
        have = _text(installed) if installed else "none"
        state["reason"] = f"the host has ASP.NET Core runtime {family} at {have}, below {spec['version']}"
    elif netcore is None or netcore < requested:
        have = _text(netcore) if netcore else "none"
        missing = f"the host has the .NET runtime (Microsoft.NETCore.App) {family} at {have}, below {spec['version']}"
        _repair_action(state, installed, requested, missing)
    elif iis_installed and not module:
        missing = "AspNetCoreModuleV2 is missing from IIS (the hosting bundle was installed before IIS)"
        _repair_action(state, installed, requested, missing)
    if state["action"] in ("install", "repair"):
        final = fs.resolve(f"{installer_folder(spec['sha256'])}\\{spec['installer_name']}")
        partial = fs.resolve(partial_path(spec["sha256"]))
        trusted = staging.is_trusted(fs, installer_folder(spec["sha256"]))
        if trusted and final.is_file() and final.stat().st_size == int(spec["size"]):
            state["staged"] = True
        elif trusted and partial.is_file():
            state.update(held_bytes=partial.stat().st_size, held_sha256=staging.sha256_file(partial))
    return state


def _repair_action(state: dict[str, Any], installed: tuple[int, ...], requested: tuple[int, ...], missing: str) -> None:
    """Set-RepairAction: a repair by the installed version's own bundle, or blocked naming it."""
    if installed == requested:
        state.update(action="repair", reason=missing)
        return
    state.update(
        action="blocked",
        reason=f"{missing}, and the installed ASP.NET Core runtime {_text(installed)} is newer than this installer's "
        f"{_text(requested)}: only the installer of {_text(installed)} can repair it (/repair); give that one, or a "
        "newer one, as the hosting bundle",
    )


RESTART_OWED_PARENT = "HKLM:\\SOFTWARE\\UsercubeIac\\HostingBundle"
RESTART_OWED = f"{RESTART_OWED_PARENT}\\RestartOwed"  # volatile (RegistryOptions.Volatile): gone at the next start


def legacy_restart_record_path() -> str:
    """restart-required.json, what earlier versions recorded the installer's 3010 in (with the boot time)."""
    return f"{STAGING_ROOT}\\restart-required.json"


def _legacy_restart_record(fs: WindowsFs) -> bool:
    """Test-LegacyRestartRecord: the earlier record, made in this boot, in safe folders."""
    record = fs.resolve(legacy_restart_record_path())
    if not staging.is_trusted(fs, STAGING_ROOT) or not record.is_file():
        return False
    try:
        # ReadAllText throws IOException (a sharing violation) or UnauthorizedAccessException (no FILE_READ_DATA);
        # JavaScriptSerializer.DeserializeObject throws ArgumentException on text that is not JSON. The script
        # counts each of these, and any value that is not an object with boot_time, as no record.
        fileops.open_to_read(fs, legacy_restart_record_path())
        parsed = json.loads(record.read_text(encoding="utf-8-sig", errors="replace"))  # ReadAllText drops a BOM
    except fileops.DotNetError as error:
        if error.type_name not in ("System.IO.IOException", "System.UnauthorizedAccessException"):
            raise
        return False
    except ValueError:
        return False
    if not isinstance(parsed, dict) or "boot_time" not in parsed:
        return False
    return str(parsed["boot_time"]) == power.boot_time(fs.root)


def _write_restart_owed(fs: WindowsFs, code: int) -> None:
    """Write-RestartOwed: the parent chain stable (CreateSubKey), RestartOwed deleted (DeleteSubKeyTree: a stable
    one left by anyone would stay stable, CreateSubKey ignoring Volatile), then created volatile, exit_code a
    DWORD."""
    iis.set_registry_key(fs.root, RESTART_OWED_PARENT, iis.registry_key(fs.root, RESTART_OWED_PARENT) or {})
    iis.delete_registry_tree(fs.root, RESTART_OWED)
    iis.create_volatile_key(fs.root, RESTART_OWED, {"exit_code": code})


def _move_legacy_restart_record(fs: WindowsFs) -> None:
    """Move-LegacyRestartRecord (set, after the folders were made safe)."""
    record = fs.resolve(legacy_restart_record_path())
    if not record.is_file():
        return
    if _legacy_restart_record(fs):
        _write_restart_owed(fs, 3010)
    try:
        fileops.delete_file(fs, legacy_restart_record_path())  # outside any try in the script: the trap reports it
    except fileops.DotNetError as error:
        raise OperationStopped(fail("UnexpectedError", error.called("Delete", 1), category="NotSpecified")) from None


def _installer_restart_pending(fs: WindowsFs) -> bool:
    """Test-InstallerRestartPending: the volatile key, or an earlier version's record of this boot."""
    return iis.registry_key(fs.root, RESTART_OWED) is not None or _legacy_restart_record(fs)


def fs_iis_installed(state_dir: Path) -> bool:
    """Test-IisInstalled: InetStp has MajorVersion."""
    values = iis.registry_key(state_dir, iis.INETSTP)
    return values is not None and "MajorVersion" in values


@operation
def get(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    return succeed(_state(fs, spec))


@operation
def chunk(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _CHUNK_KEYS)
    return staging.chunk(fs, spec, STAGING_ROOT, "")


def _publish(fs: WindowsFs, spec: dict[str, Any]) -> str:
    """Publish-StagedInstaller, then Open-VerifiedInstaller's hash check (the hold itself is not modelled: no
    other account acts on the simulated host while an operation runs)."""
    folder = installer_folder(spec["sha256"])
    final_path = f"{folder}\\{spec['installer_name']}"
    final = fs.resolve(final_path)
    partial = fs.resolve(partial_path(spec["sha256"]))
    if partial.is_file():
        held = partial.stat().st_size
        if held != int(spec["size"]):
            raise _stop(
                "InstallerNotUploaded",
                f"the host holds {held} of the installer's {spec['size']} bytes; run up again (the upload continues "
                "from there)",
                "size",
            )
        final.parent.mkdir(parents=True, exist_ok=True)
        final.unlink(missing_ok=True)
        partial.rename(final)
    if not final.is_file():
        raise _stop(
            "InstallerNotUploaded",
            f"the installer {spec['installer_name']} is not on the host; run up again to upload it",
            "sha256",
        )
    actual = staging.sha256_file(final)
    if actual != spec["sha256"]:
        final.unlink()
        raise _stop(
            "InstallerHashMismatch",
            f"the uploaded installer has SHA-256 {actual}, not {spec['sha256']}; it was deleted: run up again to send "
            "it anew",
            "sha256",
        )
    for other in fs.resolve(STAGING_ROOT).iterdir():
        if other.is_dir() and other.name.lower() != spec["sha256"].lower():
            shutil.rmtree(other)
    return final_path


@operation
def set_(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    before = _state(fs, spec)
    if before["action"] == "none":
        return succeed(before)
    if before["action"] == "blocked":
        return fail("RepairNeedsInstalledVersion", before["reason"], prop="version", category="InvalidArgument")
    staging.initialize(fs, installer_folder(spec["sha256"]), "")
    _move_legacy_restart_record(fs)
    installer = _publish(fs, spec)
    if installers.msi_mutex_denied(fs.root):  # Assert-NoInstallationRunning: TryOpenExisting refused
        return fail(
            "InstallerMutexDenied",
            "Windows Installer's mutex Global\\_MSIExecute exists but this account may not open it (access denied), "
            "so whether an installation is running cannot be told; connect as an administrator of the host "
            "(elevated), or check the mutex's DACL (a security product may have changed it), then run up again",
            category="PermissionDenied",
        )
    if installers.installation_running(fs.root):  # Assert-NoInstallationRunning
        return fail(
            "InstallerBusy",
            "another installation is running on the host (Windows Installer's mutex Global\\_MSIExecute is owned), "
            "perhaps the rollback of an installer a previous run ended at its time-out (install_timeout_s); run up "
            "again when it has finished, or raise install_timeout_s if the installer needs longer",
            prop="install_timeout_s",
            category="ResourceBusy",
        )
    verb = "/repair" if before["action"] == "repair" else "/install"
    log = f"{installer_folder(spec['sha256'])}\\install.log"
    try:
        code = installers.run_hosting_bundle(fs, installer, verb, log)
    except installers.NotModelled as refused:
        return fail("SimulatorNotModelled", f"devhost (SIMULATOR): {refused}", category="NotImplemented")
    name = spec["installer_name"]
    if code is None:  # WaitForExit timed out: Stop-InstallerTree
        ended = "and was ended, with the processes it started"
        if not installers.kill_hosting_bundle(fs.root, installer):
            ended = (
                "and was ended, but the processes it started could not all be found (listing Win32_Process through "
                "WMI failed, or new ones still appeared at the last listing); its installer engine may still be "
                "running: check the host's processes before running up again"
            )
        return fail(
            "InstallerTimedOut",
            f"{name} {verb} did not finish within install_timeout_s ({spec['install_timeout_s']} s) {ended}; see "
            f"{log}, raise install_timeout_s if it needs longer, then run up again",
            prop="install_timeout_s",
            category="OperationTimeout",
        )
    if code == 1618:
        return fail(
            "InstallerBusy",
            f"{name} {verb} exited with 1618 (ERROR_INSTALL_ALREADY_RUNNING): another installation is running on the "
            "host; run up again when it has finished",
            category="ResourceBusy",
        )
    if code not in (0, 1638, 1641, 3010):
        return fail(
            "InstallerFailed",
            f"{name} {verb} exited with {code} (1603 is a fatal error of the installation); see the installer's log "
            f"{log} on the host",
            category="InvalidResult",
        )
    if code in (3010, 1641):
        _write_restart_owed(fs, code)
    after = _state(fs, spec)
    after["last_action"] = verb.lstrip("/")
    after["exit_code"] = code
    if after["action"] != "none":
        meaning = (
            " (ERROR_PRODUCT_VERSION: another version of this product is already installed)" if code == 1638 else ""
        )
        return fail(
            "InstallerDidNotInstall",
            f"{name} {verb} exited with {code}{meaning}, but the host still needs it: {after['reason']}; see {log}",
            prop="version",
            category="InvalidResult",
        )
    changes = []
    if before["installed_version"] != after["installed_version"]:
        changes.append(change("installed_version", before["installed_version"], after["installed_version"]))
    if before["aspnetcore_module_present"] != after["aspnetcore_module_present"]:
        changes.append(
            change("aspnetcore_module_present", before["aspnetcore_module_present"], after["aspnetcore_module_present"])
        )
    return Envelope(ok=True, state=after, changed=True, changes=changes)


@operation
def remove(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    root = fs.resolve(STAGING_ROOT)
    removed = root.is_dir()
    if removed:
        shutil.rmtree(root)
        store = ntfs.NtfsStore(fs.root)
        store.forget(STAGING_ROOT)
    changes = [change("staged", STAGING_ROOT, None)] if removed else []
    return Envelope(ok=True, state={"ensure": "absent"}, changed=removed, changes=changes)


@operation
def restart(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    """restart.ps1: Restart-Computer -Force (devhost.power: the machine goes down a moment after this answer)."""
    require_keys(spec, _KEYS)
    before = power.boot_time(fs.root)
    power.restart(fs.root)
    return succeed({"restarting": True, "boot_time": before}, [change("boot_time", before, "restarting")])


OPERATIONS = {
    "hosting_bundle/restart": restart,
    "hosting_bundle/get": get,
    "hosting_bundle/chunk": chunk,
    "hosting_bundle/set": set_,
    "hosting_bundle/remove": remove,
}

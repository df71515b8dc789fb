"""SIMULATOR: the models behind HostingBundle (no WinRM, no Pulumi): the staging folders it shares with the
runtime archive (devhost.ops.staging), the installer's own restart request, the runtimes it checks."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest

from devhost import iis, installers, ntfs, power
from devhost.fs import WindowsFs
from devhost.ops import SCRIPT_FACTS, staging
from devhost.ops import hosting_bundle as model
from devhost.ps51 import check_script
from providers.scripting.runner import ScriptRef, render_script

VERSION = "8.0.11"
USER = "S-1-5-21-1-2-3-1001"  # a local user: Users may create folders in %ProgramData%
TOP = f"{staging.PROGRAM_DATA}\\UsercubeIac"


@pytest.fixture
def fs(tmp_path: Path) -> WindowsFs:
    return WindowsFs(tmp_path / "host")


@pytest.fixture
def data(tmp_path: Path) -> bytes:
    return installers.stand_in_installer(tmp_path / f"dotnet-hosting-{VERSION}-win.exe", VERSION, 5000).read_bytes()


def spec(data: bytes) -> dict[str, Any]:
    return {
        "installer_name": f"dotnet-hosting-{VERSION}-win.exe",
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "version": VERSION,
        "install_timeout_s": 480,
    }


def chunk(fs: WindowsFs, data: bytes, offset: int = 0, length: int | None = None) -> Any:
    part = data[offset : len(data) if length is None else offset + length]
    payload = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "offset": offset}
    return model.chunk(fs, {**payload, "data": base64.b64encode(part).decode()})


def plant(fs: WindowsFs, path: str, descriptor: ntfs.Descriptor) -> None:
    fs.resolve(path).mkdir(parents=True, exist_ok=True)
    ntfs.NtfsStore(fs.root).set_descriptor(path, descriptor)


def test_the_staging_folders_are_made_admin_only_from_usercube_iac_down(fs: WindowsFs, data: bytes) -> None:
    assert chunk(fs, data).ok
    for path in (TOP, model.STAGING_ROOT):
        descriptor = ntfs.NtfsStore(fs.root).descriptor(path)
        assert descriptor.owner == "S-1-5-32-544" and descriptor.protected, path
        assert {ace.sid for ace in descriptor.explicit} == {"S-1-5-18", "S-1-5-32-544"}, path


def test_a_parent_planted_by_a_user_is_refused_and_the_installer_never_runs(fs: WindowsFs, data: bytes) -> None:
    # The user made UsercubeIac first and owns it: they could rewrite its DACL and swap HostingBundle below it.
    plant(fs, TOP, ntfs.Descriptor(USER, False, []))
    refused = chunk(fs, data)
    assert not refused.ok and refused.error is not None and refused.error["id"] == "StagingFolderUntrusted"
    assert TOP in refused.error["message"] and USER in refused.error["message"]
    assert not fs.resolve(model.STAGING_ROOT).exists(), "nothing staged below it"
    # Even an installer left there before: set refuses the folders before it publishes or runs anything.
    fs.resolve(model.STAGING_ROOT).mkdir()
    fs.resolve(model.partial_path(spec(data)["sha256"])).write_bytes(data)
    assert model.get(fs, spec(data)).state["held_bytes"] == 0, "what an unsafe folder holds is not counted"
    stopped = model.set_(fs, spec(data))
    assert not stopped.ok and stopped.error is not None and stopped.error["id"] == "StagingFolderUntrusted"
    assert installers.installed_runtimes(fs.root) == []


def test_a_parent_whose_dacl_lets_users_write_is_repaired(fs: WindowsFs, data: bytes) -> None:
    # Owned by Administrators, but inheriting %ProgramData%'s DACL (Users may create files and folders in it),
    # as the folder made by an earlier version of these scripts, and with an entry for the user too.
    users_write = ntfs.Ace("S-1-5-32-545", ntfs.FILE_WRITE_DATA | ntfs.FILE_APPEND_DATA)
    plant(fs, TOP, ntfs.Descriptor("S-1-5-32-544", False, [users_write]))
    assert chunk(fs, data).ok
    assert staging.is_admin_only(fs, TOP) and staging.is_admin_only(fs, model.STAGING_ROOT)
    assert model.set_(fs, spec(data)).ok
    assert installers.installed_runtimes(fs.root) == [VERSION]


def test_an_installer_folder_planted_by_a_user_is_refused(fs: WindowsFs, data: bytes) -> None:
    # The installer's SHA-256 is public: a user who could write HostingBundle before made its folder in advance.
    assert chunk(fs, data).ok
    plant(fs, model.installer_folder(spec(data)["sha256"]), ntfs.Descriptor(USER, True, []))
    stopped = model.set_(fs, spec(data))
    assert not stopped.ok and stopped.error is not None and stopped.error["id"] == "StagingFolderUntrusted"
    assert installers.installed_runtimes(fs.root) == []


def test_the_first_chunk_makes_the_partial_file_anew(fs: WindowsFs, data: bytes) -> None:
    assert chunk(fs, data, 0, 1000).ok
    partial = model.partial_path(spec(data)["sha256"])
    ntfs.NtfsStore(fs.root).set_descriptor(partial, ntfs.Descriptor(USER, False, []))  # someone else's file
    assert chunk(fs, data, 0, 1000).ok
    assert ntfs.NtfsStore(fs.root).descriptor(partial).owner == "S-1-5-32-544", "deleted and created again"
    assert chunk(fs, data, 1000).ok and fs.resolve(partial).read_bytes() == data


# -- the restart the installer asks for, apart from the machine's -------------------------------------------


def busy_module(fs: WindowsFs) -> None:
    """IIS with an AlwaysRunning pool: its w3wp.exe holds aspnetcorev2.dll, so an update of it waits for a restart."""
    iis.ensure_installed(fs.root)
    iis.install_hosting_bundle(fs.root, "8.0.10")
    manager = iis.ServerManager(fs.root)
    manager.set_pool_value(manager.add_pool("Busy"), "startMode", "AlwaysRunning")
    manager.commit()


def other_software_pending_renames(fs: WindowsFs) -> None:
    """Another program's installer scheduled a rename for the next start (MoveFileEx, MOVEFILE_DELAY_UNTIL_REBOOT)."""
    values = dict(iis.registry_key(fs.root, installers.SESSION_MANAGER) or {})
    values[installers.PENDING_RENAMES] = [
        "\\??\\C:\\Program Files\\Other\\other.dll.new",
        "!\\??\\C:\\Other\\other.dll",
    ]
    iis.set_registry_key(fs.root, installers.SESSION_MANAGER, values)


def test_other_softwares_pending_restart_is_information_not_the_installers(fs: WindowsFs, data: bytes) -> None:
    other_software_pending_renames(fs)
    before = model.get(fs, spec(data))
    assert before.state["restart_pending"] is False and before.state["machine_restart_pending"] is True
    assert chunk(fs, data).ok
    done = model.set_(fs, spec(data))
    assert done.ok and done.state["exit_code"] == 0
    assert done.state["restart_pending"] is False, "the installer did not ask for one"
    assert done.state["machine_restart_pending"] is True
    assert model.get(fs, spec(data)).state["action"] == "none", "installed: nothing to do, no drift"


def test_the_installers_3010_is_recorded_until_the_host_restarts(fs: WindowsFs, data: bytes) -> None:
    busy_module(fs)
    assert chunk(fs, data).ok
    done = model.set_(fs, spec(data))
    assert done.ok and done.state["exit_code"] == 3010 and done.state["restart_pending"] is True
    assert model.get(fs, spec(data)).state["restart_pending"] is True, "still asked for: no restart yet"
    # Clearing the machine's markers is not a restart: the installer's request stands.
    installers.complete_restart(fs.root)
    assert model.get(fs, spec(data)).state["restart_pending"] is True
    power.admin_restart(fs.root)  # a new boot time
    after = model.get(fs, spec(data)).state
    assert after["restart_pending"] is False and after["machine_restart_pending"] is False


def test_an_installer_given_the_loops_handles_is_not_modelled() -> None:
    # Finding 4: the installer must get pipes of its own, never the loop's stdout (which would keep the command open).
    script = render_script(ScriptRef("providers.hosting_bundle", "set"))
    assert check_script(SCRIPT_FACTS, "hosting_bundle/set", script) == []
    inheriting = script.replace("    $info.RedirectStandardOutput = $true\n", "")
    assert inheriting != script
    assert any(
        "RedirectStandard" in problem for problem in check_script(SCRIPT_FACTS, "hosting_bundle/set", inheriting)
    )


# -- the .NET runtime the bundle installs beside ASP.NET Core (finding 6) ---------------------------------------


def drop_netcore(fs: WindowsFs, keep: list[str]) -> None:
    """The .NET runtime uninstalled on its own (Programs and Features), or only older versions left."""
    iis.set_registry_key(fs.root, iis.NETCORE_APP_VERSIONS, dict.fromkeys(keep, 1) or None)


def test_the_net_runtime_removed_on_its_own_is_repaired(fs: WindowsFs, data: bytes) -> None:
    iis.install_hosting_bundle(fs.root, VERSION)
    assert model.get(fs, spec(data)).state["action"] == "none"
    drop_netcore(fs, ["8.0.10", "9.0.1"])  # an older 8.0 and another family do not count
    state = model.get(fs, spec(data)).state
    assert state["action"] == "repair" and state["netcore_installed_version"] == "8.0.10", state
    assert "Microsoft.NETCore.App" in state["reason"]
    assert chunk(fs, data).ok
    repaired = model.set_(fs, spec(data))
    assert repaired.ok and repaired.state["last_action"] == "repair", repaired
    assert repaired.state["action"] == "none" and repaired.state["netcore_installed_version"] == VERSION


def test_the_net_runtime_missing_under_a_newer_aspnetcore_is_blocked_with_the_fix(fs: WindowsFs, data: bytes) -> None:
    iis.install_hosting_bundle(fs.root, "8.0.12")
    drop_netcore(fs, [])
    state = model.get(fs, spec(data)).state
    assert state["action"] == "blocked" and "only the installer of 8.0.12 can repair it" in state["reason"]
    stopped = model.set_(fs, spec(data))
    assert not stopped.ok and stopped.error is not None and stopped.error["id"] == "RepairNeedsInstalledVersion"

"""HostingBundle through the real Pulumi CLI against a SIMULATED host of its own per test (the bundle is
machine-wide state: registry keys and an IIS module that other tests' hosts must keep).

The installer is a stand-in (devhost.installers.stand_in_installer): the simulator cannot run Microsoft's."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pulumi
import pytest

from devhost import features, iis, installers, ntfs, power
from devhost.ops import hosting_bundle as host_bundle
from devhost.ops import staging
from providers.hosting_bundle import HostingBundle
from providers.hosting_bundle.local import inspect_installer
from tests.providers.test_iis_app_pool_engine import secret_connection
from tests.support.engine import EngineStack
from tests.support.hosts import Target, start_simulator, stop_simulator

pytestmark = pytest.mark.engine

Engine = Callable[[Callable[[], None]], EngineStack]
UPLOAD_OPS = ("hosting_bundle/chunk", "hosting_bundle/set")


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Target]:
    """A fresh simulated Windows Server: no IIS, no hosting bundle."""
    target = start_simulator(tmp_path / "host")
    try:
        yield target
    finally:
        stop_simulator(target)


def state(target: Target) -> Path:
    assert target.state_dir is not None
    return target.state_dir


def installer(tmp_path: Path, version: str, size: int = 600 * 1024) -> Path:
    return installers.stand_in_installer(tmp_path / f"dotnet-hosting-{version}-win.exe", version, size)


def bundle_program(target: Target, path: Path, version: str, restart: bool = False) -> Callable[[], None]:
    found = inspect_installer(path, version)

    def program() -> None:
        bundle = HostingBundle(
            "bundle",
            connection=secret_connection(target),
            source_path=found.path,
            installer_name=found.name,
            sha256=found.sha256,
            size=found.size,
            version=version,
            restart=restart,
        )
        pulumi.export("installed_version", bundle.installed_version)
        pulumi.export("module", bundle.aspnetcore_module_present)
        pulumi.export("restart_pending", bundle.restart_pending)
        pulumi.export("machine_restart_pending", bundle.machine_restart_pending)
        pulumi.export("netcore_version", bundle.netcore_installed_version)
        pulumi.export("last_action", bundle.last_action)

    return program


def ops(target: Target, mark: int) -> list[str]:
    return target.operations_since(mark)


def module_present(target: Target) -> bool:
    return iis.ASPNETCORE_MODULE in iis.ServerManager(state(target)).global_modules()


def test_installs_when_missing_then_sends_nothing_again(host: Target, engine: Engine, tmp_path: Path) -> None:
    iis.ensure_installed(state(host))
    stack = engine(bundle_program(host, installer(tmp_path, "8.0.11"), "8.0.11"))
    mark = host.journal_mark()
    run = stack.up()
    assert run.ok, run.output
    outputs = stack.outputs()
    assert outputs["installed_version"] == "8.0.11" and outputs["module"] is True, outputs
    assert outputs["last_action"] == "install" and outputs["restart_pending"] is False
    done = ops(host, mark)
    assert done.count("hosting_bundle/chunk") == 3 and done.count("hosting_bundle/set") == 1, done  # 600 KiB
    assert module_present(host)
    sha = inspect_installer(tmp_path / "dotnet-hosting-8.0.11-win.exe", "8.0.11").sha256
    log = host.windows_file(f"C:\\ProgramData\\UsercubeIac\\HostingBundle\\{sha}\\install.log")
    assert "/install" in log.read_text(encoding="utf-16")

    mark = host.journal_mark()
    assert stack.up().summary == {"same": 2}
    assert stack.refresh(expect_no_changes=True).ok
    assert not any(op in UPLOAD_OPS for op in ops(host, mark)), "an installed bundle is never sent or run again"


def test_skipped_when_the_same_family_is_newer(host: Target, engine: Engine, tmp_path: Path) -> None:
    iis.ensure_installed(state(host))
    iis.install_hosting_bundle(state(host), "8.0.12")
    stack = engine(bundle_program(host, installer(tmp_path, "8.0.11"), "8.0.11"))
    mark = host.journal_mark()
    run = stack.up()
    assert run.ok, run.output
    assert stack.outputs()["installed_version"] == "8.0.12" and stack.outputs()["last_action"] == "none"
    assert ops(host, mark) == ["hosting_bundle/get"], "nothing uploaded, nothing run"


def test_another_major_minor_does_not_count(host: Target, engine: Engine, tmp_path: Path) -> None:
    iis.ensure_installed(state(host))
    iis.install_hosting_bundle(state(host), "9.0.1")  # an 8.0 app does not roll forward to 9.0
    stack = engine(bundle_program(host, installer(tmp_path, "8.0.11"), "8.0.11"))
    run = stack.up()
    assert run.ok, run.output
    assert stack.outputs()["installed_version"] == "8.0.11" and stack.outputs()["last_action"] == "install"


def test_bundle_installed_before_iis_is_repaired(host: Target, engine: Engine, tmp_path: Path) -> None:
    iis.install_hosting_bundle(state(host), "8.0.11")  # the manual's case: the bundle first...
    features.install(state(host), ["Web-Server"])  # ...IIS after: no AspNetCoreModuleV2
    assert not module_present(host)
    stack = engine(bundle_program(host, installer(tmp_path, "8.0.11"), "8.0.11"))
    run = stack.up()
    assert run.ok, run.output
    assert stack.outputs()["last_action"] == "repair" and stack.outputs()["module"] is True
    assert module_present(host)

    # Lost again (IIS reinstalled, say): refresh shows the drift, up --refresh repairs it.
    iis.remove_global_module(state(host), iis.ASPNETCORE_MODULE)
    drift = stack.refresh(expect_no_changes=True, preview_only=True)
    assert not drift.ok, drift.output
    repaired = stack.up(refresh=True)
    assert repaired.ok, repaired.output
    assert module_present(host)


def test_repair_with_an_older_installer_is_refused_with_the_fix(host: Target, engine: Engine, tmp_path: Path) -> None:
    iis.install_hosting_bundle(state(host), "8.0.12")
    features.install(state(host), ["Web-Server"])
    run = engine(bundle_program(host, installer(tmp_path, "8.0.11"), "8.0.11")).up()
    assert not run.ok
    assert "[RepairNeedsInstalledVersion]" in run.output and "only the installer of 8.0.12 can repair it" in run.output


def test_a_restart_asked_for_is_reported_never_done(host: Target, engine: Engine, tmp_path: Path) -> None:
    iis.ensure_installed(state(host))
    iis.install_hosting_bundle(state(host), "8.0.11")
    busy_pool(host)
    stack = engine(bundle_program(host, installer(tmp_path, "8.0.12"), "8.0.12"))
    run = stack.up()
    assert run.ok, run.output
    assert "asks for a restart to finish; not done (hostingBundle.restart is off)" in run.output
    assert stack.outputs()["restart_pending"] is True and stack.outputs()["installed_version"] == "8.0.12"
    assert installers.restart_pending(state(host)), "the host was not restarted"
    assert not any(e.get("kind") == "restart" for e in host.journal())

    power.admin_restart(state(host))  # the operator restarts it later: a new boot time
    mark = host.journal_mark()
    assert stack.up(refresh=True).ok
    assert stack.outputs()["restart_pending"] is False
    assert not any(op in UPLOAD_OPS for op in ops(host, mark))


def test_another_programs_pending_restart_is_no_warning_and_no_drift(
    host: Target, engine: Engine, tmp_path: Path
) -> None:
    iis.ensure_installed(state(host))
    # Another program's installer scheduled a file rename for the next start (finding 3 of the review).
    other = ["\\??\\C:\\Program Files\\Other\\other.dll.new", "!\\??\\C:\\Program Files\\Other\\other.dll"]
    iis.set_registry_key(state(host), installers.SESSION_MANAGER, {installers.PENDING_RENAMES: other})
    stack = engine(bundle_program(host, installer(tmp_path, "8.0.11"), "8.0.11"))
    run = stack.up()
    assert run.ok, run.output
    assert stack.outputs()["restart_pending"] is False and stack.outputs()["machine_restart_pending"] is True
    assert "asks for a restart" not in run.output and "the installer did not ask for" in run.output
    assert stack.refresh(expect_no_changes=True).ok, "the machine's pending restart is not this resource's drift"


def test_a_net_runtime_removed_on_its_own_is_drift_that_a_repair_fixes(
    host: Target, engine: Engine, tmp_path: Path
) -> None:
    iis.ensure_installed(state(host))
    stack = engine(bundle_program(host, installer(tmp_path, "8.0.11"), "8.0.11"))
    assert stack.up().ok
    assert stack.outputs()["netcore_version"] == "8.0.11"
    iis.set_registry_key(state(host), iis.NETCORE_APP_VERSIONS, None)  # uninstalled in Programs and Features
    drift = stack.refresh(expect_no_changes=True, preview_only=True)
    assert not drift.ok, drift.output
    repaired = stack.up(refresh=True)
    assert repaired.ok, repaired.output
    assert stack.outputs()["last_action"] == "repair" and stack.outputs()["netcore_version"] == "8.0.11"


def busy_pool(target: Target) -> None:
    """An AlwaysRunning pool that WAS starts: its w3wp.exe holds aspnetcorev2.dll."""
    manager = iis.ServerManager(state(target))
    pool = manager.add_pool("Busy")
    manager.set_pool_value(pool, "startMode", "AlwaysRunning")
    manager.commit()


def test_with_restart_allowed_the_host_restarts_and_answers_again(host: Target, engine: Engine, tmp_path: Path) -> None:
    iis.ensure_installed(state(host))
    iis.install_hosting_bundle(state(host), "8.0.11")
    busy_pool(host)
    iis.admin_set_state(state(host), "pool", "Busy", "Stopped")  # stopped by hand: the boot starts it (autoStart)
    iis.admin_set_state(state(host), "pool", "Busy", "Started")
    before = power.boot_time(state(host))
    stack = engine(bundle_program(host, installer(tmp_path, "8.0.12"), "8.0.12", restart=True))
    run = stack.up()
    assert run.ok, run.output
    assert [e for e in host.journal() if e.get("kind") == "restart"], "the host went down and came back"
    assert power.boot_time(state(host)) != before
    assert not installers.restart_pending(state(host)), "the start completed the renames the installer scheduled"
    assert stack.outputs()["restart_pending"] is False and stack.outputs()["installed_version"] == "8.0.12"
    assert iis.ServerManager(state(host)).pool_state("Busy") == "Started", "WAS started the pool again"
    assert "restarted as the installer asked" in run.output
    assert stack.up().summary == {"same": 2}


def test_installer_failure_names_the_exit_code_and_the_log(host: Target, engine: Engine, tmp_path: Path) -> None:
    iis.ensure_installed(state(host))
    host.set_knobs(installer_faults=[{"on": "hosting-bundle", "exit_code": 1603}])
    stack = engine(bundle_program(host, installer(tmp_path, "8.0.11"), "8.0.11"))
    run = stack.up()
    assert not run.ok
    assert "[InstallerFailed]" in run.output and "exited with 1603" in run.output and "install.log" in run.output
    mark = host.journal_mark()
    again = stack.up()
    assert again.ok, again.output
    assert "hosting_bundle/chunk" not in ops(host, mark), "the installer the host holds is run again, not re-sent"


def test_an_interrupted_upload_resumes_where_the_host_stopped(host: Target, engine: Engine, tmp_path: Path) -> None:
    iis.ensure_installed(state(host))
    path = installer(tmp_path, "8.0.11", size=1024 * 1024)
    found = inspect_installer(path, "8.0.11")
    # What a dropped connection leaves: the first 512 KiB on the host, in the admin-only folders chunk made.
    partial = host.windows_file(f"C:\\ProgramData\\UsercubeIac\\HostingBundle\\upload-{found.sha256}.partial")
    partial.parent.mkdir(parents=True, exist_ok=True)
    for folder in staging.staging_levels(host_bundle.STAGING_ROOT):
        ntfs.NtfsStore(state(host)).set_descriptor(folder, staging.admin_only())
    partial.write_bytes(path.read_bytes()[: 512 * 1024])
    stack = engine(bundle_program(host, path, "8.0.11"))
    mark = host.journal_mark()
    run = stack.up()
    assert run.ok, run.output
    offsets = [r["input"] for r in host.requests_since(mark) if "# op: hosting_bundle/chunk" in r["script"]]
    assert [int(json.loads(i)["offset"]) for i in offsets] == [512 * 1024, 768 * 1024]
    assert "resumed the upload" in run.output


def test_missing_or_mislabelled_installer_is_refused_before_any_host_call(
    host: Target, engine: Engine, tmp_path: Path
) -> None:
    path = installer(tmp_path, "8.0.11")
    found = inspect_installer(path, "8.0.11")
    path.unlink()

    def program() -> None:
        HostingBundle(
            "bundle",
            connection=secret_connection(host),
            source_path=found.path,
            installer_name=found.name,
            sha256=found.sha256,
            size=found.size,
            version="8.0.11",
        )

    mark = host.journal_mark()
    run = engine(program).up()
    assert not run.ok and "does not exist" in run.output
    assert host.journal_since(mark) == []
    with pytest.raises(ValueError, match=r"installs 8\.0\.11, not the version 8\.0\.12"):
        inspect_installer(installer(tmp_path, "8.0.11"), "8.0.12")

"""SIMULATOR: review-owed section A (the RuntimeArchive 'archive2' round, findings A1-A7) as simulator behaviour.

Each test shows the Windows behaviour the finding is about on the simulated host (devhost.service_controller after
microsoft/referencesource ServiceController.cs; devhost.scm's service states and StartService's 1056), that the
model of the fixed script handles it, and that the unfixed script's construct is refused by the model's script
facts (so it could never be blessed and run against this model)."""

from __future__ import annotations

import json
import zipfile

import pytest

from devhost import iis, ps51, scm, service_controller
from devhost.fileops import DotNetError
from devhost.fs import WindowsFs
from devhost.ops import SCRIPT_FACTS
from devhost.ops import runtime_archive as model
from providers.scripting.runner import ScriptRef, render_script
from tests.devhost.test_runtime_archive_model import (
    DEPENDENT,
    POOL,
    RUNTIME,
    SERVICE,
    V1,
    V2,
    install,
    interrupted_swap_to_v2,
    journal,
    left_stopped,
    make_zip,
    pool_site,
    put,
    running_dependent,
    running_service,
    spec,
    upload,
)


def script(operation: str) -> str:
    """The rendered script of ``runtime_archive/<name>``."""
    return render_script(ScriptRef("providers.runtime_archive", operation.rsplit("/", 1)[-1]))


def refused_unfixed(operation: str, fixed: str, unfixed: str) -> list[str]:
    """The model's script facts that the script with ``fixed`` put back to ``unfixed`` violates."""
    text = script(operation)
    assert fixed in text, "the fixed construct is in the script"
    return ps51.check_script(SCRIPT_FACTS, operation, text.replace(fixed, unfixed))


def state_of(fs: WindowsFs, name: str) -> str:
    service = scm.get(fs.root, name)
    assert service is not None
    return service.state


def record(fs: WindowsFs) -> dict[str, object] | None:
    path = fs.resolve(f"{model.staging_folder(RUNTIME)}\\agent-stopped.json")
    return json.loads(path.read_text()) if path.is_file() else None


# -- A1: the dependents' controllers were disposed before Stop() walked them -------------------------------

FIXED_A1 = "                $dependents = @($service[0].DependentServices)\n"
UNFIXED_A1 = (
    "                $dependents = $service[0].DependentServices\n"
    "                try {\n"
    "                    [void]@($dependents | Where-Object { $_.Status -ne "
    "[System.ServiceProcess.ServiceControllerStatus]::Stopped })\n"
    "                } finally {\n"
    "                    foreach ($dependent in $dependents) { $dependent.Dispose() }\n"
    "                }\n"
)


def test_a1_stop_walks_the_cached_dependents_so_disposing_them_first_throws(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    running_dependent(fs.root)
    scm.stop(fs.root, DEPENDENT)  # stopped or not: EnumDependentServices(SERVICE_STATE_ALL) lists it
    controller = next(c for c in service_controller.get_services(fs.root) if c.service_name == SERVICE)
    dependents = controller.dependent_services
    assert [d.service_name for d in dependents] == [DEPENDENT] and [d.status for d in dependents] == ["Stopped"]
    assert controller.dependent_services is dependents, "the same cached array on every read"
    for dependent in dependents:
        dependent.dispose()
    with pytest.raises(DotNetError) as raised:
        controller.stop()
    assert raised.value.type_name == "System.ObjectDisposedException"
    assert state_of(fs, SERVICE) == "Running", "ControlService was never called"
    # Disposed after Stop (the fixed order): the stop goes through.
    fresh = next(c for c in service_controller.get_services(fs.root) if c.service_name == SERVICE)
    kept = fresh.dependent_services
    fresh.stop()
    fresh.wait_for_status("Stopped", 120)
    for dependent in kept:
        dependent.dispose()
    assert state_of(fs, SERVICE) == "Stopped"


def test_a1_refresh_gives_fresh_dependents_and_dispose_is_for_good(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    running_dependent(fs.root)
    controller = next(c for c in service_controller.get_services(fs.root) if c.service_name == SERVICE)
    first = controller.dependent_services
    controller.refresh()
    assert controller.dependent_services is not first
    first[0].dispose()
    first[0].refresh()  # Refresh resets the cached status, never `disposed`
    with pytest.raises(DotNetError):
        _ = first[0].status


def test_a1_enum_dependent_services_lists_indirect_dependents_before_what_they_depend_on(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    running_dependent(fs.root)
    scm.create(
        fs.root,
        name="Outer",
        display_name="Outer",
        image_path='"C:\\watcher\\watcher.exe"',
        start_mode="Manual",
        start_name="LocalSystem",
        password=None,
    )
    scm.change(fs.root, "Outer", dependencies=[DEPENDENT])
    assert [s.name for s in scm.enum_dependent_services(fs.root, SERVICE)] == ["Outer", DEPENDENT]


def test_a1_an_upgrade_of_a_service_with_a_stopped_dependent_goes_through(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    running_dependent(fs.root)
    scm.stop(fs.root, DEPENDENT)
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), service_name=SERVICE))
    assert envelope.ok, envelope.error
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").read_bytes() == b"MZ v2"
    assert state_of(fs, SERVICE) == "Running" and state_of(fs, DEPENDENT) == "Stopped", "a stopped one stays so"
    for operation in ("runtime_archive/set", "runtime_archive/remove"):
        assert refused_unfixed(operation, FIXED_A1, UNFIXED_A1), "the model refuses the dispose before Stop()"


def test_a1_remove_of_a_service_with_a_dependent_deletes_the_files(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    running_dependent(fs.root)
    envelope = model.remove(fs, spec(make_zip(V1), service_name=SERVICE))
    assert envelope.ok, envelope.error
    assert not fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").exists()
    assert state_of(fs, SERVICE) == "Stopped" and state_of(fs, DEPENDENT) == "Stopped"


# -- A2: a record already there was overwritten ----------------------------------------------------------

FIXED_A2 = "                Write-AgentStopped $Folder $record\n                $stopped += 'service'\n"
UNFIXED_A2 = (
    "                Write-JsonFile (Get-AgentStoppedPath $Folder) $record\n                $stopped += 'service'\n"
)


def manual_dependent(fs: WindowsFs) -> None:
    running_dependent(fs.root)
    scm.change(fs.root, DEPENDENT, start_mode="Manual")


def test_a2_a_dependent_a_broken_run_stopped_is_started_although_a_reboot_started_the_service(
    fs: WindowsFs,
) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    manual_dependent(fs)
    # The broken run stopped the service and its running dependent, recorded both, and broke off mid-swap.
    left_stopped(fs, {"pool": None, "auto_start": None, "service": SERVICE, "start_type": "Automatic",
                      "dependents": [DEPENDENT]})  # fmt: skip
    scm.stop(fs.root, DEPENDENT)
    scm.stop(fs.root, SERVICE)
    interrupted_swap_to_v2(fs)
    scm.start(fs.root, SERVICE)  # the reboot started the Automatic service, not the Manual dependent
    envelope = model.set_(fs, spec(make_zip(V1), service_name=SERVICE))
    assert envelope.ok, envelope.error
    assert state_of(fs, DEPENDENT) == "Running", "it ran before the project touched it"
    assert record(fs) is None
    assert refused_unfixed("runtime_archive/set", FIXED_A2, UNFIXED_A2)


def test_a2_a_dependent_that_failed_to_start_stays_recorded_through_the_upgrade(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    manual_dependent(fs)
    left_stopped(fs, {"pool": None, "auto_start": None, "service": SERVICE, "start_type": "Automatic",
                      "dependents": [DEPENDENT]})  # fmt: skip
    scm.stop(fs.root, DEPENDENT)
    fs.resolve("C:\\watcher\\watcher.exe").unlink()  # it cannot start yet (2)
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), service_name=SERVICE))
    assert envelope.ok, envelope.error
    kept = record(fs)
    assert kept is not None and kept["dependents"] == [DEPENDENT] and kept["start_type"] == "Automatic"
    put(fs, "C:\\watcher\\watcher.exe", b"MZ watcher")
    again = model.set_(fs, spec(make_zip(V2), service_name=SERVICE))
    assert again.ok, again.error
    assert state_of(fs, DEPENDENT) == "Running" and record(fs) is None, "the promised retry happened"


def test_a2_the_earlier_autostart_is_kept_when_this_run_does_not_record_the_pool(fs: WindowsFs) -> None:
    pool_site(fs)
    install(fs, make_zip(V1), app_pool=POOL)
    folder = model.staging_folder(RUNTIME)
    model._write_record(fs, folder, {"pool": POOL, "auto_start": True, "service": None, "start_type": None,
                                     "dependents": []})  # fmt: skip
    model._write_record(fs, folder, {"pool": None, "auto_start": None, "service": SERVICE, "start_type": "Manual",
                                     "dependents": []})  # fmt: skip
    assert record(fs) == {"pool": POOL, "auto_start": True, "service": SERVICE, "start_type": "Manual",
                          "dependents": []}  # fmt: skip
    # (A pool this run stops itself gets this run's AutoStart: review-archive3 N1.)
    model._write_record(fs, folder, {"pool": POOL, "auto_start": False, "service": None, "start_type": None,
                                     "dependents": []})  # fmt: skip
    assert record(fs) == {"pool": POOL, "auto_start": False, "service": SERVICE, "start_type": "Manual",
                          "dependents": []}  # fmt: skip


# -- A3: Paused / StartPending services and a Starting pool were left running ------------------------------

FIXED_A3 = (
    "elseif ($service.Count -eq 1 -and $service[0].Status -ne [System.ServiceProcess.ServiceControllerStatus]::Stopped)"
)
UNFIXED_A3 = (
    "elseif ($service.Count -eq 1 -and $service[0].Status -eq [System.ServiceProcess.ServiceControllerStatus]::Running)"
)


@pytest.mark.parametrize("state", ["Paused", "PausePending"])
def test_a3_a_paused_service_is_stopped_for_the_upgrade_and_started_after(fs: WindowsFs, state: str) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    scm.set_state(fs.root, SERVICE, state)  # its process still runs from V1's files
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), service_name=SERVICE))
    assert envelope.ok, envelope.error
    events = [(e["action"], e["name"]) for e in journal(fs.root) if e["kind"] == "agent"]
    assert events == [("stop", SERVICE), ("start", SERVICE)]
    assert state_of(fs, SERVICE) == "Running"
    assert refused_unfixed("runtime_archive/set", FIXED_A3, UNFIXED_A3)


def test_a3_a_paused_dependent_is_recorded_as_stop_stops_it(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    running_dependent(fs.root)
    scm.set_state(fs.root, DEPENDENT, "Paused")
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), service_name=SERVICE))
    assert envelope.ok, envelope.error
    assert [c["before"] for c in envelope.changes if c["property"] == "agent_service"] == [
        f"{SERVICE}: stopped for the upgrade",
        f"{DEPENDENT}: stopped for the upgrade",
    ]
    assert state_of(fs, DEPENDENT) == "Running"


def test_a3_a_starting_service_is_waited_for_then_stopped(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    scm.stop(fs.root, SERVICE)
    scm.set_state(fs.root, SERVICE, "StartPending")  # a delayed automatic start under way
    # ControlService refuses a stop in StartPending (1061): the stop alone would fail.
    with pytest.raises(scm.ScmError) as refused:
        next(c for c in service_controller.get_services(fs.root) if c.service_name == SERVICE).stop()
    assert refused.value.code == 1061
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), service_name=SERVICE))
    assert envelope.ok, envelope.error
    events = [(e["action"], e["name"]) for e in journal(fs.root) if e["kind"] == "agent"]
    assert events == [("stop", SERVICE), ("start", SERVICE)], "stopped before the swap, started after"


def test_a3_a_starting_pool_is_waited_for_then_stopped_and_started_again(fs: WindowsFs) -> None:
    put(fs, f"{RUNTIME}\\placeholder.txt", b"")
    pool_site(fs)
    install(fs, make_zip(V1), app_pool=POOL)
    iis.ServerManager(fs.root).begin_start_pool(POOL)
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), app_pool=POOL))
    assert envelope.ok, envelope.error
    events = [(e["action"], e["what"]) for e in journal(fs.root) if e["kind"] == "agent"]
    assert events == [("stop", "pool"), ("start", "pool")]
    assert iis.ServerManager(fs.root).pool_state(POOL) == "Started"
    # The unfixed script stopped only a pool already Started.
    fixed = "            if ($passing -contains $state) {"
    assert refused_unfixed("runtime_archive/set", fixed, "            if ($false) {")


# -- A4: the waits derive from shutdownTimeLimit, capped --------------------------------------------------

FIXED_A4 = "            if ($null -eq $limit) { $limit = Get-WaitBudget (Get-PoolShutdownWait $pool) }"
UNFIXED_A4 = "            if ($null -eq $limit) { $limit = $pool.ProcessModel.ShutdownTimeLimit.TotalSeconds + 5 }"


@pytest.mark.parametrize(("limit", "wait"), [("00:01:30", 120), ("00:00:01", 31), ("00:10:00", 150)])
def test_a4_the_worker_wait_is_the_shutdown_limit_and_30_s_at_most_150_s(
    fs: WindowsFs, monkeypatch: pytest.MonkeyPatch, limit: str, wait: float
) -> None:
    pool_site(fs)
    install(fs, make_zip(V1), app_pool=POOL)
    manager = iis.ServerManager(fs.root)
    pool = manager.find_pool(POOL)
    assert pool is not None
    manager.set_pool_value(pool, "processModel/shutdownTimeLimit", limit)
    manager.commit()
    manager.stop_pool(POOL)  # (a worker that would never exit by itself)
    monkeypatch.setattr(model, "worker_exit_at", lambda state, name: model.time.time() + 10_000)
    slept: list[float] = []
    monkeypatch.setattr(model.time, "sleep", slept.append)
    model._wait_pool_worker_exit(fs, POOL)
    assert slept and abs(slept[-1] - wait) < 1
    assert refused_unfixed("runtime_archive/remove", FIXED_A4, UNFIXED_A4)


# -- A5: Start-Agent called Start() on a service being started --------------------------------------------

FIXED_A5 = "        if ($found.Count -eq 1 -and $pendingStart -contains $found[0].Status) {"
UNFIXED_A5 = "        if ($false) {"


def test_a5_start_of_a_service_that_is_not_stopped_is_1056(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    for state in ("Running", "StartPending", "Paused"):
        scm.set_state(fs.root, SERVICE, state)
        with pytest.raises(scm.ScmError) as raised:
            scm.start(fs.root, SERVICE)
        assert raised.value.code == 1056


def test_a5_a_recorded_service_being_started_is_waited_for_not_started(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    left_stopped(fs, {"pool": None, "auto_start": None, "service": SERVICE, "start_type": "Automatic",
                      "dependents": []})  # fmt: skip
    scm.stop(fs.root, SERVICE)
    scm.set_state(fs.root, SERVICE, "StartPending")  # delayed automatic start after the reboot
    envelope = model.set_(fs, spec(make_zip(V1), service_name=SERVICE))
    assert envelope.ok, envelope.error
    assert [c["after"] for c in envelope.changes if c["property"] == "agent_service"] == ["running (started since)"]
    assert record(fs) is None and state_of(fs, SERVICE) == "Running"
    assert refused_unfixed("runtime_archive/set", FIXED_A5, UNFIXED_A5)


# -- A6: reserved device names --------------------------------------------------------------------------

FIXED_A6 = " -or $_ -match '^(CON|PRN|AUX|NUL|COM[0-9\\u00B9\\u00B2\\u00B3]|LPT[0-9\\u00B9\\u00B2\\u00B3]) *(\\.|$)'"


@pytest.mark.parametrize("name", ["nul.txt", "lib/aux.dll", "CON", "com1", "LPT9.log", "prn/x.dll"])
def test_a6_an_entry_that_is_a_device_name_is_refused_before_anything_changes(fs: WindowsFs, name: str) -> None:
    data = make_zip({"Usercube-Agent.exe": b"MZ", name: b"x"})
    upload(fs, data)
    envelope = model.set_(fs, spec(data))
    assert not envelope.ok and envelope.error is not None
    assert (envelope.error["id"], envelope.error["property"]) == ("ArchiveEntryRefused", "sha256")
    assert not fs.resolve(RUNTIME).exists()
    assert refused_unfixed("runtime_archive/set", FIXED_A6, "")


@pytest.mark.parametrize("name", ["console.txt", "nul-free.txt", "com10.dll", "lib/auxiliary.dll"])
def test_a6_a_name_that_only_begins_like_a_device_is_extracted(fs: WindowsFs, name: str) -> None:
    install(fs, make_zip({"Usercube-Agent.exe": b"MZ", name: b"x"}))
    assert fs.resolve(f"{RUNTIME}\\{name.replace('/', chr(92))}").read_bytes() == b"x"


# -- A7: a file that is no zip ---------------------------------------------------------------------------

FIXED_A7 = "    try {\n        $archive = [System.IO.Compression.ZipArchive]::new("
UNFIXED_A7 = "    $archive = [System.IO.Compression.ZipArchive]::new("


def test_a7_a_staging_file_that_is_no_zip_is_archive_invalid_naming_source_path(fs: WindowsFs) -> None:
    data = b"PK but not really a zip archive" * 10
    upload(fs, data)
    envelope = model.set_(fs, spec(data))
    assert not envelope.ok and envelope.error is not None
    assert (envelope.error["id"], envelope.error["property"]) == ("ArchiveInvalid", "source_path")
    assert "is not a zip archive" in envelope.error["message"]
    assert not fs.resolve(RUNTIME).exists()
    assert refused_unfixed("runtime_archive/set", FIXED_A7, UNFIXED_A7)


def test_a7_bzip2_entries_still_fail_the_extraction_not_the_open(fs: WindowsFs) -> None:
    data = make_zip({"x.dll": b"MZ"}, zipfile.ZIP_BZIP2)
    upload(fs, data)
    envelope = model.set_(fs, spec(data))
    assert not envelope.ok and envelope.error is not None and envelope.error["id"] == "ExtractionFailed"


def test_the_manifests_kept_files_are_read_one_name_each() -> None:
    # review-keepfiles K1: Get-KeptFiles writes its list as one object (return ,@(...)); @() around the call wraps it
    # in a one-element array, [string] joins the list into one name, and a committed swap of an agent that keeps two
    # files or more is taken for unfinished and undone.
    fixed = "foreach ($file in (Get-KeptFiles $manifest))"
    for operation in ("runtime_archive/set", "runtime_archive/remove"):
        assert refused_unfixed(operation, fixed, "foreach ($file in @(Get-KeptFiles $manifest))") != []

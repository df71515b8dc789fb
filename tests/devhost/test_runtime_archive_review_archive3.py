"""SIMULATOR: review-archive3 (the RuntimeArchive 'archive3' round, findings N1-N8) as simulator behaviour.

As in test_runtime_archive_review_a: each test shows the Windows behaviour on the simulated host, that the model of
the fixed script handles it, and that the script with the fix undone is refused by the model's script facts (so it
could never be blessed and run against this model)."""

from __future__ import annotations

import time

import pytest

from devhost import iis, scm, service_controller, ziparchive
from devhost.fileops import DotNetError
from devhost.fs import WindowsFs
from devhost.ops import runtime_archive as model
from tests.devhost.test_runtime_archive_model import (
    DEPENDENT,
    POOL,
    RUNTIME,
    SERVICE,
    V1,
    V2,
    agent_events,
    install,
    journal,
    knobs,
    left_stopped,
    make_zip,
    pool_running_v1,
    running_dependent,
    running_service,
    shutdown_time_limit,
    spec,
    upload,
)
from tests.devhost.test_runtime_archive_review_a import record, refused_unfixed, state_of

# -- N2: a pool already Stopping was neither waited for nor its worker's exit ------------------------------

FIXED_N2 = "            if ($passing -contains $state) {"


def test_n2_a_pool_already_stopping_is_waited_for_and_its_worker_too_without_a_record(fs: WindowsFs) -> None:
    pool_running_v1(fs)
    knobs(fs, pool_worker_exit_s=1)  # its worker drains for a second more
    iis.ServerManager(fs.root).begin_stop_pool(POOL)  # someone else's stop, under way
    assert iis.ServerManager(fs.root).pool_state(POOL) == "Stopping"
    upload(fs, make_zip(V2))
    began = time.monotonic()
    envelope = model.set_(fs, spec(make_zip(V2), app_pool=POOL))
    assert envelope.ok, envelope.error
    assert time.monotonic() - began >= 0.9, "the swap waited for the draining worker"
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").read_bytes() == b"MZ v2"
    assert not fs.resolve(f"{RUNTIME}\\.iac-old").exists(), "no replaced image was still mapped"
    assert iis.ServerManager(fs.root).pool_state(POOL) == "Stopped", "not this run's stop: not started"
    assert agent_events(fs) == [] and record(fs) is None
    for operation in ("runtime_archive/set", "runtime_archive/remove"):
        assert refused_unfixed(operation, FIXED_N2, "            if ($false) {")


def test_n2_a_pool_still_stopping_after_the_wait_is_agent_stop_failed_and_nothing_moves(
    fs: WindowsFs, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool_running_v1(fs)
    shutdown_time_limit(fs, "00:05:00")  # the wait: 150 s, the cap
    knobs(fs, pool_worker_exit_s=250)
    iis.ServerManager(fs.root).begin_stop_pool(POOL)
    monkeypatch.setattr(model.time, "sleep", lambda seconds: None)
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), app_pool=POOL))
    assert not envelope.ok and envelope.error is not None
    assert (envelope.error["id"], envelope.error["property"]) == ("AgentStopFailed", "app_pool")
    assert "still in state Stopping after 150 s" in envelope.error["message"]
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").read_bytes() == b"MZ v1"
    assert record(fs) is None


# -- N4: set swapped beside a worker still running after the capped wait ----------------------------------

FIXED_N4 = "    if ($stopped -contains 'pool') { Assert-PoolWorkerExited ([string]$Spec.app_pool) $true }"
UNFIXED_N4 = "    if ($stopped -contains 'pool') { Wait-PoolWorkerExit ([string]$Spec.app_pool) }"


def test_n4_a_worker_alive_after_the_capped_wait_fails_the_set_before_any_move(
    fs: WindowsFs, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool_running_v1(fs)
    shutdown_time_limit(fs, "00:05:00")  # WAS would let it drain up to 300 s; the wait is 150 s
    knobs(fs, pool_worker_exit_s=250)
    slept: list[float] = []
    monkeypatch.setattr(model.time, "sleep", slept.append)
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), app_pool=POOL))
    assert not envelope.ok and envelope.error is not None
    assert (envelope.error["id"], envelope.error["property"]) == ("AgentStopFailed", "app_pool")
    message = envelope.error["message"]
    assert "still ran after the wait" in message and "Nothing in Runtime was changed" in message
    assert 150 in slept, "waited the capped 150 s first"
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").read_bytes() == b"MZ v1"
    assert not fs.resolve(f"{RUNTIME}\\.iac-old").exists(), "no move was made"
    assert iis.ServerManager(fs.root).pool_state(POOL) == "Started", "started again on the untouched version"
    assert refused_unfixed("runtime_archive/set", FIXED_N4, UNFIXED_N4)


def test_n4_a_worker_that_exits_within_the_wait_lets_the_set_go_on(fs: WindowsFs) -> None:
    pool_running_v1(fs)
    knobs(fs, pool_worker_exit_s=1)
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), app_pool=POOL))
    assert envelope.ok, envelope.error
    assert agent_events(fs) == [("stop", "pool"), ("start", "pool")]
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").read_bytes() == b"MZ v2"


# -- N1: an earlier record's AutoStart / start type for what this run stopped itself ---------------------

FIXED_N1_POOL = "        if ($earlier.pool -and -not $merged.pool) {"
UNFIXED_N1_POOL = (
    "        if ($earlier.pool -and (-not $merged.pool -or [string]$earlier.pool -eq [string]$merged.pool)) {"
)
FIXED_N1_SERVICE = "        if ($earlier.service -and -not $merged.service) {"
UNFIXED_N1_SERVICE = (
    "        if ($earlier.service -and (-not $merged.service -or "
    "[string]$earlier.service -eq [string]$merged.service)) {"
)


def test_n1_a_pool_running_again_with_autostart_false_is_started_after_the_upgrade(fs: WindowsFs) -> None:
    pool_running_v1(fs)
    # A broken run recorded the pool with AutoStart true; an admin then set AutoStart false and started it by hand.
    left_stopped(fs, {"pool": POOL, "auto_start": True, "service": None, "start_type": None, "dependents": []})
    manager = iis.ServerManager(fs.root)
    pool = manager.find_pool(POOL)
    assert pool is not None
    manager.set_pool_value(pool, "autoStart", "false")
    manager.commit()
    assert manager.pool_state(POOL) == "Started"
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), app_pool=POOL))
    assert envelope.ok, envelope.error
    assert iis.ServerManager(fs.root).pool_state(POOL) == "Started", "it ran before this run: it runs after"
    assert record(fs) is None
    assert refused_unfixed("runtime_archive/set", FIXED_N1_POOL, UNFIXED_N1_POOL)


def test_n1_a_service_disabled_while_it_kept_running_is_started_after_the_upgrade(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    running_dependent(fs.root)
    left_stopped(fs, {"pool": None, "auto_start": None, "service": SERVICE, "start_type": "Automatic",
                      "dependents": [DEPENDENT]})  # fmt: skip
    scm.stop(fs.root, DEPENDENT)  # what the broken run left stopped
    scm.admin_edit_service(fs.root, SERVICE, start_mode="Disabled")  # it kept running
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), service_name=SERVICE))
    assert envelope.ok, envelope.error
    changes = {c["before"]: c["after"] for c in envelope.changes if c["property"] == "agent_service"}
    # It ran although Disabled: StartService refuses it (1058), and the outcome says how to have it started;
    # never "left stopped (its start mode is Disabled)", which would take this run's own stop for a stop on purpose.
    assert "it was Disabled already when it was stopped" in changes[f"{SERVICE}: stopped for the upgrade"]
    kept = record(fs)
    assert kept is not None and kept["start_type"] == "Disabled"
    assert kept["dependents"] == [DEPENDENT], "the earlier run's dependent stays listed"
    assert refused_unfixed("runtime_archive/set", FIXED_N1_SERVICE, UNFIXED_N1_SERVICE)
    assert state_of(fs, DEPENDENT) == "Stopped"


# -- N3: a start under way was waited for until exactly Running -------------------------------------------

FIXED_N3_STOP = (
    "                if (-not (Wait-ServiceStateLeft $service[0] $pendingStart $wait)) {\n"
    "                    throw (New-AgentStopError 'service_name' \"service '$name' is still starting"
)
UNFIXED_N3_STOP = (
    "                try {\n"
    "                    $service[0].WaitForStatus([System.ServiceProcess.ServiceControllerStatus]::Running, "
    "[TimeSpan]::FromSeconds($wait))\n"
    "                } catch {\n"
    "                    throw (New-AgentStopError 'service_name' \"service '$name' is still starting"
)
FIXED_N3_START = "            if (-not (Wait-ServiceStateLeft $found[0] $pendingStart $wait)) {"


def starting_service_that_fails(fs: WindowsFs) -> None:
    running_service(fs.root)
    scm.stop(fs.root, SERVICE)
    scm.set_state(fs.root, SERVICE, "StartPending")  # a delayed automatic start under way...
    knobs(fs, services_failing_start=[SERVICE])  # ...that fails: it ends Stopped


def test_n3_a_start_that_fails_while_set_waits_is_nothing_to_stop_not_agent_stop_failed(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    starting_service_that_fails(fs)
    # WaitForStatus(Running) waits for that one status: the failed start is waited out, then TimeoutException.
    controller = service_controller.ServiceController(fs.root, SERVICE, None)
    with pytest.raises(DotNetError) as raised:
        controller.wait_for_status("Running", 60)
    assert raised.value.type_name == "System.ServiceProcess.TimeoutException"
    scm.set_state(fs.root, SERVICE, "StartPending")
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), service_name=SERVICE))
    assert envelope.ok, envelope.error
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").read_bytes() == b"MZ v2"
    assert state_of(fs, SERVICE) == "Stopped", "nothing ran: nothing stopped, nothing to start"
    assert [e for e in journal(fs.root) if e["kind"] == "agent"] == [] and record(fs) is None
    for operation in ("runtime_archive/set", "runtime_archive/remove"):
        assert refused_unfixed(operation, FIXED_N3_STOP, UNFIXED_N3_STOP)


def test_n3_a_recorded_service_whose_start_under_way_fails_is_started_again(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    starting_service_that_fails(fs)
    left_stopped(fs, {"pool": None, "auto_start": None, "service": SERVICE, "start_type": "Automatic",
                      "dependents": []})  # fmt: skip
    envelope = model.set_(fs, spec(make_zip(V1), service_name=SERVICE))
    assert envelope.ok, envelope.error
    assert [c["after"] for c in envelope.changes if c["property"] == "agent_service"] == ["Started"]
    assert state_of(fs, SERVICE) == "Running" and record(fs) is None
    assert refused_unfixed("runtime_archive/set", FIXED_N3_START, "            if ($false) {")


# -- N7: a dependent in StartPending or StopPending made Stop() fail (1061) ----------------------------------

FIXED_N7 = (
    "                    if (-not (Wait-ServiceStateLeft $dependent $pendingControl "
    "([int][Math]::Max(0, $wait - $clock.Elapsed.TotalSeconds)))) {"
)


def test_n7_a_dependent_being_started_is_waited_for_then_stopped_and_started_again(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    running_dependent(fs.root)
    scm.set_state(fs.root, DEPENDENT, "StartPending")  # a delayed automatic start after a reboot
    # Stop() sends the dependent a stop it refuses in StartPending (1061, learn.microsoft.com ControlService).
    with pytest.raises(scm.ScmError) as refused:
        next(c for c in service_controller.get_services(fs.root) if c.service_name == SERVICE).stop()
    assert refused.value.code == 1061
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), service_name=SERVICE))
    assert envelope.ok, envelope.error
    events = [(e["action"], e["name"]) for e in journal(fs.root) if e["kind"] == "agent"]
    assert events == [("stop", DEPENDENT), ("stop", SERVICE), ("start", SERVICE), ("start", DEPENDENT)]
    assert state_of(fs, DEPENDENT) == "Running"
    for operation in ("runtime_archive/set", "runtime_archive/remove"):
        assert refused_unfixed(operation, FIXED_N7, "                    if ($false) {")


def test_n7_a_dependent_that_stays_stopping_is_agent_stop_failed_before_anything_is_stopped(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    running_dependent(fs.root)
    scm.set_state(fs.root, DEPENDENT, "StopPending")
    knobs(fs, services_not_stopping=[DEPENDENT])  # it never finishes its stop
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), service_name=SERVICE))
    assert not envelope.ok and envelope.error is not None
    assert (envelope.error["id"], envelope.error["property"]) == ("AgentStopFailed", "service_name")
    assert f"'{DEPENDENT}', which depends on it, is still StopPending" in envelope.error["message"]
    assert state_of(fs, SERVICE) == "Running" and record(fs) is None, "nothing stopped, nothing recorded"
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").read_bytes() == b"MZ v1"


# -- N6: a damaged central directory threw at Entries, outside the ArchiveInvalid catch ----------------------

FIXED_N6 = "        [void]$archive.Entries.Count\n"


def damaged_central_directory() -> bytes:
    data = bytearray(make_zip(V1))
    at = data.index(b"PK\x01\x02")  # the first central directory header; the End of Central Directory record stays
    data[at : at + 4] = b"PK\x09\x09"
    return bytes(data)


def test_n6_a_damaged_central_directory_is_archive_invalid_not_unexpected_error(fs: WindowsFs) -> None:
    data = damaged_central_directory()
    # .NET Framework: the constructor reads only the End of Central Directory record; Entries then throws.
    with pytest.raises(DotNetError, match="Central Directory corrupt") as raised:
        ziparchive.open_stream(data)
    assert raised.value.type_name == "System.IO.InvalidDataException"
    upload(fs, data)
    envelope = model.set_(fs, spec(data))
    assert not envelope.ok and envelope.error is not None
    assert (envelope.error["id"], envelope.error["property"]) == ("ArchiveInvalid", "source_path")
    assert "Central Directory corrupt" in envelope.error["message"]
    assert not fs.resolve(RUNTIME).exists()
    assert refused_unfixed("runtime_archive/set", FIXED_N6, "")


# -- N5: COM and LPT with a superscript digit ---------------------------------------------------------------

FIXED_N5 = "COM[0-9\\u00B9\\u00B2\\u00B3]|LPT[0-9\\u00B9\\u00B2\\u00B3]) *(\\.|$)'"
UNFIXED_N5 = "COM[0-9]|LPT[0-9])(\\.|$)'"


@pytest.mark.parametrize("name", ["COM\u00b9", "lib/com\u00b2.dll", "LPT\u00b3.txt", "NUL .txt"])
def test_n5_a_device_name_with_a_superscript_digit_is_refused_before_anything_changes(fs: WindowsFs, name: str) -> None:
    data = make_zip({"Usercube-Agent.exe": b"MZ", name: b"x"})
    upload(fs, data)
    envelope = model.set_(fs, spec(data))
    assert not envelope.ok and envelope.error is not None
    assert (envelope.error["id"], envelope.error["property"]) == ("ArchiveEntryRefused", "sha256")
    assert not fs.resolve(RUNTIME).exists()
    assert refused_unfixed("runtime_archive/set", FIXED_N5, UNFIXED_N5)


@pytest.mark.parametrize("name", ["COM\u2074.txt", "lpt\u00b9x.dll", "com\u00b9\u00b2"])
def test_n5_other_superscripts_and_longer_names_are_extracted(fs: WindowsFs, name: str) -> None:
    install(fs, make_zip({"Usercube-Agent.exe": b"MZ", name: b"x"}))
    assert fs.resolve(f"{RUNTIME}\\{name}").read_bytes() == b"x"

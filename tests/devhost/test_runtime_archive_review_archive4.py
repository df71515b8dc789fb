"""SIMULATOR: review-archive4 (the RuntimeArchive 'archive4' round, findings R1-R4) as simulator behaviour.

As in test_runtime_archive_review_a: each test shows the Windows behaviour on the simulated host, that the model of
the fixed script handles it, and that the script with the fix undone is refused by the model's script facts (so it
could never be blessed and run against this model)."""

from __future__ import annotations

import re
import time

import pytest

from devhost import fileops, iis, scm
from devhost.fs import WindowsFs
from devhost.ops import runtime_archive as model
from devhost.ops.iis_common import object_state
from providers.runtime_archive.model import RuntimeArchiveModel, wait_budget_s
from tests.devhost.test_runtime_archive_model import (
    DEPENDENT,
    POOL,
    RUNTIME,
    SERVICE,
    V1,
    V2,
    agent_events,
    install,
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
from tests.devhost.test_runtime_archive_review_a import record, refused_unfixed, script


def with_was(fs: WindowsFs) -> None:
    """The services the Web-Server feature installs with IIS (devhost.features: W3SVC depends on WAS), running."""
    scm.add_system_service(fs.root, "WAS", "Windows Process Activation Service", "C:\\Windows\\system32\\svchost.exe")
    scm.add_system_service(fs.root, "W3SVC", "World Wide Web Publishing Service", "C:\\Windows\\system32\\svchost.exe")


def pool_running_v1_with_was_stopped(fs: WindowsFs) -> None:
    """V1 running in its pool, then `net stop WAS /y`: W3SVC stopped too, every worker ended."""
    pool_running_v1(fs)
    with_was(fs)
    iis.stop_was(fs.root)


# -- R1: a pool whose State cannot be read because WAS is stopped was waited for 150 s, then AgentStopFailed -----

FIXED_R1 = "    if ($state -eq 'Unknown' -and (Test-WasStopped)) { return 'Stopped' }"


def test_r1_while_was_is_stopped_the_pools_state_cannot_be_read(fs: WindowsFs, monkeypatch: pytest.MonkeyPatch) -> None:
    pool_running_v1(fs)
    with_was(fs)
    assert iis.ServerManager(fs.root).pool_state(POOL) == "Started"
    iis.stop_was(fs.root)  # net stop WAS /y: W3SVC too, and every worker ends
    with pytest.raises(iis.WasNotRunning):
        iis.ServerManager(fs.root).pool_state(POOL)
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    assert object_state(lambda: iis.ServerManager(fs.root).pool_state(POOL)) == "Unknown", "Get-IisObjectState"


def test_r1_an_upgrade_while_was_is_stopped_swaps_with_nothing_to_stop_or_record(
    fs: WindowsFs, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool_running_v1_with_was_stopped(fs)
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), app_pool=POOL))
    assert envelope.ok, envelope.error
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").read_bytes() == b"MZ v2"
    assert agent_events(fs) == [] and record(fs) is None, "no worker runs without WAS: nothing stopped or started"
    assert sum(slept) <= 6, "one State read (5 s), never the 150 s wait"
    assert scm.get(fs.root, "WAS").state == "Stopped", "WAS left as the administrator left it"  # type: ignore[union-attr]
    for operation in ("runtime_archive/set", "runtime_archive/remove"):
        assert refused_unfixed(operation, FIXED_R1, "")


def test_r1_remove_while_was_is_stopped_deletes_the_files(fs: WindowsFs, monkeypatch: pytest.MonkeyPatch) -> None:
    pool_running_v1_with_was_stopped(fs)
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    envelope = model.remove(fs, spec(make_zip(V1), app_pool=POOL))
    assert envelope.ok, envelope.error
    assert not fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").exists()


def test_r1_only_a_stopped_was_counts_one_still_starting_is_waited_out(
    fs: WindowsFs, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool_running_v1_with_was_stopped(fs)
    scm.set_state(fs.root, "WAS", "StartPending")  # coming up after a reboot: it may start the pool any moment
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), app_pool=POOL))
    assert not envelope.ok and envelope.error is not None
    assert (envelope.error["id"], envelope.error["property"]) == ("AgentStopFailed", "app_pool")
    assert "still in state Unknown after 120 s" in envelope.error["message"]
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").read_bytes() == b"MZ v1", "nothing swapped"


# -- R2: a wait that ended on Starting took the pool for neither Started nor Stopped: swap beside its worker --------

UNFIXED_R2 = (
    "            if ($state -eq 'Starting') {\n"
    "                $state = Wait-PoolState $pool 'Started' (Get-WaitBudget 30)\n"
    "            }\n"
    "            if (@('Stopping', 'Unknown') -contains $state) {"
)


def test_r2_an_unknown_pool_that_turns_out_starting_is_waited_for_then_stopped_and_started_again(
    fs: WindowsFs,
) -> None:
    pool_running_v1(fs)
    # WAS comes up after a reboot: State throws for 5.5 s (the first read is Unknown), then the pool is Starting.
    iis.ServerManager(fs.root).begin_start_pool(POOL, unknown_for_s=5.5)
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), app_pool=POOL))
    assert envelope.ok, envelope.error
    assert agent_events(fs) == [("stop", "pool"), ("start", "pool")], "the started pool was stopped for the swap"
    assert iis.ServerManager(fs.root).pool_state(POOL) == "Started"
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").read_bytes() == b"MZ v2"
    text = script("runtime_archive/set")
    fixed = "            $passing = @('Starting', 'Stopping', 'Unknown')\n            if ($passing -contains $state) {"
    assert fixed in text
    for operation in ("runtime_archive/set", "runtime_archive/remove"):
        assert refused_unfixed(operation, fixed, UNFIXED_R2)


# -- R3: the waits of one run could add up past the client's command_timeout_s ------------------------------------

FIXED_R3 = "    $left = [Math]::Floor($RunBudgetSeconds - $RunClock.Elapsed.TotalSeconds)"


def test_r3_the_budget_is_80_percent_of_the_connections_command_timeout_and_reaches_the_script(fs: WindowsFs) -> None:
    base = {
        "connection": {"host": "agent.example", "username": "deploy", "password": "secret"},
        "source_path": "/tmp/runtime.zip",
        "archive_name": "runtime.zip",
        "sha256": "0" * 64,
        "size": 1,
        "runtime_path": RUNTIME,
        "keep_files": ["appsettings.agent.json"],
    }
    assert RuntimeArchiveModel.model_validate(base).script_input()["wait_budget_s"] == 480
    assert RuntimeArchiveModel.model_validate(base).script_input()["command_timeout_s"] == 600  # W6: for the note
    raised = {**base, "connection": {**base["connection"], "command_timeout_s": 1800}}  # type: ignore[dict-item]
    assert RuntimeArchiveModel.model_validate(raised).script_input()["wait_budget_s"] == wait_budget_s(1800) == 1440
    # The host model refuses an input without it (as the script needs $Spec.wait_budget_s under Set-StrictMode).
    without = {k: v for k, v in spec(make_zip(V1)).items() if k != "wait_budget_s"}
    with pytest.raises(Exception, match="wait_budget_s"):
        model.set_(fs, without)


def test_r3_a_workers_drain_longer_than_the_budget_is_cut_at_the_budget_and_says_which_setting_to_raise(
    fs: WindowsFs, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool_running_v1(fs)
    shutdown_time_limit(fs, "00:05:00")  # the worker's wait alone would be 150 s
    knobs(fs, pool_worker_exit_s=250)
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), app_pool=POOL, wait_budget_s=40))
    assert not envelope.ok and envelope.error is not None
    assert (envelope.error["id"], envelope.error["property"]) == ("AgentStopFailed", "app_pool")
    message = envelope.error["message"]
    assert "budget of 40 s" in message and "raise command_timeout_s in the connection settings" in message
    assert any(39 <= seconds <= 40 for seconds in slept), "the wait took what was left of the budget (whole seconds)"
    assert 150 not in slept, "never the wait's own 150 s"
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").read_bytes() == b"MZ v1", "nothing swapped"
    assert iis.ServerManager(fs.root).pool_state(POOL) == "Started", "started again on the untouched version"
    for operation in ("runtime_archive/set", "runtime_archive/remove"):
        assert refused_unfixed(operation, FIXED_R3, "    $left = 600")


def test_r3_a_spent_budget_leaves_no_time_for_a_service_still_stopping(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    scm.set_state(fs.root, SERVICE, "StopPending")  # an earlier stop that finishes within any wait with time
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), service_name=SERVICE, wait_budget_s=0))
    assert not envelope.ok and envelope.error is not None
    assert envelope.error["id"] == "AgentStopFailed"
    assert "still stopping after 0 s more" in envelope.error["message"]
    assert "budget of 0 s" in envelope.error["message"]
    # With the budget the provider sends for the default time-out, the same stop is waited out and the set goes on.
    envelope = model.set_(fs, spec(make_zip(V2), service_name=SERVICE))
    assert envelope.ok, envelope.error


# -- R4: the draining worker's message said "run again", which meets the same drain --------------------------------


def test_r4_a_worker_still_draining_says_the_pool_is_started_again_and_how_to_end_the_drain(
    fs: WindowsFs, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool_running_v1(fs)
    shutdown_time_limit(fs, "00:05:00")
    knobs(fs, pool_worker_exit_s=250)
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), app_pool=POOL))
    assert not envelope.ok and envelope.error is not None
    message = envelope.error["message"]
    # W5 (review-archive5): said before the start is tried, so worded as true whatever it does; what it did follows.
    assert (
        "this run then tries to start the pool again (the outcome follows; once it runs, the next run would wait for "
        "the same drain)" in message
    )
    assert "the pool was started again" not in message
    assert message.endswith("the previous version runs again.")
    assert "Lower the pool's shutdownTimeLimit to 120 s or less, or end the draining w3wp.exe before the run" in message
    assert "run again once they have exited" not in message
    assert iis.ServerManager(fs.root).pool_state(POOL) == "Started"
    fixed = "Lower the pool's shutdownTimeLimit to 120 s or less, or end the draining w3wp.exe before the run"
    assert refused_unfixed("runtime_archive/set", fixed, "run again once they have exited")


# == review-archive5 (the 'archive5' round, findings W1-W6) ======================================================

# -- W2: while WAS is stopped, the pool's start marked it Started, then threw, and nothing in the model caught it --


def test_w2_without_was_a_pools_start_and_stop_throw_before_anything_changes(fs: WindowsFs) -> None:
    pool_running_v1_with_was_stopped(fs)
    manager = iis.ServerManager(fs.root)
    for control in (manager.start_pool, manager.stop_pool):
        with pytest.raises(iis.WasNotRunning):
            control(POOL)
    scm.start(fs.root, "WAS")
    assert manager.pool_state(POOL) == "Stopped", "the start without WAS left no pool marked Started"


def test_w2_a_leftover_pool_record_while_was_is_stopped_is_a_failed_start_and_set_goes_on(
    fs: WindowsFs, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool_running_v1_with_was_stopped(fs)
    left_stopped(fs, {"pool": POOL, "auto_start": True, "service": None, "dependents": []})
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), app_pool=POOL))
    # What set.ps1 does: Start-Agent's catch reports the failed start (twice: the interrupted run's record, then
    # the start after the swap), keeps the record, and the installation goes on (set.ps1:34-37, 212-215).
    assert envelope.ok, envelope.error
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").read_bytes() == b"MZ v2"
    starts = [c for c in envelope.changes if c["property"] == "agent_pool"]
    assert [c["before"] for c in starts] == [
        f"{POOL}: stopped by an interrupted run",
        f"{POOL}: stopped for the upgrade",
    ]
    for change in starts:
        assert change["after"].startswith("did not start again (The service has not been started.")
        assert "then start the pool (see the System event log (WAS))" in change["after"]
    assert record(fs) is not None, "kept: the next run starts the pool"
    assert agent_events(fs) == [], "nothing started or stopped"
    scm.start(fs.root, "WAS")
    assert iis.ServerManager(fs.root).pool_state(POOL) == "Stopped", "never marked Started without WAS"
    fixed = "            $problem = $reason.Message\n        } finally {\n            $manager.Dispose()"
    unfixed = "            throw\n        } finally {\n            $manager.Dispose()"
    assert refused_unfixed("runtime_archive/set", fixed, unfixed)


# -- W3: a Stopped WAS left the stopped pool's worker draining, holding the agent's images ------------------------


def test_w3_a_stopped_was_leaves_no_worker_holding_the_images(fs: WindowsFs, monkeypatch: pytest.MonkeyPatch) -> None:
    pool_running_v1(fs)
    with_was(fs)
    knobs(fs, pool_worker_exit_s=60)  # a worker that drains its requests for a minute after its pool's stop
    image = f"{RUNTIME}\\Usercube-Agent.exe"
    assert fileops.held_by(fs.root, image) is not None, "the running worker maps the agent's image"
    iis.stop_was(fs.root)  # returns once WAS is Stopped: WAS ended the worker (event 5013 at its shutdownTimeLimit)
    assert fileops.held_by(fs.root, image) is None
    assert iis.ServerManager(fs.root).exiting_worker_since(POOL) is None
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    envelope = model.remove(fs, spec(make_zip(V1), app_pool=POOL))
    assert envelope.ok, envelope.error  # was RuntimeFilesInUse: no worker outlives a Stopped WAS
    assert not fs.resolve(image).exists()


def test_w3_a_worker_left_draining_by_an_earlier_pool_stop_ends_with_was_too(fs: WindowsFs) -> None:
    pool_running_v1(fs)
    with_was(fs)
    knobs(fs, pool_worker_exit_s=60)
    iis.ServerManager(fs.root).stop_pool(POOL)  # someone's stop: the pool is Stopped, its worker still drains
    image = f"{RUNTIME}\\Usercube-Agent.exe"
    assert fileops.held_by(fs.root, image) is not None
    iis.stop_was(fs.root)
    assert fileops.held_by(fs.root, image) is None


# -- W4: a service still starting when the budget was spent said the budget's note twice --------------------------


def test_w4_a_service_still_starting_with_the_budget_spent_says_the_note_once(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    scm.set_state(fs.root, SERVICE, "StartPending")  # a delayed automatic start under way
    left_stopped(
        fs, {"pool": None, "auto_start": None, "service": SERVICE, "start_type": "Automatic", "dependents": []}
    )
    envelope = model.set_(fs, spec(make_zip(V1), service_name=SERVICE, wait_budget_s=0))
    assert envelope.ok, envelope.error
    outcome = [c["after"] for c in envelope.changes if c["property"] == "agent_service"]
    assert len(outcome) == 1 and outcome[0].startswith("did not start again (it is still StartPending after 0 s (")
    assert outcome[0].count("the wait was cut short") == 1
    fixed = 'throw (New-Object System.TimeoutException "it is still $($found[0].Status) after $wait s")'
    unfixed = (
        'throw (New-Object System.TimeoutException "it is still $($found[0].Status) after $wait s$(Get-BudgetNote)")'
    )
    assert refused_unfixed("runtime_archive/set", fixed, unfixed)


# -- W6: the note said "80%" of its own, whatever share the provider uses ------------------------------------------


def test_w6_the_budgets_note_names_the_budget_and_command_timeout_the_input_gives(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    scm.set_state(fs.root, SERVICE, "StopPending")
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), service_name=SERVICE, wait_budget_s=0, command_timeout_s=45))
    assert not envelope.ok and envelope.error is not None and envelope.error["id"] == "AgentStopFailed"
    message = envelope.error["message"]
    assert "their budget of 0 s, of the connection's command_timeout_s of 45 s;" in message
    assert "%" not in message
    without = {k: v for k, v in spec(make_zip(V1)).items() if k != "command_timeout_s"}
    with pytest.raises(Exception, match="command_timeout_s"):
        model.set_(fs, without)  # as the script reads $Spec.command_timeout_s under Set-StrictMode
    fixed = "of the connection's command_timeout_s of $([int]$Spec.command_timeout_s) s;"
    for operation in ("runtime_archive/set", "runtime_archive/remove"):
        assert refused_unfixed(operation, fixed, "80% of the connection's command_timeout_s;")


# -- W1: Stop() waits 30 s per running dependent inside the call, and each start again up to 30 s, past the budget --


def test_w1_a_budget_that_cannot_hold_the_dependents_stop_and_start_stops_nothing(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    running_dependent(fs.root)
    upload(fs, make_zip(V2))
    # 1 running dependent: 30 s for its stop inside Stop(), 30 s for each of the 2 starts after: 90 s.
    envelope = model.set_(fs, spec(make_zip(V2), service_name=SERVICE, wait_budget_s=89, command_timeout_s=111))
    assert not envelope.ok and envelope.error is not None
    assert (envelope.error["id"], envelope.error["property"]) == ("AgentStopFailed", "service_name")
    message = envelope.error["message"]
    assert "stops its 1 running dependent services, waiting up to 30 s for each" in message
    # (review-archive7 Z2: and 30 s at least for its own stop: 120 s.)
    assert "120 s of this run's wait budget in all" in message
    assert "of this run's wait budget of 89 s (of the connection's command_timeout_s of 111 s)" in message
    assert "raise command_timeout_s in the connection settings" in message
    assert agent_events(fs) == [] and record(fs) is None, "nothing recorded or stopped"
    for name in (SERVICE, DEPENDENT):
        assert scm.get(fs.root, name).state == "Running"  # type: ignore[union-attr]
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").read_bytes() == b"MZ v1"
    # The budget the provider sends for the default command_timeout_s holds them: stopped, swapped, started again.
    envelope = model.set_(fs, spec(make_zip(V2), service_name=SERVICE))
    assert envelope.ok, envelope.error
    fixed = "                if ($left -lt $needed + $MinimumStopWaitSeconds) {"
    for operation in ("runtime_archive/set", "runtime_archive/remove"):
        assert refused_unfixed(operation, fixed, "                if ($false) {")


def test_w1_with_none_of_the_budget_left_the_note_says_it_once(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    running_dependent(fs.root)
    envelope = model.remove(fs, spec(make_zip(V1), service_name=SERVICE, wait_budget_s=0))
    assert not envelope.ok and envelope.error is not None and envelope.error["id"] == "AgentStopFailed"
    message = envelope.error["message"]
    # review-archive6 V5: refused before any wait began, so no "wait was cut short"; the setting is named once.
    assert (
        "but none is left of this run's wait budget of 0 s (of the connection's command_timeout_s of 600 s)" in message
    )
    assert "cut short" not in message
    assert message.count("raise command_timeout_s") == 1
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").exists(), "nothing removed"


# -- review-archive6 V1, V3, V7: the reserve held back, the service's own start reserved, WAS named first ---------


def test_v3_a_service_without_dependents_still_needs_30_s_for_its_start(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), service_name=SERVICE, wait_budget_s=29, command_timeout_s=37))
    assert not envelope.ok and envelope.error is not None
    assert (envelope.error["id"], envelope.error["property"]) == ("AgentStopFailed", "service_name")
    message = envelope.error["message"]
    # (review-archive7 Z2: 30 s for its start, 30 s at least for its own stop.)
    assert re.search(r"60 s of this run's wait budget in all, but only 2\d s are left", message)
    # review-archive7 Z4: a service without dependents is not said to have 0 of them.
    assert "starting it again may take up to 30 s (StartService)" in message
    assert "0 running dependent" not in message and "and them" not in message
    assert agent_events(fs) == [] and record(fs) is None, "nothing recorded or stopped"
    assert scm.get(fs.root, SERVICE).state == "Running"  # type: ignore[union-attr]
    count = "                $runningDependents = @($record.dependents).Count\n"
    for operation in ("runtime_archive/set", "runtime_archive/remove"):
        assert refused_unfixed(operation, count, count + "                if ($runningDependents -gt 0) {\n")


def test_v1_the_stop_wait_leaves_the_start_reserve(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    knobs(fs, services_not_stopping=[SERVICE])  # it accepts the stop and never finishes it
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), service_name=SERVICE, wait_budget_s=100, command_timeout_s=125))
    assert not envelope.ok and envelope.error is not None
    # 100 s left, 30 s held back for the start after: the stop waits 70 s, not the whole 100 s.
    # (A second may pass before the wait is taken: 69 or 70.)
    waited = re.search(r"did not stop within (\d+) s", envelope.error["message"])
    assert waited is not None and 60 <= int(waited.group(1)) <= 70, envelope.error["message"]
    fixed = "                $wait = Get-WaitBudgetBefore 120 $needed"
    for operation in ("runtime_archive/set", "runtime_archive/remove"):
        assert refused_unfixed(operation, fixed, "                $wait = Get-WaitBudget 120")


def test_v7_a_pool_that_cannot_start_because_was_is_stopped_says_start_was_first(
    fs: WindowsFs, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool_running_v1_with_was_stopped(fs)
    left_stopped(fs, {"pool": POOL, "auto_start": True, "service": None, "dependents": []})
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), app_pool=POOL))
    assert envelope.ok, envelope.error
    starts = [c for c in envelope.changes if c["property"] == "agent_pool"]
    assert starts and all(
        "start the Windows Process Activation Service (WAS) first, then start the pool (see the System event log "
        "(WAS)), or set" in c["after"]
        for c in starts
    )
    fixed = (
        "            if (Test-WasStopped) { $then = 'start the Windows Process Activation Service (WAS) first, then "
        "start the pool (see the System event log (WAS))' }"
    )
    assert refused_unfixed("runtime_archive/set", fixed, "")


# -- review-archive6 V2: a stopped WAS made the simulator's reboot and commits raise --------------------------------


def test_v2_a_reboot_after_net_stop_was_brings_was_back_and_it_starts_the_pools(fs: WindowsFs) -> None:
    from devhost import power

    pool_running_v1_with_was_stopped(fs)
    power.admin_restart(fs.root)  # raised WasNotRunning: the pools were started before WAS
    assert scm.get(fs.root, "WAS").state == "Running"  # type: ignore[union-attr]
    assert scm.get(fs.root, "W3SVC").state == "Running"  # type: ignore[union-attr]
    assert iis.ServerManager(fs.root).pool_state(POOL) == "Started", "WAS starts the autoStart pool at boot"


def test_v2_a_commit_while_was_is_stopped_succeeds_and_was_reads_it_when_it_starts(fs: WindowsFs) -> None:
    from devhost import power

    pool_running_v1_with_was_stopped(fs)
    manager = iis.ServerManager(fs.root)
    manager.add_pool("NewPool")
    manager.commit()  # raised WasNotRunning after the file was written
    assert "NewPool" in iis.ServerManager(fs.root).pool_names(), "the configuration file was written"
    power.admin_restart(fs.root)
    assert iis.ServerManager(fs.root).pool_state("NewPool") == "Started", "read when WAS started"

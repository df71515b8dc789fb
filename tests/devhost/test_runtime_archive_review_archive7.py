"""SIMULATOR: review-archive7 Z1-Z5 and review-archive6 V4-V6 (the RuntimeArchive 'archive8' round).

As in test_runtime_archive_review_a: each test shows the behaviour on the simulated host, that the model of the
fixed script has it, and that the script with the fix undone is refused by the model's script facts (so it could
never be blessed and run against this model). The budget arithmetic is the scripts': Stop() waits up to 30 s for each
running dependent (referencesource ServiceController.Stop), each StartService blocks up to 30 s
(learn.microsoft.com StartServiceCtrlDispatcherA remarks), and neither is capped by the run's budget."""

from __future__ import annotations

import re

from devhost import scm
from devhost.fs import WindowsFs
from devhost.ops import runtime_archive as model
from tests.devhost.test_runtime_archive_model import (
    DEPENDENT,
    RUNTIME,
    SERVICE,
    V1,
    V2,
    agent_events,
    install,
    interrupted_swap_to_v2,
    knobs,
    left_stopped,
    make_zip,
    running_dependent,
    running_service,
    spec,
    upload,
)
from tests.devhost.test_runtime_archive_review_a import record, refused_unfixed


def state_of(fs: WindowsFs, name: str) -> str:
    service = scm.get(fs.root, name)
    assert service is not None
    return service.state


# -- Z2: a stop wait cut to 0 s stopped everything only to time out and start it again --------------------------------

FIXED_Z2 = (
    "                $left = Get-WaitBudget ($needed + $MinimumStopWaitSeconds)\n"
    "                if ($left -lt $needed + $MinimumStopWaitSeconds) {\n"
)
UNFIXED_Z2 = "                $left = Get-WaitBudget $needed\n                if ($left -lt $needed) {\n"


def test_z2_a_budget_that_leaves_less_than_30_s_for_the_stop_itself_stops_nothing(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    upload(fs, make_zip(V2))
    # No dependents: 30 s for its start again, and 30 s at least for its own stop. 59 s held the start (the unfixed
    # check), and left the stop a wait of about 29 s or less.
    envelope = model.set_(fs, spec(make_zip(V2), service_name=SERVICE, wait_budget_s=59, command_timeout_s=74))
    assert not envelope.ok and envelope.error is not None
    assert (envelope.error["id"], envelope.error["property"]) == ("AgentStopFailed", "service_name")
    message = envelope.error["message"]
    assert "its own stop is given at least 30 s: 60 s of this run's wait budget in all" in message
    assert (
        "(of the connection's command_timeout_s of 74 s); raise command_timeout_s in the connection settings" in message
    )
    assert agent_events(fs) == [] and record(fs) is None, "nothing recorded or stopped"
    assert state_of(fs, SERVICE) == "Running"
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").read_bytes() == b"MZ v1"
    # With room for a stop of 30 s, it goes on: stopped, swapped, started again.
    envelope = model.set_(fs, spec(make_zip(V2), service_name=SERVICE, wait_budget_s=62, command_timeout_s=78))
    assert envelope.ok, envelope.error
    assert state_of(fs, SERVICE) == "Running"
    for operation in ("runtime_archive/set", "runtime_archive/remove"):
        assert refused_unfixed(operation, FIXED_Z2, UNFIXED_Z2)


# -- Z3: a stop wait the reserve cut below 120 s never said that raising command_timeout_s is the fix -----------------


def test_z3_a_stop_wait_cut_by_the_reserve_says_so_and_names_command_timeout_s(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    knobs(fs, services_not_stopping=[SERVICE])  # it accepts the stop and never finishes it
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), service_name=SERVICE, wait_budget_s=100, command_timeout_s=125))
    assert not envelope.ok and envelope.error is not None and envelope.error["id"] == "AgentStopFailed"
    message = envelope.error["message"]
    assert re.search(
        r"did not stop within (6\d|70) s \(.*\); see the System event log, stop it \(or end its process\), then run "
        r"again \(the wait was cut to (6\d|70) s to keep 30 s of this run's wait budget of 100 s \(of the connection's "
        r"command_timeout_s of 125 s\) for the stops and starts around it; raise command_timeout_s in the connection "
        r"settings, then run again\)",
        message,
    ), message
    assert message.count("raise command_timeout_s") == 1
    fixed = "                    if ($wait -lt 120 -and $needed -gt 0 -and -not $note) {"
    for operation in ("runtime_archive/set", "runtime_archive/remove"):
        assert refused_unfixed(operation, fixed, "                    if ($false) {")


def test_z3_a_full_stop_wait_adds_no_note(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    knobs(fs, services_not_stopping=[SERVICE])
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), service_name=SERVICE))
    assert not envelope.ok and envelope.error is not None
    assert "did not stop within 120 s" in envelope.error["message"]
    assert "cut" not in envelope.error["message"] and "command_timeout_s" not in envelope.error["message"]


# -- Z1: Start-Agent's capped waits used up the 30 s kept for each StartService after them ---------------------------

FIXED_Z1 = "            $wait = Get-WaitBudgetBefore 60 $reserve\n"


def test_z1_the_services_start_wait_keeps_30_s_for_each_dependent_still_to_start(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    running_dependent(fs.root)
    scm.set_state(fs.root, SERVICE, "StartPending")  # a delayed automatic start under way, done within any wait
    left_stopped(
        fs,
        {"pool": None, "auto_start": None, "service": SERVICE, "start_type": "Automatic", "dependents": [DEPENDENT]},
    )
    # About 29 s of the budget left: all of it is kept for the dependent's StartService, so the wait gets 0 s.
    envelope = model.set_(fs, spec(make_zip(V1), service_name=SERVICE, wait_budget_s=30))
    assert envelope.ok, envelope.error
    outcomes = {c["before"]: c["after"] for c in envelope.changes if c["property"] == "agent_service"}
    assert outcomes[f"{SERVICE}: stopped by an interrupted run"].startswith(
        "did not start again (it is still StartPending after 0 s"
    ), outcomes
    assert outcomes[f"{DEPENDENT}: stopped by an interrupted run"].startswith("not started: it depends on service")
    assert record(fs) is not None, "kept: the next run starts them"
    # No dependent to start after it, and a budget that holds the wait past the 30 s kept for its own StartService
    # (review-archive9 R2: 60 s left, 30 s kept): the wait gets 30 s, and the start ends.
    left_stopped(
        fs, {"pool": None, "auto_start": None, "service": SERVICE, "start_type": "Automatic", "dependents": []}
    )
    envelope = model.set_(fs, spec(make_zip(V1), service_name=SERVICE, wait_budget_s=61))
    assert envelope.ok, envelope.error
    assert [c["after"] for c in envelope.changes if c["property"] == "agent_service"] == ["running (started since)"]
    assert refused_unfixed("runtime_archive/set", FIXED_Z1, "            $wait = Get-WaitBudget 60\n")
    # The pool's wait and the WaitForStatus(Running) after StartService keep the same share (script facts).
    pool = "Wait-PoolState $pool 'Started' (Get-WaitBudgetBefore 10 (30 * $servicesLeft))"
    assert refused_unfixed("runtime_archive/set", pool, "Wait-PoolState $pool 'Started' (Get-WaitBudget 10)")
    running = "            $wait = Get-WaitBudgetBefore 60 $LaterSeconds\n"
    assert refused_unfixed("runtime_archive/set", running, "            $wait = Get-WaitBudget 60\n")


# -- V4: remove reserved (and named) a start it never makes ----------------------------------------------------------


def test_v4_remove_keeps_no_start_share_and_names_no_start(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    running_dependent(fs.root)
    # 1 running dependent: 30 s for its stop inside Stop(), 30 s at least for the service's own stop: 60 s.
    envelope = model.remove(fs, spec(make_zip(V1), service_name=SERVICE, wait_budget_s=50, command_timeout_s=63))
    assert not envelope.ok and envelope.error is not None and envelope.error["id"] == "AgentStopFailed"
    message = envelope.error["message"]
    assert "60 s of this run's wait budget in all" in message
    assert "start" not in message.replace("its own stop", ""), message
    assert state_of(fs, SERVICE) == "Running"
    # 65 s holds it (set, which starts both again, would need 30 + 60 + 30 = 120 s): removed.
    envelope = model.remove(fs, spec(make_zip(V1), service_name=SERVICE, wait_budget_s=65, command_timeout_s=82))
    assert envelope.ok, envelope.error
    assert not fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").exists()
    assert state_of(fs, SERVICE) == "Stopped"
    assert refused_unfixed(
        "runtime_archive/remove",
        "{ $stopped = Stop-Agent $Spec $folder $false }",
        "{ $stopped = Stop-Agent $Spec $folder $true }",
    )
    assert refused_unfixed(
        "runtime_archive/remove",
        "Restore-InterruptedSwap $Spec $runtime $folder $false }",
        "Restore-InterruptedSwap $Spec $runtime $folder $true }",
    )


def test_v4_set_still_keeps_the_start_share(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    running_dependent(fs.root)
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), service_name=SERVICE, wait_budget_s=65, command_timeout_s=82))
    assert not envelope.ok and envelope.error is not None and envelope.error["id"] == "AgentStopFailed"
    assert (
        "starting it and the 1 services that depend on it again may take up to 30 s each" in envelope.error["message"]
    )
    assert "120 s of this run's wait budget in all" in envelope.error["message"]


# -- V6: the dependents an earlier record keeps are started too, and were not counted --------------------------------

OTHER = "IdentityManagerAgentContosoReporter"


def test_v6_the_reserve_counts_the_dependents_the_earlier_record_keeps(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    running_dependent(fs.root)
    # A swap broke off after it stopped the service with OTHER (a dependent since deleted, or still stopped); a
    # reboot started the service and DEPENDENT on the mix. The undo stops them again; Start-Agent then starts the
    # service, OTHER and DEPENDENT: 30 s for DEPENDENT's stop, 3 x 30 s for the starts, 30 s for the stop itself.
    interrupted_swap_to_v2(fs)
    left_stopped(
        fs, {"pool": None, "auto_start": None, "service": SERVICE, "start_type": "Automatic", "dependents": [OTHER]}
    )
    envelope = model.set_(fs, spec(make_zip(V1), service_name=SERVICE, wait_budget_s=140, command_timeout_s=175))
    assert not envelope.ok and envelope.error is not None and envelope.error["id"] == "AgentStopFailed"
    message = envelope.error["message"]
    assert "starting it and the 2 services that depend on it again may take up to 30 s each" in message
    assert "150 s of this run's wait budget in all" in message
    assert state_of(fs, SERVICE) == "Running" and state_of(fs, DEPENDENT) == "Running", "nothing stopped"
    fixed = "                    $toStart = @((Get-MergedAgentRecord $Folder $record).dependents).Count\n"
    assert refused_unfixed("runtime_archive/set", fixed, "                    $toStart = $runningDependents\n")

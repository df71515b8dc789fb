"""SIMULATOR: review-archive9 R1-R3 (the RuntimeArchive 'archive9' round).

As in test_runtime_archive_review_archive7: each test shows the behaviour on the simulated host, that the model of
the fixed script has it, and that the script with the fix undone is refused by the model's script facts (so it could
never be blessed and run against this model). StartService blocks up to 30 s, capped by nothing (learn.microsoft.com
StartServiceCtrlDispatcherA remarks); ServiceController.Stop() waits up to 30 s for each running dependent
(referencesource ServiceController.Stop)."""

from __future__ import annotations

import re

from devhost import scm
from devhost.fs import WindowsFs
from devhost.ops import runtime_archive as model
from devhost.ops.envelope import Envelope
from tests.devhost.test_runtime_archive_model import (
    DEPENDENT,
    SERVICE,
    V1,
    V2,
    install,
    knobs,
    left_stopped,
    make_zip,
    running_dependent,
    running_service,
    spec,
    upload,
)
from tests.devhost.test_runtime_archive_review_a import record, refused_unfixed

RECORD = {"pool": None, "auto_start": None, "service": SERVICE, "start_type": "Automatic", "dependents": []}


def service_outcome(envelope: Envelope) -> str:
    outcomes = [c["after"] for c in envelope.changes if c["property"] == "agent_service"]
    assert len(outcomes) == 1, outcomes
    return str(outcomes[0])


# -- R1: a start wait cut to 0 s by the reserve said nothing of the budget nor of command_timeout_s ------------------


def test_r1_a_start_wait_the_reserve_cuts_says_the_budget_ran_out_and_names_command_timeout_s(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    running_dependent(fs.root)
    scm.set_state(fs.root, SERVICE, "StartPending")  # a delayed automatic start under way, done within any wait
    left_stopped(fs, {**RECORD, "dependents": [DEPENDENT]})
    # About 29 s left, all held back (30 s for its own StartService, 30 s for the dependent's): the wait gets 0 s, and
    # the budget is not spent (Get-BudgetNote says nothing).
    envelope = model.set_(fs, spec(make_zip(V1), service_name=SERVICE, wait_budget_s=30, command_timeout_s=38))
    assert envelope.ok, envelope.error
    outcome = next(c["after"] for c in envelope.changes if c["before"] == f"{SERVICE}: stopped by an interrupted run")
    assert outcome.startswith(
        "did not start again (it is still StartPending after 0 s (the wait was cut to 0 s: this run's wait budget of "
        "30 s (of the connection's command_timeout_s of 38 s) ran out for it, as 60 s are held back for the "
        "StartService calls still to come (up to 30 s each); raise command_timeout_s in the connection settings to "
        "give it more time, then run again)); see the System event log"
    ), outcome
    assert outcome.count("command_timeout_s") == 2
    assert record(fs) is not None, "kept: the next run starts it"
    fixed = "        if (-not $note) { $note = $cutNote }\n"
    assert refused_unfixed("runtime_archive/set", fixed, "")


def test_r1_a_start_wait_the_reserve_leaves_whole_adds_no_note(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    scm.set_state(fs.root, SERVICE, "StartPending")
    knobs(fs, services_failing_start=[SERVICE])  # that start ends Stopped: started here, within the budget
    left_stopped(fs, RECORD)
    envelope = model.set_(fs, spec(make_zip(V1), service_name=SERVICE, wait_budget_s=480))
    assert envelope.ok, envelope.error
    assert service_outcome(envelope) == "Started"
    assert record(fs) is None


# -- R2: the wait for a start under way kept nothing for the Start() after it when that start ends Stopped -----------


def test_r2_the_wait_for_a_start_under_way_keeps_30_s_for_its_own_start(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    scm.set_state(fs.root, SERVICE, "StartPending")
    left_stopped(fs, RECORD)
    # About 29 s left and nothing after it: the unfixed wait took all 29 s, and a start that then ended Stopped was
    # started with StartService's up to 30 s on top, past the budget. Fixed, the 29 s are held back for it.
    envelope = model.set_(fs, spec(make_zip(V1), service_name=SERVICE, wait_budget_s=30))
    assert envelope.ok, envelope.error
    outcome = service_outcome(envelope)
    assert re.match(r"did not start again \(it is still StartPending after 0 s \(the wait was cut to 0 s: ", outcome)
    assert "as 30 s are held back for the StartService calls still to come" in outcome, outcome
    assert record(fs) is not None
    # 60 s left: 30 s for the wait, 30 s for the StartService after a start that failed: started, within the budget.
    knobs(fs, services_failing_start=[SERVICE])
    scm.set_state(fs.root, SERVICE, "StartPending")
    envelope = model.set_(fs, spec(make_zip(V1), service_name=SERVICE, wait_budget_s=61))
    assert envelope.ok, envelope.error
    assert service_outcome(envelope) == "Started"
    assert record(fs) is None
    fixed = "            $reserve = $LaterSeconds + 30\n"
    assert refused_unfixed("runtime_archive/set", fixed, "            $reserve = $LaterSeconds\n")


# -- R3: a Stop() that failed itself was reported as a stop wait that timed out -----------------------------------


def test_r3_a_stop_that_fails_itself_says_so_without_the_cut_note(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    running_dependent(fs.root)
    # The dependent accepts its stop and never finishes it: Stop() throws after its own 30 s wait for it, before
    # the wait for the service's stop (cut to 200 - 1 - 90 = 109 s by the 90 s reserve) begins.
    knobs(fs, services_not_stopping=[DEPENDENT])
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), service_name=SERVICE, wait_budget_s=200, command_timeout_s=250))
    assert not envelope.ok and envelope.error is not None
    assert (envelope.error["id"], envelope.error["property"]) == ("AgentStopFailed", "service_name")
    message = envelope.error["message"]
    assert re.search(
        r"service 'IdentityManagerAgentContoso' could not be stopped: ServiceController\.Stop\(\) failed \(Time out "
        r"has expired and the operation has not been completed\.\), before the wait of 10\d s for its stop began; "
        r"see the System event log, stop it \(or end its process\), then run again(?! \()",
        message,
    ), message
    assert "did not stop within" not in message
    # review-round2 V3: Stop()'s own 30 s wait for the dependent does not depend on the budget, and the wait the
    # reserve cut never began: no cut note, no advice to raise command_timeout_s (it could not help).
    assert "the wait was cut" not in message and "command_timeout_s" not in message, message
    fixed = "                    $stopReturned = $true\n"
    for operation in ("runtime_archive/set", "runtime_archive/remove"):
        assert refused_unfixed(operation, fixed, "")
    fixed_v3 = "                        $note = ''\n"
    for operation in ("runtime_archive/set", "runtime_archive/remove"):
        assert refused_unfixed(operation, fixed_v3, "")


def test_r3_a_stop_wait_that_times_out_still_says_did_not_stop_within(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    knobs(fs, services_not_stopping=[SERVICE])
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), service_name=SERVICE, wait_budget_s=100, command_timeout_s=125))
    assert not envelope.ok and envelope.error is not None
    message = envelope.error["message"]
    assert re.search(r"did not stop within (6\d|70) s \(Time out has expired", message), message
    assert "could not be stopped" not in message and "raise command_timeout_s" in message

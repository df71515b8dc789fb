"""WindowsService through the real Pulumi CLI against the host under test (simulated unless configured)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import pulumi
import pytest

from providers.scripting.runner import ScriptRef, run_script
from providers.transport.connection import HostConnection
from providers.windows_service import WindowsService
from providers.windows_service.model import WindowsServiceModel
from tests.support.engine import EngineStack
from tests.support.hosts import Target

pytestmark = pytest.mark.engine

Engine = Callable[[Callable[[], None]], EngineStack]
NO_PASSWORD_SECRET = "Sup3r-Svc-"


def new_service(target: Target) -> dict[str, Any]:
    """A unique service name and an executable for it on the host ('MZ': a Windows program to the simulator)."""
    name = f"UcIacTest{uuid.uuid4().hex[:8]}"
    binary = f"C:\\UsercubeIacTests\\{name}\\Runtime\\Usercube-Agent.exe"
    if target.simulated:
        program = target.windows_file(binary)
        program.parent.mkdir(parents=True, exist_ok=True)
        program.write_bytes(b"MZ simulated agent")
    else:
        payload = {"path": binary, "content": "MZ", "encoding": "utf-8", "keep_backup": False, "readers": None}
        run_script(connection(target), ScriptRef("providers.settings_file", "set"), payload, resource="test")
    # A real host cannot start a stand-in executable: there the tests keep the service stopped.
    return {"name": name, "binary_path": binary, "state": "Running" if target.simulated else "Stopped"}


def connection(target: Target) -> HostConnection:
    return HostConnection.model_validate(target.connection)


def service_program(target: Target, desired: dict[str, Any]) -> Callable[[], None]:
    """A program with one WindowsService whose inputs are read from ``desired`` at each run."""

    def program() -> None:
        conn = {**target.connection, "password": pulumi.Output.secret(target.connection["password"])}
        service = WindowsService("agent-service", connection=conn, **desired)
        pulumi.export("image_path", service.image_path)
        pulumi.export("service_sid", service.service_sid)
        pulumi.export("account_sid", service.account_sid)

    return program


def changed_properties(diff: str) -> list[str]:
    """The resource properties `preview --diff` marks as changed, added or removed (not nested keys)."""
    keys = set(WindowsServiceModel.desired_keys())
    return sorted({key for key in re.findall(r"[~+-] (\w+)\s*:", diff) if key in keys})


def host_service(target: Target, name: str) -> dict[str, Any]:
    """What the get script reports for the service (as refresh sees it)."""
    spec = WindowsServiceModel.model_validate(
        {"connection": target.connection, "name": name, "binary_path": "C:\\x\\x.exe", "state": "Stopped"}
    )
    result = run_script(
        connection(target), ScriptRef("providers.windows_service", "get"), spec.script_input(), resource="t"
    )
    return result.state


def test_create_no_op_update_each_property_and_destroy(target: Target, engine: Engine) -> None:
    desired = new_service(target)
    stack = engine(service_program(target, desired))
    first = stack.up()
    assert first.ok, first.output
    assert first.summary.get("create") == 2
    on_host = host_service(target, desired["name"])
    assert on_host["image_path"] == f'"{desired["binary_path"]}" --service'
    assert on_host["start_type"] == "Automatic" and on_host["account"] == "LocalSystem"
    assert on_host["state"] == desired["state"]
    assert on_host["failure_actions"] == {
        "actions": [
            {"action": "Restart", "delay_seconds": 60},
            {"action": "Restart", "delay_seconds": 60},
            {"action": "None", "delay_seconds": 0},
        ],
        "reset_period_seconds": 86400,
    }
    outputs = stack.outputs()
    assert outputs["account_sid"] == "S-1-5-18" and outputs["service_sid"].startswith("S-1-5-80-")

    mark = target.journal_mark() if target.simulated else 0
    again = stack.up()
    assert again.ok and again.summary == {"same": 2}, again.output
    if target.simulated:
        assert target.operations_since(mark) == [], "a no-op up must not talk to the host"

    updates: list[tuple[str, Any]] = [
        ("display_name", "Identity Manager Agent (IaC test)"),
        ("arguments", ["--service", "--urls", "http://localhost:5000 path"]),
        ("start_type", "AutomaticDelayedStart"),
        ("description", "Netwrix Identity Manager agent"),
        ("failure_actions", {"actions": [{"action": "Restart", "delay_seconds": 30}], "reset_period_seconds": 3600}),
        ("account", "NetworkService"),
    ]
    for prop, value in updates:
        desired[prop] = value
        preview = stack.preview(diff=True)
        assert preview.ok, preview.output
        assert changed_properties(preview.stdout) == [prop], preview.stdout
        applied = stack.up()
        assert applied.ok, applied.output
        assert applied.summary.get("update") == 1, (prop, applied.summary)
    on_host = host_service(target, desired["name"])
    assert on_host["display_name"] == "Identity Manager Agent (IaC test)"
    assert on_host["image_path"].endswith('--service --urls "http://localhost:5000 path"')
    assert on_host["start_type"] == "AutomaticDelayedStart" and on_host["account"] == "NetworkService"
    assert on_host["failure_actions"]["reset_period_seconds"] == 3600
    assert stack.outputs()["account_sid"] == "S-1-5-20"
    assert stack.refresh(expect_no_changes=True).ok, "no drift after the updates"

    destroyed = stack.destroy()
    assert destroyed.ok, destroyed.output
    assert host_service(target, desired["name"])["ensure"] == "absent"


def test_out_of_band_changes_are_found_and_repaired(simulated: Target, engine: Engine) -> None:
    from devhost import scm

    assert simulated.state_dir is not None
    desired = new_service(simulated)
    stack = engine(service_program(simulated, desired))
    assert stack.up().ok
    # An administrator switches the service to Manual and stops it in services.msc.
    scm.admin_edit_service(simulated.state_dir, desired["name"], start_mode="Manual", description="by hand")
    scm.admin_stop_service(simulated.state_dir, desired["name"])
    drift = stack.refresh(expect_no_changes=True)
    assert not drift.ok and "agent-service" in drift.output
    repaired = stack.up()
    assert repaired.ok and repaired.summary.get("update") == 1, repaired.output
    on_host = host_service(simulated, desired["name"])
    assert (on_host["start_type"], on_host["state"], on_host["description"]) == ("Automatic", "Running", "")
    assert stack.refresh(expect_no_changes=True).ok

    # Deleted by hand: refresh drops it, up creates it again.
    scm.admin_delete_service(simulated.state_dir, desired["name"])
    assert not stack.refresh(expect_no_changes=True).ok
    assert stack.up().ok
    assert host_service(simulated, desired["name"])["state"] == "Running"

    # Destroy stops the running service before deleting it, so it is gone, not 'marked for deletion'.
    assert stack.destroy().ok
    assert scm.get(simulated.state_dir, desired["name"]) is None


def test_password_is_secret_rotates_in_one_update_and_never_drifts(simulated: Target, engine: Engine) -> None:
    from devhost import accounts

    assert simulated.state_dir is not None
    account = f"CONTOSO\\svc-{uuid.uuid4().hex[:6]}"
    secret = f"{NO_PASSWORD_SECRET}{uuid.uuid4().hex}"
    accounts.add_account(simulated.state_dir, account, "user", secret)
    desired = {**new_service(simulated), "account": account, "password": secret}
    mark = simulated.journal_mark()
    stack = engine(service_program(simulated, desired))
    runs = [stack.up()]
    assert runs[0].ok, runs[0].output
    assert host_service(simulated, desired["name"])["state"] == "Running", "the service logged on with the password"
    assert stack.outputs()["account_sid"] == accounts.resolve(simulated.state_dir, account).sid

    # The domain rotates the password; the stack follows with exactly one update.
    rotated = secret + "-rotated"
    accounts.add_account(simulated.state_dir, account, "user", rotated)
    desired["password"] = rotated
    preview = stack.preview(diff=True)
    runs.append(preview)
    # Pulumi cannot show how a secret changed: the update is there, with the value masked.
    assert preview.summary == {"same": 1, "update": 1} and "password       : [secret]" in preview.stdout
    ops_mark = simulated.journal_mark()
    runs.append(stack.up())
    assert runs[-1].ok and runs[-1].summary.get("update") == 1, runs[-1].output
    assert simulated.operations_since(ops_mark) == ["windows_service/set"]
    assert host_service(simulated, desired["name"])["state"] == "Running", "restarted with the new password"
    runs.append(stack.up())
    assert runs[-1].summary == {"same": 2}, "a rotation is one update, not a permanent diff"
    runs.append(stack.refresh(expect_no_changes=True))
    assert runs[-1].ok, "Windows cannot give the password back: refresh must not report it"

    for run in runs:
        assert secret not in run.output and rotated not in run.output
    for text in (stack.export(), stack.raw_state()):
        assert secret not in text and rotated not in text
    for entry in simulated.journal_since(mark):
        if entry["kind"] == "command":
            assert secret not in entry["command_line"] and rotated not in entry["command_line"]
    requests = simulated.requests_since(mark)
    assert any(rotated in r["input"] for r in requests), "the password reaches the host only on stdin"
    assert stack.destroy().ok


def test_windows_refusals_name_the_property(simulated: Target, engine: Engine) -> None:
    from devhost import accounts, scm

    assert simulated.state_dir is not None
    taken = new_service(simulated)
    # Review A3: installed by hand with exactly the values this resource's Create uses (the manual's `sc.exe create`),
    # so only the missing ownership marker tells it from what an interrupted create of ours leaves.
    scm.create(
        simulated.state_dir,
        name=taken["name"],
        display_name=taken["name"],
        image_path=f'"{taken["binary_path"]}" --service',
        start_mode="Auto",
        start_name="LocalSystem",
        password=None,
    )
    user = f"CONTOSO\\svc-{uuid.uuid4().hex[:6]}"
    accounts.add_account(simulated.state_dir, user, "user", "the-real-password")
    missing_exe = {**new_service(simulated), "binary_path": "C:\\UsercubeIacTests\\nowhere\\Usercube-Agent.exe"}
    cases: list[tuple[dict[str, Any], str, str]] = [
        (taken, "[ServiceExists]", "already exists (1073) and this resource did not create it"),
        (
            {**new_service(simulated), "account": "CONTOSO\\nobody", "password": "x"},
            "[InvalidServiceAccount]",
            "(1057)",
        ),
        (missing_exe, "[ServiceBinaryNotFound]", "The system cannot find the file specified. (2)"),
        ({**new_service(simulated), "account": user, "password": "wrong"}, "[ServiceLogonFailed]", "(1069)"),
    ]
    for desired, error_id, message in cases:
        stack = engine(service_program(simulated, desired))
        run = stack.up()
        assert not run.ok and error_id in run.output and message in run.output, run.output
        if desired is not taken:
            assert scm.get(simulated.state_dir, desired["name"]) is None, "a failed create leaves nothing behind"
    assert scm.get(simulated.state_dir, taken["name"]) is not None, "a service we did not create is never touched"
    scm.admin_delete_service(simulated.state_dir, taken["name"])

    # A gMSA needs no password at all.
    gmsa = f"CONTOSO\\gmsa-{uuid.uuid4().hex[:6]}$"
    accounts.add_account(simulated.state_dir, gmsa, "gmsa")
    stack = engine(service_program(simulated, {**new_service(simulated), "account": gmsa}))
    assert stack.up().ok
    assert stack.destroy().ok


EXE = "C:\\identitymanagerContoso\\Runtime\\Usercube-Agent.exe"
BAD_INPUTS: list[tuple[str, dict[str, Any], str, str]] = [
    ("slash in name", {"name": "Usercube/Agent"}, "name", "not allowed in a service name"),
    (
        "reset period without actions",
        {"failure_actions": {"actions": [], "reset_period_seconds": 86400}},
        "failure_actions",
        "has no effect without actions",
    ),
    ("backslash in name", {"name": "Usercube\\Agent"}, "name", "not allowed in a service name"),
    ("relative binary", {"binary_path": "Runtime\\Usercube-Agent.exe"}, "binary_path", "not an absolute"),
    ("forward slashes", {"binary_path": "C:/identitymanager/Usercube-Agent.exe"}, "binary_path", "backslashes"),
    ("not an exe", {"binary_path": "C:\\identitymanager\\Runtime"}, "binary_path", "full path of the .exe"),
    ("password for LocalSystem", {"password": "x"}, "password", "LocalSystem has no password"),
    ("gMSA with password", {"account": "CONTOSO\\gmsa-uc$", "password": "x"}, "password", "group managed"),
    ("user without password", {"account": "CONTOSO\\svc-uc"}, "password", "needs its password"),
    ("unknown start type", {"start_type": "Sometimes"}, "start_type", "AutomaticDelayedStart"),
    (
        "negative delay",
        {"failure_actions": {"actions": [{"action": "Restart", "delay_seconds": -5}], "reset_period_seconds": 60}},
        "failure_actions",
        "greater than or equal to 0",
    ),
    ("UPN account", {"account": "svc@contoso.com", "password": "x"}, "account", "DOMAIN\\user"),
    ("disabled but running", {"start_type": "Disabled"}, "state", "cannot be Running"),
]


@pytest.mark.parametrize(("case", "change", "prop", "fragment"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_refused_before_any_host_call(
    simulated: Target, engine: Engine, case: str, change: dict[str, Any], prop: str, fragment: str
) -> None:
    desired = {"name": "UsercubeAgentContoso", "binary_path": EXE, **change}
    mark = simulated.journal_mark()
    run = engine(service_program(simulated, desired)).preview()
    assert not run.ok, case
    assert prop in run.output and fragment in run.output, run.output
    assert simulated.journal_since(mark) == []


def create_as_set_would(simulated: Target, desired: dict[str, Any], stack: EngineStack) -> dict[str, Any]:
    """What set.ps1 does of `desired` up to its Win32_Service.Create (Automatic, LocalSystem), and no more: the record
    of the create under way for the stack's resource, then the service, unmarked: what a kill between Create and the
    marker leaves on the host. Returns the script input it was made from."""
    from devhost import scm
    from devhost.fs import WindowsFs
    from devhost.ops import windows_service

    assert simulated.state_dir is not None
    created = WindowsServiceModel.model_validate({"connection": simulated.connection, **desired}).script_input()
    # providers/framework/ownership.owner_id of the program's resource (a file backend's organization).
    owner = f"organization/usercube-test/{stack.name}/windows:WindowsService::agent-service"
    windows_service.write_creating_record(WindowsFs(simulated.state_dir), created["name"], owner)
    scm.create(
        simulated.state_dir,
        name=created["name"],
        display_name=created["display_name"],
        image_path=created["image_path"],
        start_mode="Auto",
        start_name="LocalSystem",
        password=None,
    )
    return created


def test_a_create_adopts_the_service_an_interrupted_create_left(simulated: Target, engine: Engine) -> None:
    """Issue 11 §3: the CLI killed right after Win32_Service.Create (the service is on the host, not in the
    state): the next `up` creates the resource again, adopts that service and finishes the job."""
    from devhost import scm

    assert simulated.state_dir is not None
    desired = new_service(simulated)
    stack = engine(service_program(simulated, desired))
    created = create_as_set_would(simulated, desired, stack)
    assert created["start_type"] == "Automatic" and created["account"] == "LocalSystem"
    run = stack.up()
    assert run.ok, run.output
    service = scm.get(simulated.state_dir, desired["name"])
    assert service is not None and service.state == "Running"
    assert service.key_values.get("UsercubeIacOwner", "").endswith("::agent-service"), "marked as this resource's"
    assert stack.preview(expect_no_changes=True).ok
    assert stack.destroy().ok
    assert scm.get(simulated.state_dir, desired["name"]) is None


def test_a_create_refuses_a_service_marked_for_deletion_and_leaves_it_alone(simulated: Target, engine: Engine) -> None:
    """Review A1: a service deleted while services.msc holds a handle to it stays listed, exactly as this create
    would make it, until the handle closes. The `up` stops with ServiceMarkedForDelete naming the fix (its
    roll-back does not try to delete it again, which would only fail with 1072), and succeeds once it is gone."""
    from devhost import scm

    assert simulated.state_dir is not None
    desired = new_service(simulated)
    stack = engine(service_program(simulated, desired))
    create_as_set_would(simulated, desired, stack)
    scm.admin_open_handle(simulated.state_dir, desired["name"])
    assert scm.delete(simulated.state_dir, desired["name"]) is False
    refused = stack.up()
    assert not refused.ok
    assert "ServiceMarkedForDelete" in refused.output and "close services.msc" in refused.output, refused.output
    assert "Win32_Service.Delete" not in refused.output, "no roll-back delete of a service already marked"
    scm.admin_close_handles(simulated.state_dir, desired["name"])
    assert scm.get(simulated.state_dir, desired["name"]) is None
    assert stack.up().ok
    assert stack.destroy().ok


def test_a_retried_destroy_of_a_service_already_marked_for_deletion_succeeds(simulated: Target, engine: Engine) -> None:
    """Review S4: a destroy whose Delete only marked the service (services.msc holds it open) and whose reply was
    lost leaves the resource in the state. The retried destroy must not fail on Delete's 16 (1072, already marked):
    the service is on its way out and goes when the handle closes."""
    from devhost import scm

    assert simulated.state_dir is not None
    desired = new_service(simulated)
    stack = engine(service_program(simulated, desired))
    assert stack.up().ok
    scm.admin_open_handle(simulated.state_dir, desired["name"])
    scm.admin_stop_service(simulated.state_dir, desired["name"])
    assert scm.delete(simulated.state_dir, desired["name"]) is False  # the first destroy's Delete, reply lost
    marked = host_service(simulated, desired["name"])
    assert marked["marked_for_delete"] is True and marked["start_type"] == "Disabled", "what refresh would see"
    retried = stack.destroy()
    assert retried.ok, retried.output
    assert "Win32_Service.Delete" not in retried.output
    scm.admin_close_handles(simulated.state_dir, desired["name"])
    assert scm.get(simulated.state_dir, desired["name"]) is None


def test_a_create_race_with_a_hand_install_is_refused_and_never_adopted_later(
    simulated: Target, engine: Engine
) -> None:
    """Review service6 S1: the service is installed by hand (the manual's `sc.exe create`, with this create's own
    values) after set's read under the owners lock found none and before its Win32_Service.Create, which answers 23
    (1073). The `up` fails with ServiceExists; Create answered, so no record of a create under way is left, and the
    next `up` refuses that service again (it carries no ownership marker) instead of adopting it; it stays as
    installed."""
    from devhost import scm

    assert simulated.state_dir is not None
    desired = new_service(simulated)
    stack = engine(service_program(simulated, desired))
    simulated.set_knobs(service_create_races=[{"on": desired["name"]}])
    raced = stack.up()
    assert not raced.ok
    assert "ServiceExists" in raced.output and "Win32_Service.Create returned 23" in raced.output, raced.output
    again = stack.up()
    assert not again.ok, again.output
    assert "ServiceExists" in again.output and "carries no ownership marker" in again.output, again.output
    service = scm.get(simulated.state_dir, desired["name"])
    assert service is not None and service.key_values == {} and service.state == "Stopped", "left as installed"
    scm.admin_delete_service(simulated.state_dir, desired["name"])  # the fix the message names
    assert stack.up().ok
    assert stack.destroy().ok


def test_an_up_that_races_its_own_earlier_run_for_the_owners_lock_takes_what_that_run_created(
    simulated: Target, engine: Engine
) -> None:
    """Review service6 S6-2: `up` run again while set.ps1 of the first run (its client killed) still holds the owners
    lock on the host and creates the service. The second run's set.ps1 waits for the lock, then reads the service
    under it: it finds the service carrying this resource's own marker and takes it, where a reading from before the
    lock (absent) would have gone on to Create, met 23 and refused the resource's own service."""
    from devhost import scm

    assert simulated.state_dir is not None
    desired = new_service(simulated)
    stack = engine(service_program(simulated, desired))
    simulated.set_knobs(service_set_lock_waits=[{"on": desired["name"]}])
    up = stack.up()
    assert up.ok, up.output
    service = scm.get(simulated.state_dir, desired["name"])
    assert service is not None and service.state == "Running"
    assert list(service.key_values) == ["UsercubeIacOwner"], "the resource's own marker, written by the first run"
    assert stack.destroy().ok
    assert scm.get(simulated.state_dir, desired["name"]) is None, "its own: destroy deletes it"

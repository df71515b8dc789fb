"""SIMULATOR: the service control manager and feature models follow Windows' rules (no WinRM, no Pulumi)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devhost import accounts, features, lsa, ps51, scm
from devhost.fs import WindowsFs
from devhost.ops import windows_feature, windows_service
from providers.scripting.runner import ScriptRef, render_script
from providers.windows_service.model import WindowsServiceModel, quote_argument, split_image_path

EXE = "C:\\identitymanagerContoso\\Runtime\\Usercube-Agent.exe"


def place_program(state: Path, path: str = EXE, content: bytes = b"MZ agent") -> None:
    target = WindowsFs(state).resolve(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)


def new(state: Path, name: str = "UsercubeAgent", **kwargs: object) -> scm.Service:
    values: dict[str, object] = {
        "name": name,
        "display_name": name,
        "image_path": f'"{EXE}" --service',
        "start_mode": "Auto",
        "start_name": "LocalSystem",
        "password": None,
        **kwargs,
    }
    return scm.create(state, **values)  # type: ignore[arg-type]


def code_of(call: object) -> int:
    assert callable(call)
    with pytest.raises(scm.ScmError) as raised:
        call()
    return raised.value.code


def test_create_rules(tmp_path: Path) -> None:
    new(tmp_path)
    assert code_of(lambda: new(tmp_path)) == 1073
    assert code_of(lambda: new(tmp_path, "usercubeagent")) == 1073, "service names are case-insensitive"
    assert code_of(lambda: new(tmp_path, "Other", display_name="UsercubeAgent")) == 1078
    assert code_of(lambda: new(tmp_path, "Bad/Name")) == 123
    assert code_of(lambda: new(tmp_path, "Other", start_name="CONTOSO\\nobody", password="x")) == 1057
    accounts.add_account(tmp_path, "CONTOSO\\Agents", "group")
    assert code_of(lambda: new(tmp_path, "Other", start_name="CONTOSO\\Agents")) == 1057


def test_start_rules(tmp_path: Path) -> None:
    accounts.add_account(tmp_path, "CONTOSO\\svc-uc", "user", "right")
    accounts.add_account(tmp_path, "CONTOSO\\gmsa-uc$", "gmsa")
    new(tmp_path, "NoProgram")
    assert code_of(lambda: scm.start(tmp_path, "NoProgram")) == 2
    place_program(tmp_path, content=b"not a program")
    assert code_of(lambda: scm.start(tmp_path, "NoProgram")) == 193
    place_program(tmp_path)
    new(tmp_path, "WrongPassword", start_name="CONTOSO\\svc-uc", password="wrong")
    assert code_of(lambda: scm.start(tmp_path, "WrongPassword")) == 1069
    new(tmp_path, "GmsaWithPassword", start_name="CONTOSO\\gmsa-uc$", password="typed")
    assert code_of(lambda: scm.start(tmp_path, "GmsaWithPassword")) == 1069
    new(tmp_path, "Disabled", start_mode="Disabled")
    assert code_of(lambda: scm.start(tmp_path, "Disabled")) == 1058
    new(tmp_path, "Good", start_name="CONTOSO\\svc-uc", password="right")
    assert code_of(lambda: scm.start(tmp_path, "Good")) == 1069, 'no "Log on as a service" yet'
    lsa.grant_right(tmp_path, accounts.resolve(tmp_path, "CONTOSO\\svc-uc").sid, scm.SERVICE_LOGON_RIGHT)
    assert scm.start(tmp_path, "Good").state == "Running"
    new(tmp_path, "Gmsa", start_name="CONTOSO\\gmsa-uc$")
    lsa.grant_right(tmp_path, accounts.resolve(tmp_path, "CONTOSO\\gmsa-uc$").sid, scm.SERVICE_LOGON_RIGHT)
    assert scm.start(tmp_path, "Gmsa").state == "Running"


def test_delete_of_a_running_service_waits_for_it_to_stop(tmp_path: Path) -> None:
    place_program(tmp_path)
    new(tmp_path)
    scm.start(tmp_path, "UsercubeAgent")
    assert scm.delete(tmp_path, "UsercubeAgent") is False
    assert code_of(lambda: scm.change(tmp_path, "UsercubeAgent", description="x")) == 1072
    assert scm.stop(tmp_path, "UsercubeAgent") is None
    assert scm.get(tmp_path, "UsercubeAgent") is None


def test_delete_while_a_program_holds_a_handle_only_marks_the_service(tmp_path: Path) -> None:
    """learn.microsoft.com DeleteService: the entry goes once the service is stopped and every handle is closed;
    until then it is listed, Disabled (MS-SCMR 3.1.4.3 RDeleteService), CreateService of its name and a second
    DeleteService fail with 1072, and StartService with 1058 (it checks Disabled first: ReactOS RStartServiceW)."""
    new(tmp_path)
    scm.admin_open_handle(tmp_path, "UsercubeAgent")  # services.msc shows it
    assert scm.delete(tmp_path, "UsercubeAgent") is False
    listed = scm.get(tmp_path, "UsercubeAgent")
    assert listed is not None and listed.marked_for_delete
    assert listed.start_mode == "Disabled", "RDeleteService sets Start to SERVICE_DISABLED"
    assert windows_service.get(WindowsFs(tmp_path), spec_of()).state["start_type"] == "Disabled", "what refresh sees"
    assert code_of(lambda: new(tmp_path)) == 1072
    assert code_of(lambda: scm.delete(tmp_path, "UsercubeAgent")) == 1072
    assert code_of(lambda: scm.start(tmp_path, "UsercubeAgent")) == 1058
    assert scm.stop(tmp_path, "UsercubeAgent") is not None, "stopped, but a handle is still open"
    scm.admin_close_handles(tmp_path, "UsercubeAgent")
    assert scm.get(tmp_path, "UsercubeAgent") is None


def test_service_sid_resolves_while_the_service_exists(tmp_path: Path) -> None:
    new(tmp_path)
    sid = accounts.resolve(tmp_path, "NT SERVICE\\UsercubeAgent").sid
    assert sid == accounts.virtual_sid(80, "UsercubeAgent")
    scm.delete(tmp_path, "UsercubeAgent")
    with pytest.raises(accounts.IdentityNotMapped):
        accounts.resolve(tmp_path, "NT SERVICE\\UsercubeAgent")


def spec_of(**values: object) -> dict[str, object]:
    model = WindowsServiceModel.model_validate(
        {"connection": {"host": "h", "username": "u", "password": "p"}, "name": "UsercubeAgent", "binary_path": EXE}
        | values
    )
    return model.script_input()


def test_set_model_reports_each_change_and_masks_the_password(tmp_path: Path) -> None:
    place_program(tmp_path)
    accounts.add_account(tmp_path, "CONTOSO\\svc-uc", "user", "pw-1")
    fs = WindowsFs(tmp_path)
    created = windows_service.set_(fs, spec_of())
    assert created.ok and created.state["state"] == "Running"
    assert windows_service.set_(fs, spec_of()).changed is False, "set changes only what differs"
    moved = windows_service.set_(fs, spec_of(account="CONTOSO\\svc-uc", password="pw-1") | {"apply_password": True})
    assert moved.ok, moved.error
    assert {c["property"] for c in moved.changes} == {"account", "password", "logon_right", "state"}
    assert all("pw-1" not in str(c) for c in moved.changes)
    taken = windows_service.set_(fs, spec_of() | {"create": True})
    assert not taken.ok and taken.error is not None and taken.error["id"] == "ServiceExists"
    gone = windows_service.remove(fs, spec_of())
    assert gone.ok and gone.state["ensure"] == "absent"


def test_a_create_adopts_the_service_its_own_create_left_and_refuses_any_other(tmp_path: Path) -> None:
    """Issue 11 §3: the CLI killed after Win32_Service.Create (or Create's reply lost): the next create finds the
    service as its own Create makes it (program, display name, account, start mode) and finishes the job."""
    place_program(tmp_path)
    fs = WindowsFs(tmp_path)
    spec = spec_of() | {"create": True}
    left = {"name": spec["name"], "display_name": spec["display_name"], "image_path": spec["image_path"]}
    scm.create(tmp_path, **left, start_mode="Auto", start_name="LocalSystem", password=None)
    adopted = windows_service.set_(fs, spec)
    assert adopted.ok, adopted.error
    assert adopted.state["state"] == "Running" and "ensure" not in {c["property"] for c in adopted.changes}
    windows_service.remove(fs, spec_of())
    for other in (
        {"start_mode": "Manual"},
        {"display_name": "Someone else's"},
        {"start_name": "NT AUTHORITY\\NetworkService"},
    ):
        scm.create(tmp_path, **{**left, "start_mode": "Auto", "start_name": "LocalSystem", "password": None, **other})
        taken = windows_service.set_(fs, spec)
        assert not taken.ok and taken.error is not None and taken.error["id"] == "ServiceExists", other
        scm.admin_delete_service(tmp_path, spec["name"])


RECOVERY = {"actions": [{"action": "Restart", "delay_seconds": 60}], "reset_period_seconds": 86400}


@pytest.mark.parametrize(
    ("left_settings", "adopted"),
    [
        ({}, True),  # cut right after Create; also the manual's `sc.exe create` by hand (review S2: adopted)
        ({"description": "Contoso agent"}, True),  # cut after Set-Service -Description
        ({"description": "Contoso agent", "failure_actions": RECOVERY}, True),  # cut after sc.exe failure
        ({"description": "Installed by hand"}, False),
        ({"failure_actions": {"actions": [], "reset_period_seconds": 3600}}, False),
        ({"failure_actions": {**RECOVERY, "reset_period_seconds": 60}}, False),
    ],
)
def test_a_create_adopts_only_a_description_and_recovery_actions_its_own_run_can_have_left(
    tmp_path: Path, left_settings: dict[str, object], adopted: bool
) -> None:
    """Review A2: set.ps1 sets the description and the recovery actions after Create, so a service its interrupted
    run left has none or the declared ones; the same program and name with another description or other recovery
    actions (set by hand, or by another tool) was not made by it and is refused. The manual's own hand install
    (`sc.exe create` sets neither) carries exactly Create's defaults and is still adopted (review S2); only an
    ownership marker (review A3) would tell it apart."""
    place_program(tmp_path)
    fs = WindowsFs(tmp_path)
    spec = spec_of(description="Contoso agent", failure_actions=RECOVERY) | {"create": True}
    left = {"name": spec["name"], "display_name": spec["display_name"], "image_path": spec["image_path"]}
    scm.create(tmp_path, **left, start_mode="Auto", start_name="LocalSystem", password=None)
    scm.admin_edit_service(tmp_path, spec["name"], **left_settings)
    result = windows_service.set_(fs, spec)
    if adopted:
        assert result.ok, result.error
        assert result.state["description"] == "Contoso agent" and result.state["failure_actions"] == RECOVERY
    else:
        assert not result.ok and result.error is not None and result.error["id"] == "ServiceExists", left_settings
        service = scm.get(tmp_path, spec["name"])
        assert service is not None and {k: getattr(service, k) for k in left_settings} == left_settings, "untouched"


def set_script() -> str:
    return render_script(ScriptRef("providers.windows_service", "set"))


def test_a_retried_remove_of_a_service_marked_for_deletion_succeeds(tmp_path: Path) -> None:
    """Review S4: a destroy whose Delete only marked the service (services.msc held it open, or the reply was lost)
    is retried. Delete would return 16 (1072, DeleteService: already marked); remove leaves it to go by itself."""
    place_program(tmp_path)
    fs = WindowsFs(tmp_path)
    assert windows_service.set_(fs, spec_of() | {"create": True}).ok
    scm.admin_open_handle(tmp_path, "UsercubeAgent")
    first = windows_service.remove(fs, spec_of())
    assert first.ok and first.state["marked_for_delete"] is True
    retried = windows_service.remove(fs, spec_of())
    assert retried.ok, retried.error
    assert retried.changed is False and retried.state["marked_for_delete"] is True, "nothing left to do: it is going"
    scm.admin_close_handles(tmp_path, "UsercubeAgent")
    assert windows_service.remove(fs, spec_of()).state == {"ensure": "absent", "name": "UsercubeAgent"}


def test_remove_stops_a_running_service_marked_for_deletion_and_it_goes(tmp_path: Path) -> None:
    """Review S4: `sc.exe delete` of a running service only marks it; remove stops it, and it goes once stopped."""
    place_program(tmp_path)
    fs = WindowsFs(tmp_path)
    assert windows_service.set_(fs, spec_of() | {"create": True}).ok
    assert scm.delete(tmp_path, "UsercubeAgent") is False, "running: only marked"
    gone = windows_service.remove(fs, spec_of())
    assert gone.ok, gone.error
    assert gone.state["ensure"] == "absent" and [c["property"] for c in gone.changes] == ["state"]
    assert scm.get(tmp_path, "UsercubeAgent") is None


def test_a_start_racing_a_deletion_is_reported_as_the_deletion(tmp_path: Path) -> None:
    """Review S1: marking makes the service Disabled, so StartService answers 1058; the script's error names the
    deletion (ServiceMarkedForDelete), never "set start_type to Automatic or Manual". A service Disabled by its
    start type alone is still ServiceDisabled."""
    place_program(tmp_path)
    new(tmp_path)
    scm.admin_open_handle(tmp_path, "UsercubeAgent")
    scm.delete(tmp_path, "UsercubeAgent")  # marked just before the set script's start
    with pytest.raises(windows_service._Stop) as raced:
        windows_service._control(tmp_path, "UsercubeAgent", "Start")
    error = raced.value.envelope.error
    assert error is not None and (error["id"], error["property"]) == ("ServiceMarkedForDelete", "name")
    assert "marked for deletion" in error["message"] and "start_type" not in error["message"]
    new(tmp_path, "DisabledAgent", start_mode="Disabled")
    with pytest.raises(windows_service._Stop) as disabled:
        windows_service._control(tmp_path, "DisabledAgent", "Start")
    assert disabled.value.envelope.error is not None and disabled.value.envelope.error["id"] == "ServiceDisabled"


def delete_at_our_stop(monkeypatch: pytest.MonkeyPatch, when: str) -> None:
    """Another program deletes the service just as the script stops it, once. 'marked': `sc.exe delete` of the running
    service only marks it, and our stop makes it go (Stop() returns, WaitForStatus then meets 1060). 'gone': it stops
    and deletes it first, so our stop itself meets 1060 (referencesource ServiceController.GetServiceHandle)."""
    real_stop = scm.stop
    raced: list[str] = []

    def racing_stop(state_dir: Path, name: str) -> scm.Service | None:
        if not raced:
            raced.append(name)
            if when == "marked":
                assert scm.delete(state_dir, name) is False, "running: only marked"
            else:
                real_stop(state_dir, name)
                assert scm.delete(state_dir, name) is True
        return real_stop(state_dir, name)

    monkeypatch.setattr(scm, "stop", racing_stop)


@pytest.mark.parametrize("when", ["marked", "gone"])
def test_a_set_whose_service_is_deleted_during_its_stop_fails_and_a_remove_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """Review T1-T3: only remove.ps1 passes -GoneIsStopped. A set declaring state Stopped must not report success for a
    service that is gone: it fails with ServiceDeleted. A remove is done (and calls no Delete on a service that is
    no longer there, T3)."""
    place_program(tmp_path)
    fs = WindowsFs(tmp_path)
    assert windows_service.set_(fs, spec_of() | {"create": True}).ok
    delete_at_our_stop(monkeypatch, when)
    stopped = windows_service.set_(fs, spec_of(state="Stopped"))
    assert not stopped.ok and stopped.error is not None
    assert (stopped.error["id"], stopped.error["property"]) == ("ServiceDeleted", "name"), stopped.error
    assert "(1060)" in stopped.error["message"] and "up --refresh" in stopped.error["message"]
    assert scm.get(tmp_path, "UsercubeAgent") is None
    monkeypatch.undo()
    assert windows_service.set_(fs, spec_of() | {"create": True}).ok
    delete_at_our_stop(monkeypatch, when)
    gone = windows_service.remove(fs, spec_of())
    assert gone.ok, gone.error
    assert gone.state == {"ensure": "absent", "name": "UsercubeAgent"} and [c["property"] for c in gone.changes] == [
        "state"
    ], "stopped by us, deleted by the other program"


def test_a_remove_of_a_stopped_service_deleted_after_the_first_read_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review T3: an unmarked, stopped service deleted by another program between Get-ServiceState and Get-CimInstance:
    nothing is left to delete, the remove is done (the script skips Delete on a $null instance)."""
    place_program(tmp_path)
    fs = WindowsFs(tmp_path)
    assert windows_service.set_(fs, spec_of(state="Stopped") | {"create": True}).ok
    real_state = windows_service._state
    reads: list[str] = []

    def then_deleted(state_dir: Path, name: str) -> dict[str, object]:
        state = real_state(state_dir, name)
        if not reads:
            reads.append(name)
            scm.admin_delete_service(state_dir, name)
        return state

    monkeypatch.setattr(windows_service, "_state", then_deleted)
    gone = windows_service.remove(fs, spec_of())
    assert gone.ok, gone.error
    assert gone.state == {"ensure": "absent", "name": "UsercubeAgent"} and gone.changes == []


def test_a_start_whose_service_went_before_the_delete_flag_read_says_it_was_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review T6: the start answered 1058 (marked, so Disabled), and the last handle closed before the script read the
    DeleteFlag: the key is gone, and the message says so instead of advising to close handles."""
    place_program(tmp_path)
    new(tmp_path)
    scm.admin_open_handle(tmp_path, "UsercubeAgent")
    scm.delete(tmp_path, "UsercubeAgent")
    real_start = scm.start

    def start_then_handle_closed(state_dir: Path, name: str) -> scm.Service:
        try:
            return real_start(state_dir, name)
        finally:
            scm.admin_close_handles(state_dir, name)

    monkeypatch.setattr(scm, "start", start_then_handle_closed)
    with pytest.raises(windows_service._Stop) as raced:
        windows_service._control(tmp_path, "UsercubeAgent", "Start")
    error = raced.value.envelope.error
    assert error is not None and (error["id"], error["property"]) == ("ServiceMarkedForDelete", "name")
    assert "deleted while being started" in error["message"] and "services.msc" not in error["message"]


def test_a_service_marked_for_deletion_is_never_adopted(tmp_path: Path) -> None:
    """Review A1: a replace (delete, then create with the same name and settings) while services.msc holds a handle
    to the service: the delete only marks it, it stays listed exactly as the create would make it, and vanishes
    when the handle closes. The create must stop with ServiceMarkedForDelete, not adopt it and report success."""
    place_program(tmp_path)
    fs = WindowsFs(tmp_path)
    spec = spec_of() | {"create": True}
    assert windows_service.set_(fs, spec).ok
    scm.admin_open_handle(tmp_path, spec["name"])
    removed = windows_service.remove(fs, spec_of())  # the replace's delete
    assert removed.ok and removed.state["marked_for_delete"] is True
    refused = windows_service.set_(fs, spec)
    assert not refused.ok and refused.error is not None and refused.error["id"] == "ServiceMarkedForDelete"
    assert "services.msc" in refused.error["message"] and refused.error["property"] == "name"
    scm.admin_close_handles(tmp_path, spec["name"])  # the fix the message names
    recreated = windows_service.set_(fs, spec)
    assert recreated.ok and "ensure" in {c["property"] for c in recreated.changes}


@pytest.mark.parametrize(
    ("operation", "fixed", "unfixed"),
    [
        ("set", "if ($before.ensure -eq 'present' -and $before.marked_for_delete) {", "if ($false) {"),
        ("set", "$deleteFlag = $Values.PSObject.Properties['DeleteFlag']", "$deleteFlag = $null"),
        ("set", "(@('', [string]$Spec.description) -ccontains [string]$before.description) -and", "$true -and"),
        ("set", "(@($noActionsKey, (Get-FailureActionKey $Spec.failure_actions)) -ccontains", "(@($x) -ccontains"),
        # Review S1: a start refused with 1058 on a marked service names the deletion.
        ("set", "if ($Action -eq 'Start' -and $code -eq 1058) {", "if ($false) {"),
        # Review S4: no Delete of a service already marked; a stop that makes it go (1060) is the stop done.
        ("remove", "if (-not $before.marked_for_delete) {", "if ($true) {"),
        ("remove", "if ($Action -eq 'Stop' -and $code -eq 1060 -and $GoneIsStopped) { return }", ""),
        # Review T1, T3, T5, T6: 1060 is the stop done only for remove; no Delete on a vanished service; a key that
        # is there but read neither values nor an error has an id; a start whose key went says it was deleted.
        ("remove", "-Action 'Stop' -GoneIsStopped\n", "-Action 'Stop'\n"),
        ("set", "$name -Action 'Stop'\n    [void]", "$name -Action 'Stop' -GoneIsStopped\n    [void]"),
        ("set", " -and $GoneIsStopped) { return }", ") { return }"),
        ("remove", "    if ($null -ne $service) {\n", "    if ($true) {\n"),
        ("get", "if ($keyErrors.Count -gt 0) { throw $keyErrors[0] }", "throw $keyErrors[0]"),
        ("set", "it was deleted while being started", "it is marked for deletion"),
        # Review S5: a key gone between Get-CimInstance and its read is the service absent, not ItemNotFound.
        ("get", " -ErrorAction SilentlyContinue -ErrorVariable keyErrors", ""),
        ("get", "    if ($null -eq $values) {\n        return [ordered]@{ ensure = 'absent'", "    if ($false) {\n"),
    ],
)
def test_the_model_refuses_the_script_without_the_checks_it_models(operation: str, fixed: str, unfixed: str) -> None:
    """The models stop on a service marked for deletion, check description and recovery actions (review A1/A2), name
    the deletion in a refused start, skip the Delete of a marked service (S1, S4), and read a vanished key as absent
    (S5; the model's state read has no gap between the two reads to show it by behaviour): a script without one of
    these violates its script facts, so it cannot be blessed."""
    script = render_script(ScriptRef("providers.windows_service", operation))
    op = f"windows_service/{operation}"
    assert fixed in script and ps51.check_script(windows_service.SCRIPT_FACTS, op, script) == []
    assert ps51.check_script(windows_service.SCRIPT_FACTS, op, script.replace(fixed, unfixed))


def test_feature_install_brings_parents_defaults_and_tools(tmp_path: Path) -> None:
    result = features.install(tmp_path, ["rsat-adds-tools"])
    assert result.features == ["RSAT", "RSAT-Role-Tools", "RSAT-AD-Tools", "RSAT-ADDS", "RSAT-ADDS-Tools"]
    assert features.install(tmp_path, ["RSAT-ADDS-Tools"]).features == []
    with pytest.raises(features.UnknownFeature, match="The role, role service, or feature name is not valid"):
        features.install(tmp_path, ["Web-Srever"])
    assert features.uninstall(tmp_path, ["RSAT-ADDS"]).features == ["RSAT-ADDS", "RSAT-ADDS-Tools"]
    assert features.install(tmp_path, ["Containers"]).restart_needed
    assert features.load(tmp_path)["restart_pending"]
    features.admin_restart(tmp_path)
    assert not features.load(tmp_path)["restart_pending"]


def test_feature_model_refuses_client_os(tmp_path: Path) -> None:
    features.admin_set_os(tmp_path, "Windows 11 (SIMULATED)", 1)
    spec = {"names": ["Telnet-Client"], "include_management_tools": False, "uninstall_on_delete": False}
    refused = windows_feature.set_(WindowsFs(tmp_path), spec)
    assert not refused.ok and refused.error is not None and refused.error["id"] == "ServerManagerUnavailable"


@pytest.mark.parametrize(
    "arguments", [["--service"], ["--urls", "http://x:5000 path"], ['say "hi"', "C:\\dir with space\\"], [""]]
)
def test_image_path_arguments_round_trip(arguments: list[str]) -> None:
    image = " ".join([f'"{EXE}"', *(quote_argument(a) for a in arguments)])
    assert split_image_path(image) == (EXE, arguments)

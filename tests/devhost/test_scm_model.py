"""SIMULATOR: the service control manager and feature models follow Windows' rules (no WinRM, no Pulumi)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devhost import accounts, features, lsa, ps51, scm
from devhost.fs import WindowsFs
from devhost.ops import ownership, windows_feature, windows_service
from providers.scripting.runner import ScriptRef, render_script
from providers.windows_service.model import WindowsServiceModel, quote_argument, split_image_path

EXE = "C:\\identitymanagerContoso\\Runtime\\Usercube-Agent.exe"
OWNER = "organization/usercube-agents/local/windows:WindowsService::agent-service"


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
        {
            "connection": {"host": "h", "username": "u", "password": "p"},
            "name": "UsercubeAgent",
            "binary_path": EXE,
            "owner": OWNER,
        }
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
    taken = windows_service.set_(fs, spec_of() | {"create": True, "owner": "another/stack"})
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
    windows_service.write_creating_record(fs, spec["name"], OWNER)  # set.ps1 writes it before Create
    scm.create(tmp_path, **left, start_mode="Auto", start_name="LocalSystem", password=None)
    adopted = windows_service.set_(fs, spec)
    assert adopted.ok, adopted.error
    assert adopted.state["state"] == "Running" and "ensure" not in {c["property"] for c in adopted.changes}
    assert adopted.state["owner_marker"] == OWNER, "marked as this resource's"
    windows_service.remove(fs, spec_of())
    for other in (
        {"start_mode": "Manual"},
        {"display_name": "Someone else's"},
        {"start_name": "NT AUTHORITY\\NetworkService"},
    ):
        windows_service.write_creating_record(fs, spec["name"], OWNER)
        scm.create(tmp_path, **{**left, "start_mode": "Auto", "start_name": "LocalSystem", "password": None, **other})
        taken = windows_service.set_(fs, spec)
        assert not taken.ok and taken.error is not None and taken.error["id"] == "ServiceExists", other
        scm.admin_delete_service(tmp_path, spec["name"])


RECOVERY = {"actions": [{"action": "Restart", "delay_seconds": 60}], "reset_period_seconds": 86400}


@pytest.mark.parametrize(
    ("left_settings", "adopted"),
    [
        ({}, True),  # cut right after Create
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
    actions (set by hand, or by another tool) was not made by it and is refused, even with the record of a create
    under way that names it."""
    place_program(tmp_path)
    fs = WindowsFs(tmp_path)
    spec = spec_of(description="Contoso agent", failure_actions=RECOVERY) | {"create": True}
    left = {"name": spec["name"], "display_name": spec["display_name"], "image_path": spec["image_path"]}
    windows_service.write_creating_record(fs, spec["name"], OWNER)
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
    and deletes it first, so our stop itself meets 1060 (referencesource ServiceController: Stop() reads ServiceName,
    GenerateNames throws NoService with the 1060 of GetServiceDisplayName)."""
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
    assert gone.state == {"ensure": "absent", "name": "UsercubeAgent"}
    # Review adopt4 E2: 'marked', our stop made it go; 'gone', the other program had stopped it: no change of ours.
    assert [c["property"] for c in gone.changes] == (["state"] if when == "marked" else [])
    assert gone.changed is (when == "marked")


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
    # Review adopt4 E1: the same event as a 1060 at the start, so the same id.
    assert error is not None and (error["id"], error["property"]) == ("ServiceDeleted", "name")
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
        ("remove", "if ($Action -eq 'Stop' -and $code -eq 1060 -and $GoneIsStopped) { return $sent }", ""),
        # Review T1, T3, T5, T6: 1060 is the stop done only for remove; no Delete on a vanished service; a key that
        # is there but read neither values nor an error has an id; a start whose key went says it was deleted.
        ("remove", "-Action 'Stop' -GoneIsStopped) {", "-Action 'Stop') {"),
        ("set", "$name -Action 'Stop'\n    [void]", "$name -Action 'Stop' -GoneIsStopped\n    [void]"),
        ("set", " -and $GoneIsStopped) { return $sent }", ") { return $sent }"),
        ("remove", "    if ($null -ne $service -and -not (Test-DeleteFlag", "    if ($true -and -not (Test-DeleteFlag"),
        ("get", "if ($keyErrors.Count -gt 0) { throw $keyErrors[0] }", "throw $keyErrors[0]"),
        ("set", "it was deleted while being started", "it is marked for deletion"),
        # Review A3: the owner marker, the record of a create under way, the update and remove rules.
        (
            "set",
            "($marker -eq '') -and ($null -ne $creating) -and ([string]$creating.name -eq $name) -and",
            "$true -and",
        ),
        ("set", "Write-OwnersJson $creatingPath ([ordered]@{ owner = $owner; name = $name })\n", ""),
        (
            "set",
            "        Set-OwnerMarker $name $owner\n        [void]$changes.Add((New-Change -Property 'ensure'",
            "        [void]$changes.Add((New-Change -Property 'ensure'",
        ),
        ("set", "$fromBeforeMarkers = ($marker -eq '') -and ($previous -eq '')", "$fromBeforeMarkers = $true"),
        ("remove", "($owner -ne '' -and $marker -ceq $owner) -or", "($true) -or"),
        ("get", "$marker = $Values.PSObject.Properties[$OwnerMarkerName]", "$marker = $null"),
        # Review adopt4 E2, E4: a change only for a stop sent; the DeleteFlag read again before Delete.
        ("remove", "            $sent = $true\n        } catch {", "        } catch {"),
        # Review service7 T1: a start or stop another program did first (1056, 1062) is waited for, not an error,
        # only while the service is (or goes) where it was asked to; and it counts as no change of this remove.
        ("set", "if (-not (Test-ServiceControlRaced $_.Exception $Action $controller)) { throw }", "throw"),
        ("remove", "        if ($GoneIsStopped) { return $sent }", "        if ($GoneIsStopped) { return $true }"),
        ("set", "$passing = @('Running', 'StartPending')", "$passing = @('Running', 'StartPending', 'StopPending')"),
        ("set", "$raceCode = 1056\n", "$raceCode = 1058\n"),
        ("remove", "-not (Test-DeleteFlag (Get-ServiceKeyValues $name))", "$true"),
        # Review service6 S1: whatever Create answers, the record goes before the error; on success only after the
        # marker is written.
        (
            "set",
            "                [System.IO.File]::Delete($creatingPath)\n            } catch {",
            "            } catch {",
        ),
        (
            "set",
            "        Set-OwnerMarker $name $owner\n",
            "        [System.IO.File]::Delete($creatingPath)\n        Set-OwnerMarker $name $owner\n",
        ),
        ("set", "    if ($Code -eq 0) { return }\n", "    if ($Code -ne 23) { return }\n"),
        # Review service6 S6-2: the service read under the owners lock, not before it; S6-5: a record that cannot be
        # deleted after a refused Create is named in Create's error instead of replacing it.
        (
            "set",
            "$lock = Enter-OwnersLock\ntry {\n",
            "$before = Get-ServiceState $name\n$lock = Enter-OwnersLock\ntry {\n",
        ),
        (
            "set",
            "            try {\n                [System.IO.File]::Delete($creatingPath)\n            } catch {",
            "            [System.IO.File]::Delete($creatingPath)\n            if ($false) {",
        ),
        ("set", " -Code $createResult -Detail $recordLeft\n", " -Code $createResult\n"),
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


@pytest.mark.parametrize("pending", [False, True], ids=["running", "start-pending"])
def test_a_start_that_another_program_made_first_waits_for_running_and_is_done(tmp_path: Path, pending: bool) -> None:
    """Review service7 T1: two runs of one resource past the owners lock (or an administrator) both start the service;
    the second StartService answers 1056 (ERROR_SERVICE_ALREADY_RUNNING: learn.microsoft.com StartServiceW), which
    ServiceController throws inside an InvalidOperationException. The service is where it was asked to be: its start
    is waited for (StartPending until its program reports Running) and the set is done."""
    place_program(tmp_path)
    fs = WindowsFs(tmp_path)
    assert windows_service.set_(fs, spec_of(state="Stopped") | {"create": True}).ok
    set_knobs(tmp_path, service_start_races=[{"on": "UsercubeAgent", "pending": pending}])
    started = windows_service.set_(fs, spec_of())
    assert started.ok, started.error
    assert started.state["state"] == "Running"
    assert [(c["property"], c["before"], c["after"]) for c in started.changes] == [("state", "Stopped", "Running")]
    assert json.loads((tmp_path / "_sim" / "knobs.json").read_text())["service_start_races"] == [], "the race ran"


def test_a_start_refused_with_1056_by_a_service_that_is_stopping_stays_a_failed_start(tmp_path: Path) -> None:
    """Review service7 T1: 1056 answers any service that is not stopped; one that is stopping (or paused) will not
    reach Running by waiting, so it is not taken for another program's start."""
    place_program(tmp_path)
    new(tmp_path)
    scm.start(tmp_path, "UsercubeAgent")
    scm.stop_pending(tmp_path, "UsercubeAgent")
    with pytest.raises(windows_service._Stop) as refused:
        windows_service._control(tmp_path, "UsercubeAgent", "Start")
    error = refused.value.envelope.error
    assert error is not None and (error["id"], error["property"]) == ("ServiceStartFailed", "state")
    assert "An instance of the service is already running. (1056)" in error["message"]


def test_a_stop_that_another_program_made_first_is_done_and_no_change_of_a_remove(tmp_path: Path) -> None:
    """Review service7 T1: another program stops the service just before our Stop(); ControlService answers 1062
    (ERROR_SERVICE_NOT_ACTIVE: learn.microsoft.com ControlService). A set to Stopped is done; a remove deletes it and
    reports no stop of its own (Invoke-ServiceControl -GoneIsStopped outputs $false, as for one gone before it)."""
    place_program(tmp_path)
    fs = WindowsFs(tmp_path)
    assert windows_service.set_(fs, spec_of() | {"create": True}).ok
    set_knobs(tmp_path, service_stop_races=[{"on": "UsercubeAgent"}])
    stopped = windows_service.set_(fs, spec_of(state="Stopped"))
    assert stopped.ok, stopped.error
    assert stopped.state["state"] == "Stopped"
    assert json.loads((tmp_path / "_sim" / "knobs.json").read_text())["service_stop_races"] == [], "the race ran"
    assert windows_service.set_(fs, spec_of()).ok
    set_knobs(tmp_path, service_stop_races=[{"on": "UsercubeAgent"}])
    gone = windows_service.remove(fs, spec_of())
    assert gone.ok, gone.error
    assert gone.state == {"ensure": "absent", "name": "UsercubeAgent"}
    assert [c["property"] for c in gone.changes] == ["ensure"]


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


def hand_install(state: Path, spec: dict[str, object]) -> None:
    """The manual's `sc.exe create` with exactly the values set.ps1's Create uses: no marker, no record."""
    left = {"name": spec["name"], "display_name": spec["display_name"], "image_path": spec["image_path"]}
    scm.create(state, **left, start_mode="Auto", start_name="LocalSystem", password=None)  # type: ignore[arg-type]


def test_a_create_refuses_a_hand_installed_service_and_adopts_only_its_own(tmp_path: Path) -> None:
    """Review A3: the same values as Create's are no proof of ownership. A create adopts a service that carries its
    marker (written right after Create: the reply was lost), or an unmarked one its own record of a create under way
    names (the kill came between Create and the marker); the manual's hand install, or another resource's service,
    is refused with ServiceExists naming the fix, and left untouched."""
    place_program(tmp_path)
    fs = WindowsFs(tmp_path)
    spec = spec_of() | {"create": True}
    hand_install(tmp_path, spec)
    refused = windows_service.set_(fs, spec)
    assert not refused.ok and refused.error is not None
    assert (refused.error["id"], refused.error["property"]) == ("ServiceExists", "name")
    assert (
        "sc.exe delete UsercubeAgent" in refused.error["message"] and "no ownership marker" in refused.error["message"]
    )
    assert scm.get(tmp_path, "UsercubeAgent").state == "Stopped"  # type: ignore[union-attr]
    assert scm.get(tmp_path, "UsercubeAgent").key_values == {}  # type: ignore[union-attr]
    other = windows_service.set_(fs, spec | {"owner": "another/stack"})
    assert not other.ok and other.error is not None and other.error["id"] == "ServiceExists"
    scm.admin_delete_service(tmp_path, "UsercubeAgent")  # the fix the message names

    created = windows_service.set_(fs, spec)
    assert created.ok and created.state["owner_marker"] == OWNER, created.error
    assert ownership.records(fs, windows_service.CREATING_FOLDER) == [], "the record goes once the marker is there"
    again = windows_service.set_(fs, spec)  # the create's reply was lost: the retried create finds its marker
    assert again.ok and again.changed is False, again.error
    foreign = windows_service.set_(fs, spec | {"owner": "another/stack"})
    assert not foreign.ok and foreign.error is not None and foreign.error["id"] == "ServiceExists"
    assert f"ownership marker of '{OWNER}'" in foreign.error["message"]


def test_a_refused_create_leaves_no_record_to_adopt_by(tmp_path: Path) -> None:
    """The record is written before Create; a Create refused (here 1078, the display name taken) created nothing, so
    the record goes: a service of that name installed later by hand is not taken for this resource's."""
    place_program(tmp_path)
    fs = WindowsFs(tmp_path)
    new(tmp_path, "Other", display_name="Taken")
    refused = windows_service.set_(fs, spec_of(display_name="Taken") | {"create": True})
    assert not refused.ok and refused.error is not None and refused.error["id"] == "DuplicateServiceName"
    assert ownership.records(fs, windows_service.CREATING_FOLDER) == []


def test_a_service_created_before_markers_keeps_working_for_update_and_delete(tmp_path: Path) -> None:
    """A state written by an earlier version: its service carries no marker. Its update (previous_owner empty) marks
    it and goes on; its destroy (owner empty: the state's inputs) deletes it. A marked service of another owner is
    neither updated nor deleted, and an unmarked one under a state that has an owner was installed again by someone
    else: not updated."""
    place_program(tmp_path)
    fs = WindowsFs(tmp_path)
    spec = spec_of()
    hand_install(tmp_path, spec)  # what the earlier version's Create left, with no marker
    legacy_delete = windows_service.remove(fs, spec | {"owner": ""})
    assert legacy_delete.ok and legacy_delete.state["ensure"] == "absent", legacy_delete.error

    hand_install(tmp_path, spec)
    not_since = windows_service.set_(fs, spec | {"previous_owner": OWNER})
    assert not not_since.ok and not_since.error is not None and not_since.error["id"] == "ServiceNotOwned"
    updated = windows_service.set_(fs, spec | {"previous_owner": ""})
    assert updated.ok and updated.state["owner_marker"] == OWNER, updated.error
    assert "owner_marker" in {c["property"] for c in updated.changes}
    renamed = windows_service.set_(fs, spec | {"owner": "new/id", "previous_owner": OWNER})
    assert renamed.ok and renamed.state["owner_marker"] == "new/id", renamed.error

    for owner in (OWNER, ""):  # another's marker: a destroy of this resource leaves it running
        kept = windows_service.remove(fs, spec | {"owner": owner})
        assert kept.ok and kept.changed is False and kept.state["state"] == "Running", owner
    assert scm.get(tmp_path, "UsercubeAgent") is not None
    assert windows_service.remove(fs, spec | {"owner": "new/id"}).state["ensure"] == "absent"


def test_a_remove_rereads_the_delete_flag_before_delete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review adopt4 E4: another program marks the stopped service for deletion after remove's first read, while
    services.msc holds it open. Delete would return 16 (1072); remove reads the DeleteFlag again and leaves it to go."""
    place_program(tmp_path)
    fs = WindowsFs(tmp_path)
    assert windows_service.set_(fs, spec_of(state="Stopped") | {"create": True}).ok
    real_state = windows_service._state
    reads: list[str] = []

    def then_marked(state_dir: Path, name: str) -> dict[str, object]:
        state = real_state(state_dir, name)
        if not reads:
            reads.append(name)
            scm.admin_open_handle(state_dir, name)
            assert scm.delete(state_dir, name) is False
        return state

    monkeypatch.setattr(windows_service, "_state", then_marked)
    removed = windows_service.remove(fs, spec_of())
    assert removed.ok, removed.error
    assert removed.changed is False and removed.state["marked_for_delete"] is True


def test_a_create_refused_by_a_racing_hand_install_leaves_no_record_and_the_next_create_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review S1 (service6): someone installs the service by hand (the manual's `sc.exe create`, with the values set's
    Create uses) after set's read under the owners lock found none and before its Create, which then answers 23
    (1073). Create answered, so the record of the create under way goes although a service of that name is there: the
    next create refuses that hand install (ServiceExists) instead of adopting it as its own, and leaves it unmarked."""
    place_program(tmp_path)
    fs = WindowsFs(tmp_path)
    spec = spec_of() | {"create": True}
    real_create = scm.create

    def hand_install_first(state_dir: Path, **values: object) -> scm.Service:
        left = {"name": spec["name"], "display_name": spec["display_name"], "image_path": spec["image_path"]}
        real_create(state_dir, **left, start_mode="Auto", start_name="LocalSystem", password=None)  # type: ignore[arg-type]
        return real_create(state_dir, **values)  # type: ignore[arg-type]

    monkeypatch.setattr(scm, "create", hand_install_first)
    raced = windows_service.set_(fs, spec)
    monkeypatch.undo()
    assert not raced.ok and raced.error is not None
    assert (raced.error["id"], raced.error["property"]) == ("ServiceExists", "name")
    assert "Win32_Service.Create returned 23" in raced.error["message"], "Create's own answer"
    assert ownership.records(fs, windows_service.CREATING_FOLDER) == [], "Create answered: no record left"

    again = windows_service.set_(fs, spec)
    assert not again.ok and again.error is not None and again.error["id"] == "ServiceExists", again.state
    assert "carries no ownership marker" in again.error["message"]
    service = scm.get(tmp_path, "UsercubeAgent")
    assert service is not None and service.key_values == {} and service.state == "Stopped", "left as installed"


def test_a_service_deleted_between_create_and_its_marker_fails_as_windows_does_and_the_record_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review S2 (service6): the service goes between Create and Set-OwnerMarker (another program deletes it).
    New-ItemProperty on the missing key fails with PowerShell's ItemNotFoundException, which the prelude's trap
    reports as UnexpectedError (category ObjectNotFound): the model answers that, not a SIMULATOR crash. The run
    broke off before the marker, so the record of the create under way stays (it is what lets the next run adopt an
    unmarked service its own Create left), and the next create, finding no service, makes it again and marks it."""
    place_program(tmp_path)
    fs = WindowsFs(tmp_path)
    spec = spec_of() | {"create": True}
    real_create = scm.create

    def create_then_deleted(state_dir: Path, **values: object) -> scm.Service:
        service = real_create(state_dir, **values)  # type: ignore[arg-type]
        scm.admin_delete_service(state_dir, service.name)
        return service

    monkeypatch.setattr(scm, "create", create_then_deleted)
    broken = windows_service.set_(fs, spec)
    monkeypatch.undo()
    assert not broken.ok and broken.error is not None
    key = "HKLM:\\SYSTEM\\CurrentControlSet\\Services\\UsercubeAgent"
    assert broken.error == {
        "id": "UnexpectedError",
        "category": "ObjectNotFound",
        "message": f"Cannot find path '{key}' because it does not exist.",
        "property": None,
    }
    assert [r["name"] for r in ownership.records(fs, windows_service.CREATING_FOLDER)] == ["UsercubeAgent"]

    created = windows_service.set_(fs, spec)
    assert created.ok and created.state["owner_marker"] == OWNER, created.error
    assert ownership.records(fs, windows_service.CREATING_FOLDER) == []


def test_a_value_written_under_the_key_of_a_missing_service_is_item_not_found(tmp_path: Path) -> None:
    """Review S2 (service6): scm.set_key_value models New-ItemProperty on HKLM:\\...\\Services\\<name>: with the service
    (and so its key) gone it raises what PowerShell raises, ItemNotFoundException with its message."""
    with pytest.raises(scm.RegistryKeyNotFound) as missing:
        scm.set_key_value(tmp_path, "Nowhere", windows_service.OWNER_MARKER, OWNER)
    key = "HKLM:\\SYSTEM\\CurrentControlSet\\Services\\Nowhere"
    assert str(missing.value) == f"Cannot find path '{key}' because it does not exist."
    assert missing.value.category == "ObjectNotFound"
    new(tmp_path, "Somewhere")
    scm.set_key_value(tmp_path, "somewhere", windows_service.OWNER_MARKER, OWNER)  # key names are case-insensitive
    assert scm.get(tmp_path, "Somewhere").key_values == {windows_service.OWNER_MARKER: OWNER}  # type: ignore[union-attr]


def set_knobs(state: Path, **knobs: object) -> None:
    (state / "_sim").mkdir(parents=True, exist_ok=True)
    (state / "_sim" / "knobs.json").write_text(json.dumps(knobs), encoding="utf-8")


def test_a_set_that_waited_for_the_owners_lock_behind_its_own_earlier_run_adopts_what_that_run_made(
    tmp_path: Path,
) -> None:
    """Review service6 S6-2 (a): `up` run again after its client was killed, while the first run's set.ps1 still holds
    the owners lock on the host and creates the service. The second run read the service as absent before the lock;
    decided on that reading it would call Create, get 23 and refuse its own service. It reads again under the lock,
    finds its own marker, and has nothing left to do."""
    place_program(tmp_path)
    fs = WindowsFs(tmp_path)
    spec = spec_of() | {"create": True}
    set_knobs(tmp_path, service_set_lock_waits=[{"on": spec["name"]}])
    waited = windows_service.set_(fs, spec)
    assert waited.ok, waited.error
    assert waited.changed is False and waited.state["owner_marker"] == OWNER
    assert ownership.records(fs, windows_service.CREATING_FOLDER) == []


def test_a_stale_record_never_adopts_another_stacks_service_read_before_its_marker(tmp_path: Path) -> None:
    """Review service6 S6-2 (b): this stack holds a stale record of a create under way for the name (a run of its own
    broken off long ago, before its Create). Stack X has just created the service with the very same values and holds
    the owners lock until its marker is written. Read before the lock, X's service is unmarked and as this stack's
    Create would make it: decided on that reading, this stack would adopt it and overwrite X's marker. Read under the
    lock, it carries X's marker and is refused, X's marker kept."""
    place_program(tmp_path)
    fs = WindowsFs(tmp_path)
    spec = spec_of() | {"create": True}
    other = "organization/other-stack/prod/windows:WindowsService::agent-service"
    windows_service.write_creating_record(fs, spec["name"], OWNER)  # this stack's stale record
    windows_service.write_creating_record(fs, spec["name"], other)  # X's record, written before its Create
    left = {"name": spec["name"], "display_name": spec["display_name"], "image_path": spec["image_path"]}
    scm.create(tmp_path, **left, start_mode="Auto", start_name="LocalSystem", password=None)  # X's Create
    set_knobs(tmp_path, service_set_lock_waits=[{"on": spec["name"], "owner": other}])  # X goes on, holding the lock
    refused = windows_service.set_(fs, spec)
    assert not refused.ok and refused.error is not None
    assert (refused.error["id"], refused.error["property"]) == ("ServiceExists", "name")
    assert f"carries the ownership marker of '{other}'" in refused.error["message"]
    service = scm.get(tmp_path, spec["name"])
    assert service is not None and service.key_values == {windows_service.OWNER_MARKER: other}, "X's marker kept"


def test_a_record_that_cannot_be_deleted_after_a_refused_create_is_named_in_the_create_error(tmp_path: Path) -> None:
    """Review service6 S6-5: Create answered 23 (a hand install raced it), and the record of the create under way
    cannot be deleted (an antivirus scan holds the new file open: a sharing violation). The error stays Create's own
    (ServiceExists, with its return value), and says that the record stayed, where it is and that it must go: left
    there, it makes the next create adopt the hand install as the service its own Create left."""
    place_program(tmp_path)
    fs = WindowsFs(tmp_path)
    spec = spec_of() | {"create": True}
    record = ownership.record_path(windows_service.CREATING_FOLDER, OWNER)
    set_knobs(tmp_path, service_create_races=[{"on": spec["name"]}], files_held_open=[record])
    raced = windows_service.set_(fs, spec)
    assert not raced.ok and raced.error is not None
    assert (raced.error["id"], raced.error["property"]) == ("ServiceExists", "name")
    message = raced.error["message"]
    assert message.startswith("Win32_Service.Create returned 23: The specified service already exists. (1073)")
    assert f"could not be deleted (The process cannot access the file '{record}' because it is being used" in message
    assert f"delete {record} by hand before the next `up`" in message
    assert [r["name"] for r in ownership.records(fs, windows_service.CREATING_FOLDER)] == ["UsercubeAgent"]

    set_knobs(tmp_path)  # the scan is over, and the file deleted as the message says
    fs.resolve(record).unlink()
    again = windows_service.set_(fs, spec)
    assert not again.ok and again.error is not None and again.error["id"] == "ServiceExists"
    assert "carries no ownership marker" in again.error["message"]

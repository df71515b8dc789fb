"""SIMULATOR: the host-lock review's findings (notes/review-owed.md section C: C1 squatted mutex names, C2
SettingsFile under the DACL lock, C3 the wait, C5 the parameter) as simulator behaviour: the unfixed script is
refused or the unfixed model fails, the fixed one passes (no WinRM)."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from devhost import accounts, iis, named_mutex, ntfs, ps51
from devhost.fs import WindowsFs
from devhost.ops import SCRIPT_FACTS, dacl_lock, file_acl, iis_default_site_removal, ownership, settings_file
from providers.file_acl.model import FileAclModel
from providers.scripting.host_locks import dacl_lock_wait_ms
from providers.scripting.runner import ScriptRef, render_script
from providers.settings_file.model import SettingsFileModel
from providers.transport.connection import HostConnection
from tests.devhost.test_iis_model import removal_spec
from tests.devhost.test_ntfs_model import acl_spec

AGENT = "CONTOSO\\svc-agent"  # the agent's own identity: a local non-admin account that can create Global\ names
SETTINGS = "C:\\im\\Runtime\\appsettings.agent.json"


def script(resource: str, operation: str) -> str:
    return render_script(ScriptRef(f"providers.{resource}", operation))


def refused(op: str, text: str) -> list[str]:
    return ps51.check_script(SCRIPT_FACTS, op, text)


def acl_host(tmp_path: Path) -> tuple[WindowsFs, str]:
    (tmp_path / "C" / "im").mkdir(parents=True)
    agent = accounts.add_account(tmp_path, AGENT, "user", "pw")
    return WindowsFs(tmp_path), agent.sid


def without_owner_check(text: str) -> str:
    old = re.sub(
        r"\n    if \(\$null -ne \$untrusted\) \{\n        \$mutex\.Dispose\(\)\n"
        r"        Stop-HostMutexUntrusted [^\n]*\n    \}",
        "",
        text,
    )
    assert old != text
    return old


# -- C1: a non-admin creates the Global\ name first ------------------------------------------------------


def test_c1_a_dacl_mutex_squatted_by_the_agents_account_stops_file_acl_with_host_lock_untrusted(
    tmp_path: Path,
) -> None:
    fs, agent_sid = acl_host(tmp_path)
    named_mutex.admin_squat(tmp_path, dacl_lock.DACL_MUTEX, agent_sid)
    before = ntfs.NtfsStore(tmp_path).descriptor("C:\\im")
    result = file_acl.set_(fs, acl_spec("C:\\im", AGENT))
    assert not result.ok and result.error is not None
    assert result.error["id"] == "HostLockUntrusted" and result.error["property"] == "path"
    message = result.error["message"]
    assert "Global\\UsercubeIac.FileAcl.Dacl" in message and agent_sid in message
    assert "handle.exe" in message and "end it, and run again" in message
    assert ntfs.NtfsStore(tmp_path).descriptor("C:\\im") == before, "nothing written under a lock not ours"
    # The fix the message gives: the squatting process ends, the name is free, the next run works.
    named_mutex.admin_end_squatter(tmp_path, dacl_lock.DACL_MUTEX)
    assert file_acl.set_(fs, acl_spec("C:\\im", AGENT)).ok
    assert refused("file_acl/set", without_owner_check(script("file_acl", "set")))
    assert refused("file_acl/set", script("file_acl", "set")) == []


def test_c1_a_name_held_by_another_kind_of_object_or_denying_the_administrators_is_refused(tmp_path: Path) -> None:
    fs, agent_sid = acl_host(tmp_path)
    named_mutex.admin_squat(tmp_path, dacl_lock.DACL_MUTEX, agent_sid, kind="event")
    event = file_acl.set_(fs, acl_spec("C:\\im", AGENT))
    assert event.error is not None and event.error["id"] == "HostLockUntrusted"
    assert "another kind of named object" in event.error["message"]
    named_mutex.admin_squat(tmp_path, dacl_lock.DACL_MUTEX, agent_sid, admins_may_open=False)
    denied = file_acl.set_(fs, acl_spec("C:\\im", AGENT))
    assert denied.error is not None and denied.error["id"] == "AclLockDenied"
    assert "took the name first" in denied.error["message"] and "handle.exe" in denied.error["message"]


def test_c1_a_mutex_the_administrators_own_is_trusted(tmp_path: Path) -> None:
    # E.g. left open by another administrator's deployment: its creator's token owner is Administrators.
    fs, _ = acl_host(tmp_path)
    named_mutex.admin_squat(tmp_path, dacl_lock.DACL_MUTEX, "S-1-5-32-544")
    assert file_acl.set_(fs, acl_spec("C:\\im", AGENT)).ok


def test_c1_the_owners_lock_is_checked_too(tmp_path: Path) -> None:
    iis.ensure_installed(tmp_path)
    agent = accounts.add_account(tmp_path, AGENT, "user", "pw")
    named_mutex.admin_squat(tmp_path, ownership.OWNERS_MUTEX, agent.sid)
    result = iis_default_site_removal.set_(WindowsFs(tmp_path), removal_spec())
    assert not result.ok and result.error is not None and result.error["id"] == "HostLockUntrusted"
    assert "Global\\UsercubeIac-Owners" in result.error["message"]
    assert iis.ServerManager(tmp_path).find_site(iis.DEFAULT_SITE) is not None, "nothing decided"
    assert refused("certificate/set", without_owner_check(script("certificate", "set")))


def test_l3_a_failure_to_read_the_mutex_owner_disposes_it_and_the_identity_is_disposed() -> None:
    # review-locks L3: only UnauthorizedAccessException was caught around GetAccessControl, so any other error
    # (an IOException of GetSecurityInfo) left Enter-HostMutex with the mutex never disposed.
    fixed = script("file_acl", "set")
    leaky = re.sub(
        r"    try \{\n        (\$untrusted = Get-HostMutexUntrustedReason \$mutex)\n"
        r"    \} catch \{\n[\s\S]*?\n    \}\n",
        r"    \1\n",
        fixed,
        count=1,
    )
    assert leaky != fixed and refused("file_acl/set", leaky)
    kept_identity = fixed.replace(
        "    try { $self = $identity.User.Value } finally { $identity.Dispose() }", "    $self = $identity.User.Value"
    )
    assert kept_identity != fixed and refused("file_acl/set", kept_identity)
    assert refused("file_acl/set", fixed) == []


# -- C2: SettingsFile's DACL writes take the FileAcl lock -------------------------------------------------


def settings_spec(readers: list[str] | None) -> dict[str, Any]:
    return {"path": SETTINGS, "content": "{}", "encoding": "utf-8", "keep_backup": False, "readers": readers}


def test_c2_a_settings_file_permission_repair_waits_for_a_file_acl_change_in_progress(tmp_path: Path) -> None:
    fs, _ = acl_host(tmp_path)
    assert settings_file.set_(fs, settings_spec(None)).ok  # an install from before: the file inherits
    results: list[Any] = []
    repair = threading.Thread(target=lambda: results.append(settings_file.set_(fs, settings_spec([AGENT]))))
    # A FileAcl change of C:\im holds the lock while it pushes its entries down the tree.
    with named_mutex.held(tmp_path, dacl_lock.DACL_MUTEX, 1):
        repair.start()
        time.sleep(0.3)
        assert repair.is_alive(), "the repair must not write the file's DACL while the lock is held"
        assert not ntfs.NtfsStore(tmp_path).descriptor(SETTINGS).protected
    repair.join()
    assert results[0].ok, results[0].error
    assert ntfs.NtfsStore(tmp_path).descriptor(SETTINGS).protected
    journal = (tmp_path / "_sim" / "journal.jsonl").read_text(encoding="utf-8")
    assert any(
        json.loads(line).get("kind") == "mutex_wait" and json.loads(line)["name"] == dacl_lock.DACL_MUTEX
        for line in journal.splitlines()
    )
    fixed = script("settings_file", "set")
    old = fixed.replace(
        "    $daclLock = Enter-DaclLock\n    try {\n        if (-not $aclOk) { Set-ProtectedAcl $path $readerSids }",
        "    try {\n        if (-not $aclOk) { Set-ProtectedAcl $path $readerSids }",
    )
    assert old != fixed and refused("settings_file/set", old)
    assert refused("settings_file/set", fixed) == []


# -- C3: the wait ------------------------------------------------------------------------------------------


def test_c3_the_dacl_lock_waits_300_s_at_the_default_command_timeout() -> None:
    default = HostConnection(host="agent01", username="deploy", password="x")
    assert default.command_timeout_s == 600 and dacl_lock_wait_ms(default) == 300_000, "a margin for the work itself"
    for operation in ("file_acl/set", "file_acl/remove", "settings_file/set"):
        resource, verb = operation.split("/")
        fixed = script(resource, verb)
        assert "$DaclLockWaitMs = 300000" in fixed  # an input without dacl_lock_wait_ms
        assert refused(operation, fixed.replace("$DaclLockWaitMs = 300000", "$DaclLockWaitMs = 30000"))


def test_c3_a_holder_past_the_wait_ends_with_acl_busy_naming_the_wait(tmp_path: Path) -> None:
    fs, _ = acl_host(tmp_path)
    with named_mutex.held(tmp_path, dacl_lock.DACL_MUTEX, 1):
        busy = file_acl.set_(fs, {**acl_spec("C:\\im", AGENT), "dacl_lock_wait_ms": 200})
    assert (
        busy.error is not None and busy.error["id"] == "AclBusy" and "FileAcl or SettingsFile" in busy.error["message"]
    )
    assert "waited 0.2 s" in busy.error["message"] and "command_timeout_s" in busy.error["message"]


def test_k5_acl_busy_advises_raising_command_timeout_s_only_below_the_300_s_cap(tmp_path: Path) -> None:
    # review-locks2 K5: at the cap (the default command_timeout_s, or an input without the key) raising it changes
    # nothing, so AclBusy says only "run again" there.
    assert dacl_lock.fix({"dacl_lock_wait_ms": 299_999}) == dacl_lock.FIX
    assert dacl_lock.fix({"dacl_lock_wait_ms": 300_000}) == "run again"
    assert dacl_lock.fix({}) == "run again"
    for operation in ("file_acl/set", "settings_file/set"):
        fixed = script(*operation.split("/"))
        assert refused(operation, fixed) == []
        unfixed = fixed.replace("-Fix $DaclLockFix)", "-Fix '" + dacl_lock.FIX.replace("'", "''") + "')")
        assert unfixed != fixed and refused(operation, unfixed)


# -- L1 (notes/review-locks.md): one wait per operation, tied to command_timeout_s -------------------------


def connection(command_timeout_s: int) -> dict[str, Any]:
    return {"host": "agent01", "username": "deploy", "password": "x", "command_timeout_s": command_timeout_s}


@pytest.mark.parametrize(
    ("command_timeout_s", "wait_ms"), [(1, 500), (3, 1500), (20, 10_000), (600, 300_000), (3600, 300_000)]
)
def test_l1_the_dacl_lock_wait_in_the_script_input_is_half_of_command_timeout_s_300_s_at_most(
    command_timeout_s: int, wait_ms: int
) -> None:
    settings = SettingsFileModel.model_validate({"connection": connection(command_timeout_s), **settings_spec([AGENT])})
    entry = FileAclModel.model_validate(
        {"connection": connection(command_timeout_s), "path": "C:\\im", "principal": AGENT, "rights": ["Read"]}
    )
    assert settings.script_input()["dacl_lock_wait_ms"] == wait_ms
    assert entry.script_input()["dacl_lock_wait_ms"] == wait_ms  # FileAcl get, set and remove (delete adds a key)


def test_l1_a_short_command_timeout_ends_a_settings_file_set_with_acl_busy_before_the_client_gives_up(
    tmp_path: Path,
) -> None:
    fs, _ = acl_host(tmp_path)
    assert settings_file.set_(fs, settings_spec(None)).ok  # inherits: set must protect it, under the lock
    payload = SettingsFileModel.model_validate({"connection": connection(1), **settings_spec([AGENT])}).script_input()
    with named_mutex.held(tmp_path, dacl_lock.DACL_MUTEX, 1):  # a FileAcl change that does not end
        started = time.monotonic()
        busy = settings_file.set_(fs, payload)
        waited = time.monotonic() - started
    assert busy.error is not None and busy.error["id"] == "AclBusy" and busy.error["property"] == "path"
    assert "waited 0.5 s" in busy.error["message"] and "command_timeout_s" in busy.error["message"]
    assert 0.4 < waited < 1.0, "within command_timeout_s=1"
    assert not ntfs.NtfsStore(tmp_path).descriptor(SETTINGS).protected, "nothing written without the lock"


def test_l1_a_settings_file_set_takes_the_dacl_lock_once_for_the_file_and_its_backup(
    tmp_path: Path, monkeypatch: Any
) -> None:
    fs, _ = acl_host(tmp_path)
    unprotected = {**settings_spec(None), "keep_backup": True}
    assert settings_file.set_(fs, {**unprotected, "content": "v1"}).ok
    assert settings_file.set_(fs, {**unprotected, "content": "v2"}).ok  # '<path>.bak' holds v1, inheriting too
    taken: list[str] = []
    real_held = named_mutex.held

    def counting_held(state_dir: Path, name: str, timeout_s: float) -> Any:
        taken.append(name)
        return real_held(state_dir, name, timeout_s)

    monkeypatch.setattr(named_mutex, "held", counting_held)
    repaired = settings_file.set_(fs, {**unprotected, "content": "v2", "readers": [AGENT]})
    assert repaired.ok, repaired.error
    assert {c["property"] for c in repaired.changes} == {"readers", "backup_readers"}, "both files repaired"
    assert ntfs.NtfsStore(tmp_path).descriptor(SETTINGS).protected
    assert ntfs.NtfsStore(tmp_path).descriptor(SETTINGS + ".bak").protected
    assert taken == [dacl_lock.DACL_MUTEX], "one Enter-DaclLock, so one wait, for both files"
    # The script the model stands for: a lock per Set-ProtectedAcl (the reviewed version) is refused.
    fixed = script("settings_file", "set")
    twice = fixed.replace(
        "    $file = New-Object System.IO.FileInfo($Path)\n",
        "    $file = New-Object System.IO.FileInfo($Path)\n    $daclLock = Enter-DaclLock\n",
    )
    assert twice != fixed and refused("settings_file/set", twice)


# -- C5: no parameter assigned to itself -------------------------------------------------------------------


def test_c5_get_file_acl_state_takes_the_resolved_principal_by_its_own_name() -> None:
    text = script("file_acl", "get")
    assert "function Get-FileAclState($Spec, $Resolved = $null)" in text
    assert not re.search(r"(?i)\$principal = \$principal\b", text)


@pytest.mark.parametrize("op", ["runtime_archive/chunk", "certificate/set"])
def test_planted_entries_are_taken_as_the_list_they_are(op: str) -> None:
    # Get-PlantedEntries writes its list as one object (return , $found.ToArray()); @() around the call made it a
    # one-element array, so Remove-PlantedEntry's [string] got every planted path joined into one and, once two
    # entries were planted, deleted none of them. The model deletes each: the unfixed text is refused.
    resource, operation = op.split("/")
    text = script(resource, operation)
    fixed = ("$planted = Get-PlantedEntries $path", "foreach ($entry in (Get-PlantedEntries $path))")
    assert all(part in text for part in fixed)
    assert refused(op, text) == []
    assert refused(op, text.replace(fixed[0], "$planted = @(Get-PlantedEntries $path)")) != []
    assert refused(op, text.replace(fixed[1], "foreach ($entry in @(Get-PlantedEntries $path))")) != []

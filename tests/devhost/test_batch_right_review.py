"""SIMULATOR: the batch-logon-right review's findings (notes/review-batchright.md BR1, BR2, BR4, BR6, BR7) as
simulator behaviour: the unfixed script is refused or fails, the fixed one passes (no WinRM)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from devhost import accounts, iis, lsa, ps51
from devhost.fs import WindowsFs
from devhost.ops import SCRIPT_FACTS, iis_app_pool, windows_service
from providers.scripting.runner import ScriptRef, render_script
from tests.devhost.test_iis_model import pool_spec
from tests.devhost.test_scm_model import place_program, spec_of


def script(resource: str, operation: str) -> str:
    return render_script(ScriptRef(f"providers.{resource}", operation))


def refused(op: str, text: str) -> list[str]:
    return ps51.check_script(SCRIPT_FACTS, op, text)


def user_pool(name: str = "Uc") -> dict[str, object]:
    return pool_spec(name, identity_type="SpecificUser", identity_user="CONTOSO\\svc-im", identity_password="pw-1")


def test_br2_with_manual_group_membership_iis_iusrs_does_not_count_and_the_account_is_granted(
    tmp_path: Path,
) -> None:
    iis.ensure_installed(tmp_path)
    account = accounts.add_account(tmp_path, "CONTOSO\\svc-im", "user", "pw-1")
    assert lsa.holds(tmp_path, accounts.IIS_IUSRS, lsa.BATCH_LOGON_RIGHT), "IIS setup gives IIS_IUSRS the right"
    # Set in applicationPoolDefaults: the pool does not exist yet, so set must read the defaults.
    iis.admin_set_pool_default(tmp_path, "processModel/manualGroupMembership", "true")
    fs = WindowsFs(tmp_path)
    created = iis_app_pool.set_(fs, user_pool())
    assert created.ok, created.error
    assert created.state["state"] == "Started" and created.state["batch_logon_right"] is True
    assert {"property": "logon_right", "before": None, "after": "SeBatchLogonRight"} in created.changes
    assert lsa.rights_of(tmp_path, account.sid) == ["SeBatchLogonRight"]
    # The unfixed construct counted IIS_IUSRS whatever the pool says: refused.
    old = script("iis_app_pool", "get").replace(
        "if (Test-AccountRight $Sid $BatchLogonRight) { return $true }\n"
        "        return ((-not $ManualGroupMembership) -and (Test-AccountRight $IisIusrsSid $BatchLogonRight))",
        "return ((Test-AccountRight $Sid $BatchLogonRight) -or (Test-AccountRight $IisIusrsSid $BatchLogonRight))",
    )
    assert old != script("iis_app_pool", "get") and refused("iis_app_pool/get", old)


def test_br2_a_pool_switched_to_manual_group_membership_shows_drift_and_set_repairs_it(tmp_path: Path) -> None:
    iis.ensure_installed(tmp_path)
    account = accounts.add_account(tmp_path, "CONTOSO\\svc-im", "user", "pw-1")
    fs = WindowsFs(tmp_path)
    assert iis_app_pool.set_(fs, user_pool()).ok
    assert lsa.rights_of(tmp_path, account.sid) == [], "IIS_IUSRS's right is enough while WAS adds the group"
    iis.admin_set_pool_attribute(tmp_path, "Uc", "processModel/manualGroupMembership", "true")
    # WAS no longer adds IIS_IUSRS to the token: the next worker cannot log on (1385).
    manager = iis.ServerManager(tmp_path)
    manager.stop_pool("Uc")
    assert manager.start_pool("Uc") == "Stopped"
    assert iis_app_pool.get(fs, user_pool()).state["batch_logon_right"] is False
    repaired = iis_app_pool.set_(fs, user_pool())
    assert repaired.ok, repaired.error
    assert repaired.state["state"] == "Started" and repaired.state["batch_logon_right"] is True
    assert lsa.rights_of(tmp_path, account.sid) == ["SeBatchLogonRight"]


def test_br2_lsa_refusing_the_grant_says_iis_iusrs_does_not_count(tmp_path: Path) -> None:
    iis.ensure_installed(tmp_path)
    accounts.add_account(tmp_path, "CONTOSO\\svc-im", "user", "pw-1")
    iis.admin_set_pool_default(tmp_path, "processModel/manualGroupMembership", "true")
    (tmp_path / "_sim" / "knobs.json").write_text(json.dumps({"lsa_add_rights_error": 5}), encoding="utf-8")
    result = iis_app_pool.set_(WindowsFs(tmp_path), user_pool())
    assert not result.ok and result.error is not None
    assert result.error["id"] == "LogonRightNotGranted"
    assert "manualGroupMembership" in result.error["message"]


def test_br4_an_account_denied_the_batch_logon_is_refused_before_anything_changes(tmp_path: Path) -> None:
    iis.ensure_installed(tmp_path)
    account = accounts.add_account(tmp_path, "CONTOSO\\svc-im", "user", "pw-1")
    lsa.admin_grant_right(tmp_path, account.sid, lsa.DENY_BATCH_LOGON_RIGHT)
    before = iis.config_file(tmp_path).read_bytes()
    result = iis_app_pool.set_(WindowsFs(tmp_path), user_pool())
    assert not result.ok and result.error is not None
    assert result.error["id"] == "LogonRightDenied" and result.error["property"] == "identity_user"
    message = result.error["message"]
    assert "SeDenyBatchLogonRight" in message and "CONTOSO\\svc-im" in message and "secpol.msc" in message
    assert lsa.rights_of(tmp_path, account.sid) == [lsa.DENY_BATCH_LOGON_RIGHT], "no grant the deny overrides"
    assert iis.config_file(tmp_path).read_bytes() == before, "the pool is not created"
    old = script("iis_app_pool", "set").replace("if (Test-BatchLogonDenied $Account $Sid) {", "if ($false) {")
    assert refused("iis_app_pool/set", old)


def test_br4_a_deny_given_after_the_deployment_shows_as_drift(tmp_path: Path) -> None:
    iis.ensure_installed(tmp_path)
    account = accounts.add_account(tmp_path, "CONTOSO\\svc-im", "user", "pw-1")
    fs = WindowsFs(tmp_path)
    assert iis_app_pool.set_(fs, user_pool()).ok
    lsa.admin_grant_right(tmp_path, account.sid, lsa.DENY_BATCH_LOGON_RIGHT)
    manager = iis.ServerManager(tmp_path)
    manager.stop_pool("Uc")
    assert manager.start_pool("Uc") == "Stopped", "the deny overrides IIS_IUSRS's right (1385)"
    assert iis_app_pool.get(fs, user_pool()).state["batch_logon_right"] is False
    old = script("iis_app_pool", "get").replace(
        " -and\n            -not (Test-BatchLogonDenied $account $state.identity_sid))", ")"
    )
    assert old != script("iis_app_pool", "get") and refused("iis_app_pool/get", old)


def test_br6_lsa_errors_carry_the_win32_code(tmp_path: Path) -> None:
    iis.ensure_installed(tmp_path)
    lsa.admin_revoke_right(tmp_path, accounts.IIS_IUSRS, lsa.BATCH_LOGON_RIGHT)
    accounts.add_account(tmp_path, "CONTOSO\\svc-im", "user", "pw-1")
    (tmp_path / "_sim" / "knobs.json").write_text(json.dumps({"lsa_add_rights_error": 5}), encoding="utf-8")
    pool = iis_app_pool.set_(WindowsFs(tmp_path), user_pool())
    assert pool.error is not None and "Access is denied. (Win32 5)" in pool.error["message"]
    place_program(tmp_path)
    accounts.add_account(tmp_path, "CONTOSO\\svc-uc", "user", "pw-1")
    service = windows_service.set_(WindowsFs(tmp_path), spec_of(account="CONTOSO\\svc-uc", password="pw-1"))
    assert service.error is not None and "Access is denied. (Win32 5)" in service.error["message"]
    # Both scripts word it through Get-LsaErrorText, which appends NativeErrorCode.
    assert "(Win32 $($inner.NativeErrorCode))" in script("iis_app_pool", "set")
    for resource in ("iis_app_pool", "windows_service"):
        assert "failed: $(Get-InnermostMessage" not in script(resource, "set")


def test_br1_add_type_losing_the_race_to_a_parallel_request_checks_the_type_again() -> None:
    fixed = script("iis_app_pool", "get")
    old = fixed.replace(
        "    try {\n        Add-Type -TypeDefinition $AccountRightsSource\n    } catch {\n"
        "        if (-not ('UsercubeIac.AccountRights' -as [type])) { throw }\n    }\n",
        "    Add-Type -TypeDefinition $AccountRightsSource\n",
    )
    assert old != fixed and refused("iis_app_pool/get", old)
    assert refused("iis_app_pool/get", fixed) == []


def test_br7_get_innermost_message_is_defined_once_in_every_script() -> None:
    definition = re.compile(r"^function Get-InnermostMessage\b", re.MULTILINE)
    for resource, operation in (("agent_verification", "get"), ("iis_app_pool", "set"), ("windows_service", "set")):
        assert len(definition.findall(script(resource, operation))) == 1, (resource, operation)
    for path in Path("providers").rglob("*.ps1"):
        if path.name != "_errors.ps1":
            assert not definition.search(path.read_text(encoding="utf-8")), path

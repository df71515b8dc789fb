"""IisAppPool through the real Pulumi CLI against the host under test (simulated unless configured).

The helpers at the top are shared by the other IIS engine tests.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import pulumi
import pytest

from devhost import accounts, iis, lsa
from providers.iis_app_pool import IisAppPool, IisAppPoolModel
from providers.scripting.runner import ScriptRef, run_script
from providers.transport.connection import HostConnection
from tests.support.engine import EngineStack
from tests.support.hosts import Target

pytestmark = pytest.mark.engine

Engine = Callable[[Callable[[], None]], EngineStack]
BUNDLE = "8.0.11"


def install_iis(target: Target) -> None:
    """On the simulator, IIS then the hosting bundle (what WindowsFeature and the bundle installer do);
    a real host is assumed to have both."""
    if target.simulated:
        assert target.state_dir is not None
        iis.ensure_installed(target.state_dir)
        iis.install_hosting_bundle(target.state_dir, BUNDLE)


@pytest.fixture(autouse=True)
def _iis(target: Target) -> None:
    install_iis(target)


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def secret_connection(target: Target) -> dict[str, Any]:
    return {**target.connection, "password": pulumi.Output.secret(target.connection["password"])}


def changed_properties(diff: str) -> set[str]:
    """Property names of the '~ name: old => new' lines of `preview --diff` (not nested keys)."""
    return set(re.findall(r"(?:^|\s)[~+-] ([a-z_]+)\s*: ", diff))


def host_state(target: Target, package: str, payload: dict[str, Any]) -> dict[str, Any]:
    """What a resource's get script reports (as refresh sees it)."""
    conn = HostConnection.model_validate(target.connection)
    return run_script(conn, ScriptRef(package, "get"), payload, resource="test").state


def pool_on_host(target: Target, name: str) -> dict[str, Any]:
    spec = IisAppPoolModel.model_validate({"connection": target.connection, "name": name})
    return host_state(target, "providers.iis_app_pool", spec.script_input())


def pool_program(target: Target, pools: dict[str, dict[str, Any]]) -> Callable[[], None]:
    """One IisAppPool per entry of ``pools`` (resource name -> inputs), read at each run."""

    def program() -> None:
        for resource_name, desired in pools.items():
            pool = IisAppPool(resource_name, connection=secret_connection(target), **desired)
            pulumi.export(f"{resource_name}-account", pool.identity_account)
            pulumi.export(f"{resource_name}-sid", pool.identity_sid)

    return program


def test_create_no_op_then_each_property_is_an_in_place_update(target: Target, engine: Engine) -> None:
    desired: dict[str, Any] = {"name": unique("UcPool")}
    stack = engine(pool_program(target, {"pool": desired}))
    created = stack.up()
    assert created.ok, created.output
    assert created.summary.get("create") == 2
    on_host = pool_on_host(target, desired["name"])
    assert on_host["managed_runtime_version"] == "" and on_host["start_mode"] == "AlwaysRunning"
    assert on_host["idle_timeout_minutes"] == 0 and on_host["periodic_restart_minutes"] == 0
    assert on_host["load_user_profile"] is True and on_host["state"] == "Started"
    assert stack.outputs()["pool-account"] == f"IIS APPPOOL\\{desired['name']}"
    assert stack.outputs()["pool-sid"].startswith("S-1-5-82-")

    mark = target.journal_mark() if target.simulated else 0
    again = stack.up()
    assert again.ok and again.summary == {"same": 2}, again.output
    if target.simulated:
        assert target.operations_since(mark) == [], "a no-op up must not run set"

    updates = {
        "managed_runtime_version": "v4.0",
        "pipeline_mode": "Classic",
        "start_mode": "OnDemand",
        "idle_timeout_minutes": 20,
        "load_user_profile": False,
        "periodic_restart_minutes": 1740,
        "state": "Stopped",
    }
    for prop, value in updates.items():
        desired[prop] = value
        preview = stack.preview(diff=True)
        assert preview.ok, preview.output
        assert changed_properties(preview.stdout) == {prop}, preview.stdout
        del desired[prop]
    desired.update(updates)
    applied = stack.up()
    assert applied.ok and applied.summary.get("update") == 1, applied.output
    assert {k: pool_on_host(target, desired["name"])[k] for k in updates} == updates

    destroyed = stack.destroy()
    assert destroyed.ok, destroyed.output
    assert pool_on_host(target, desired["name"])["ensure"] == "absent"


def test_drift_found_by_refresh_and_repaired_by_up(simulated: Target, engine: Engine) -> None:
    assert simulated.state_dir is not None
    desired: dict[str, Any] = {"name": unique("UcPool")}
    stack = engine(pool_program(simulated, {"pool": desired}))
    assert stack.up().ok
    assert stack.refresh(expect_no_changes=True).ok

    iis.admin_set_pool_attribute(simulated.state_dir, desired["name"], "processModel/idleTimeout", "00:20:00")
    iis.admin_set_state(simulated.state_dir, "pool", desired["name"], "Stopped")
    drift = stack.refresh(expect_no_changes=True)
    assert not drift.ok and "pool" in drift.output

    repaired = stack.up()
    assert repaired.ok and repaired.summary.get("update") == 1, repaired.output
    state = pool_on_host(simulated, desired["name"])
    assert state["idle_timeout_minutes"] == 0 and state["state"] == "Started"
    assert stack.refresh(expect_no_changes=True).ok
    assert stack.destroy().ok


def test_four_pools_in_one_up_all_commit(target: Target, engine: Engine) -> None:
    pools = {f"pool{i}": {"name": unique(f"UcPar{i}")} for i in range(4)}
    stack = engine(pool_program(target, pools))
    run = stack.up()
    assert run.ok, run.output
    assert run.summary.get("create") == 5
    assert all(pool_on_host(target, p["name"])["state"] == "Started" for p in pools.values())
    assert stack.destroy().ok
    assert all(pool_on_host(target, p["name"])["ensure"] == "absent" for p in pools.values())


def test_specific_user_password_is_secret_and_a_rotation_updates_once(simulated: Target, engine: Engine) -> None:
    assert simulated.state_dir is not None
    user = f"CONTOSO\\{unique('svc')}"
    first, second = f"Pw-{uuid.uuid4().hex}", f"Pw-{uuid.uuid4().hex}"
    accounts.add_account(simulated.state_dir, user, "user", password=first)
    desired: dict[str, Any] = {
        "name": unique("UcSvc"),
        "identity_type": "SpecificUser",
        "identity_user": user,
        "identity_password": first,
    }
    stack = engine(pool_program(simulated, {"pool": desired}))
    created = stack.up()
    assert created.ok, created.output
    assert stack.outputs()["pool-account"] == user
    assert first not in stack.export() and first not in stack.raw_state()
    assert first not in iis.config_file(simulated.state_dir).read_text()
    assert stack.refresh(expect_no_changes=True).ok, "the password is never read back as drift"

    accounts.add_account(simulated.state_dir, user, "user", password=second)  # rotated in the directory
    desired["identity_password"] = second
    preview = stack.preview(diff=True)
    # Pulumi shows secrets as [secret] on both sides: an update with no other property changed.
    assert "IisAppPool: (update)" in preview.stdout and changed_properties(preview.stdout) == set(), preview.stdout
    assert second not in preview.output
    rotated = stack.up()
    assert rotated.ok and rotated.summary.get("update") == 1, rotated.output
    assert stack.up().summary == {"same": 2}
    assert pool_on_host(simulated, desired["name"])["state"] == "Started"
    assert stack.destroy().ok


def test_gmsa_and_wrong_password(simulated: Target, engine: Engine) -> None:
    assert simulated.state_dir is not None
    gmsa = f"CONTOSO\\{unique('gm')}$"
    accounts.add_account(simulated.state_dir, gmsa, "gmsa")
    desired: dict[str, Any] = {"name": unique("UcGm"), "identity_type": "SpecificUser", "identity_user": gmsa}
    stack = engine(pool_program(simulated, {"pool": desired}))
    assert stack.up().ok
    assert pool_on_host(simulated, desired["name"])["identity_user"] == gmsa

    user = f"CONTOSO\\{unique('svc')}"
    accounts.add_account(simulated.state_dir, user, "user", password="Right-1")
    desired.update(identity_user=user, identity_password="Wrong-1")
    failed = stack.up()
    assert not failed.ok and "[AppPoolStartFailed]" in failed.output and "identity_password" in failed.output
    assert "Wrong-1" not in failed.output
    desired["identity_user"] = "CONTOSO\\nobody"
    unknown = stack.up()
    assert not unknown.ok and "[IdentityNotMapped]" in unknown.output and "identity_user" in unknown.output
    desired.update(identity_user=user, identity_password="Right-1")
    assert stack.up().ok
    assert stack.destroy().ok


def test_a_gpo_taking_batch_logon_from_iis_iusrs_is_drift_and_up_grants_it_to_the_account(
    simulated: Target, engine: Engine
) -> None:
    assert simulated.state_dir is not None
    state_dir = simulated.state_dir
    user = f"CONTOSO\\{unique('svc')}"
    password = f"Pw-{uuid.uuid4().hex}"
    account = accounts.add_account(state_dir, user, "user", password=password)
    name = unique("UcBatch")
    desired: dict[str, Any] = {
        "name": name,
        "identity_type": "SpecificUser",
        "identity_user": user,
        "identity_password": password,
    }
    stack = engine(pool_program(simulated, {"pool": desired}))
    assert stack.up().ok
    assert not lsa.holds(state_dir, account.sid, lsa.BATCH_LOGON_RIGHT), "IIS_IUSRS's right was enough"
    # A domain Group Policy sets "Log on as a batch job" without IIS_IUSRS (the simulator's user-right command).
    lsa.admin_revoke_right(state_dir, accounts.IIS_IUSRS, lsa.BATCH_LOGON_RIGHT)
    try:
        # The next worker process cannot log on (a recycle; here a restart by hand): WAS stops the pool.
        iis.admin_set_state(state_dir, "pool", name, "Stopped")
        iis.admin_set_state(state_dir, "pool", name, "Started")
        assert pool_on_host(simulated, name)["state"] == "Stopped"
        drift = stack.refresh(expect_no_changes=True)
        assert not drift.ok and "pool" in drift.output, drift.output
        assert stack.refresh().ok  # accept what the host has, to see which property drifted
        preview = stack.preview(diff=True)
        assert preview.ok and changed_properties(preview.stdout) == {"identity_user", "state"}, preview.stdout
        assert "Log on as a batch job" in preview.stdout and password not in preview.output
        simulated.set_knobs(lsa_add_rights_error=5)  # LSA refuses the grant: the error says what to do
        refused = stack.up()
        assert not refused.ok and "[LogonRightNotGranted]" in refused.output, refused.output
        assert "SeBatchLogonRight" in refused.output and user in refused.output and "secpol.msc" in refused.output
        simulated.set_knobs()
        repaired = stack.up()
        assert repaired.ok and repaired.summary.get("update") == 1, repaired.output
        assert lsa.holds(state_dir, account.sid, lsa.BATCH_LOGON_RIGHT)
        on_host = pool_on_host(simulated, name)
        assert on_host["state"] == "Started" and on_host["batch_logon_right"] is True
        assert stack.refresh(expect_no_changes=True).ok
    finally:
        simulated.set_knobs()
        lsa.grant_right(state_dir, accounts.IIS_IUSRS, lsa.BATCH_LOGON_RIGHT)  # the host is shared by the session
    assert stack.destroy().ok


BAD_POOLS: list[tuple[dict[str, Any], str, str]] = [
    ({"name": "Bad/Name"}, "name", "IIS refuses"),
    ({"name": "Pool:1"}, "name", "IIS refuses"),
    ({"name": " padded"}, "name", "leading or trailing spaces"),
    ({"idle_timeout_minutes": -1}, "idle_timeout_minutes", "greater than or equal to 0"),
    ({"managed_runtime_version": "v5.0"}, "managed_runtime_version", "v4.0"),
    ({"identity_type": "SpecificUser", "identity_user": "CONTOSO\\svc"}, "identity_password", "required"),
    (
        {"identity_type": "SpecificUser", "identity_user": "CONTOSO\\gm$", "identity_password": "x"},
        "group managed service account",
        "remove identity_password",
    ),
    ({"identity_password": "x"}, "identity_password", "SpecificUser only"),
    (
        {"identity_type": "SpecificUser", "identity_user": "svc-no-domain", "identity_password": "x"},
        "identity_user",
        "DOMAIN",
    ),
]


@pytest.mark.parametrize(
    ("inputs", "names", "message"), BAD_POOLS, ids=[b[1] + str(i) for i, b in enumerate(BAD_POOLS)]
)
def test_bad_input_is_refused_before_any_host_call(
    simulated: Target, engine: Engine, inputs: dict[str, Any], names: str, message: str
) -> None:
    desired = {"name": unique("UcBad"), **inputs}
    mark = simulated.journal_mark()
    run = engine(pool_program(simulated, {"pool": desired})).up()
    assert not run.ok
    assert names in run.output and message in run.output, run.output
    assert simulated.journal_since(mark) == []

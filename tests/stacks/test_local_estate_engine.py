"""The local estate (stacks/Pulumi.local.yaml) through the real CLI, on three SIMULATED hosts.

An integrated agent on `server`, production agents on `zone-a` (IIS) and `zone-b` (Windows
service under a gMSA): deployed, converged (a second `up` sends no command to any host),
changed one agent at a time (add, move to another host, remove), destroyed.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devhost import auth, iis, machine
from tests.support.estate import (
    AGENTS_KEY,
    HOSTS_KEY,
    LOCAL_HOST_PASSWORD,
    EstateProject,
    SimulatedEstate,
    start_estate_at,
)
from tests.support.hosts import Target

pytestmark = pytest.mark.engine

CONTOSO = "C:\\identitymanagerContoso"
FABRIKAM = "C:\\identitymanagerFabrikam"


def agents(config: dict[str, Any]) -> list[dict[str, Any]]:
    return list(config[AGENTS_KEY])


def test_local_stack_deploys_every_agent_on_every_host_then_changes_nothing(local: EstateProject) -> None:
    code, text = local.run("up")
    assert code == 0, text
    estate = local.estate
    server_settings = json.loads(estate.file("server", f"{CONTOSO}\\Runtime\\appsettings.json").read_text())
    assert server_settings["IdentityServer"]["X509StoreName"] == "My"
    zone_a = json.loads(estate.file("zone-a", f"{CONTOSO}\\Runtime\\appsettings.agent.json").read_text())
    assert zone_a["OpenId"]["AgentIdentifier"] == "Contoso-zone-a"
    assert zone_a["Connections"]["ADExport"]["Login"] == "CONTOSO\\svc-ad-export"
    services = json.loads(estate.simulator_file("zone-b", "services.json").read_text())
    accounts = [s["start_name"] for s in services if s["name"] == "IdentityManagerAgentContoso"]
    assert accounts == ["CONTOSO\\svc-agent-b$"]
    assert not estate.file("zone-b", f"{CONTOSO}\\Runtime\\web.config").exists()  # a service has no site

    exports = local.outputs()["agents"]
    assert sorted(exports) == ["server", "zone-a", "zone-b"]
    assert exports["zone-a"]["identityAccount"] == "IIS APPPOOL\\IdentityManagerAgentContoso"
    assert exports["zone-b"]["identityAccount"] == "CONTOSO\\svc-agent-b$"
    assert exports["server"]["xmlConfiguration"] == (
        '<Agent Identifier="Local" DisplayName_L1="Local" URI="https://identitymanager.contoso.example" />'
    )
    assert exports["zone-a"]["xmlConfiguration"] == (
        '<Agent Identifier="Contoso-zone-a" DisplayName_L1="Contoso-zone-a" '
        'URI="https://agent-zone-a.contoso.example" />'
    )
    assert len(exports["zone-a"]["encryptionCertificateThumbprint"]) == 40

    marks = estate.marks()
    code, again = local.run("up")
    assert code == 0, again
    assert "49 unchanged" in again  # 46, and the three agents' verifications
    assert estate.commands_since(marks) == {"server": 0, "zone-a": 0, "zone-b": 0}
    code, preview = local.run("preview", "--diff", "--expect-no-changes")
    assert code == 0, preview
    assert estate.commands_since(marks) == {"server": 0, "zone-a": 0, "zone-b": 0}
    for output in (text, again, preview):
        assert LOCAL_HOST_PASSWORD not in output
        assert base64.b64encode(LOCAL_HOST_PASSWORD.encode()).decode() not in output

    code, text = local.run("destroy")
    assert code == 0, text
    assert not estate.file("zone-a", f"{CONTOSO}\\Runtime\\appsettings.agent.json").exists()


def fabrikam_agent(config: dict[str, Any], host: str) -> dict[str, Any]:
    """A new production agent; its certificates are the server's (secrets kept encrypted as they are)."""
    server = next(agent for agent in agents(config) if agent["name"] == "server")
    zone_a = next(agent for agent in agents(config) if agent["name"] == "zone-a")
    return {
        "name": "zone-c",
        "kind": "production",
        "host": host,
        "organization": "Fabrikam",
        "hostName": "agent-zone-c.fabrikam.example",
        "sslCertificate": copy.deepcopy(server["sslCertificate"]),
        "encryptionCertificate": copy.deepcopy(server["encryptionCertificate"]),
        "settings": {
            "agentIdentifier": "Fabrikam-zone-c",
            "applicationUri": "https://identitymanager.contoso.example",
            "openIdClients": copy.deepcopy(zone_a["settings"]["openIdClients"]),
        },
    }


def changed_steps(local: EstateProject) -> list[tuple[str, str]]:
    """(operation, resource name) of every step `preview --json` proposes, the stack itself aside."""
    return sorted(
        (step["op"], step["urn"].rsplit("::", 1)[-1])
        for step in local.preview_steps()
        if not step["urn"].endswith("pulumi:pulumi:Stack::usercube-agents-local") and step["op"] != "same"
    )


def test_adding_moving_and_removing_an_agent_touch_only_that_agent(local: EstateProject) -> None:
    code, text = local.run("up")
    assert code == 0, text
    estate = local.estate

    # Add: only the new agent's resources are created (its host already has a baseline).
    config = local.config()
    config[AGENTS_KEY] = [*agents(config), fabrikam_agent(config, "zone-a")]
    local.write(config)
    steps = changed_steps(local)
    assert steps and all(op == "create" and name.startswith("zone-c") for op, name in steps), steps
    code, text = local.run("up")
    assert code == 0, text
    assert estate.file("zone-a", f"{FABRIKAM}\\Runtime\\appsettings.agent.json").exists()
    data = estate.file("zone-a", f"{FABRIKAM}\\Work\\provisioning-order.json")
    data.write_text('{"order": 1}')

    # Move to zone-b: the agent's resources are replaced (and zone-b gets the IIS baseline it lacked).
    config[AGENTS_KEY][-1]["host"] = "zone-b"
    local.write(config)
    steps = changed_steps(local)
    moved = [(op, name) for op, name in steps if name.startswith("zone-c")]
    assert moved and all(op == "replace" for op, _ in moved), steps
    assert all(name.startswith(("zone-c", "host-zone-b")) for _, name in steps), steps
    marks = estate.marks()
    code, text = local.run("up")
    assert code == 0, text
    assert estate.file("zone-b", f"{FABRIKAM}\\Runtime\\appsettings.agent.json").exists()
    assert not estate.file("zone-a", f"{FABRIKAM}\\Runtime\\appsettings.agent.json").exists()
    assert data.exists(), "the old host's data folders are kept"
    first_create = min(t for t, op in estate.operations("zone-b", marks["zone-b"]) if op.endswith("/set"))
    first_delete = min(t for t, op in estate.operations("zone-a", marks["zone-a"]) if op.endswith("/remove"))
    assert first_create < first_delete, "the new host is set up before the old one is cleared"

    # Remove: only its resources go (and zone-b's baseline, which no other IIS agent there needs).
    config[AGENTS_KEY] = config[AGENTS_KEY][:-1]
    local.write(config)
    steps = changed_steps(local)
    assert steps and all(op == "delete" and name.startswith(("zone-c", "host-zone-b")) for op, name in steps), steps
    code, text = local.run("up")
    assert code == 0, text
    assert not estate.file("zone-b", f"{FABRIKAM}\\Runtime\\appsettings.agent.json").exists()
    assert estate.file("zone-a", f"{CONTOSO}\\Runtime\\appsettings.agent.json").exists()
    code, text = local.run("destroy")
    assert code == 0, text


def assert_only_zone_a_updated(local: EstateProject) -> None:
    """The preview proposes updates only, and only to zone-a's resources (its agent's and its baseline's)."""
    steps = changed_steps(local)
    assert steps and {op for op, _ in steps} == {"update"}, steps
    assert all(name.startswith(("zone-a", "host-zone-a")) for _, name in steps), steps


def test_a_rotated_winrm_password_is_used_by_every_later_operation(local: EstateProject) -> None:
    """Issue 11: after the host's password and the stack's secret change, `up` records the new
    connection (an update that sends nothing to the host), and refresh and destroy then use it."""
    code, text = local.run("up")
    assert code == 0, text
    zone_a = local.estate.hosts["zone-a"]
    assert zone_a.state_dir is not None
    new_password = "Rotated-Only-Passw0rd-2"
    users = zone_a.state_dir / "_sim" / "users"
    auth.write_user(users, "administrator", new_password)
    try:
        local.set_secret("hosts.zone-a.password", new_password)
        assert_only_zone_a_updated(local)
        marks = local.estate.marks()
        code, text = local.run("up")
        assert code == 0, text
        assert local.estate.commands_since(marks)["zone-a"] == 0, "a new password changes nothing on the host"
        state = "\n".join(p.read_text(errors="replace") for p in local.backend.rglob("*") if p.is_file())
        assert new_password not in state, "the new password is in the state only encrypted"
        code, text = local.run("refresh", "--preview-only", "--expect-no-changes")
        assert code == 0, text
        code, text = local.run("destroy")
        assert code == 0, text
        assert new_password not in text
    finally:  # the simulated hosts are shared by this module's tests
        auth.write_user(users, "administrator", LOCAL_HOST_PASSWORD)


def test_a_new_winrm_user_changes_nothing_on_the_host_and_is_the_one_refresh_logs_on_with(
    local: EstateProject,
) -> None:
    """Issue 11 §1 (audit: only the password was tested): `hosts.zone-a.user` changed to another administrator of
    the same host is an update that sends nothing to it; the next refresh logs on as that user."""
    code, text = local.run("up")
    assert code == 0, text
    zone_a = local.estate.hosts["zone-a"]
    assert zone_a.state_dir is not None
    auth.write_user(zone_a.state_dir / "_sim" / "users", "deploy2", LOCAL_HOST_PASSWORD)
    config = local.config()
    config[HOSTS_KEY]["zone-a"]["user"] = "deploy2"
    local.write(config)
    assert_only_zone_a_updated(local)
    marks = local.estate.marks()
    code, text = local.run("up")
    assert code == 0, text
    assert local.estate.commands_since(marks) == {"server": 0, "zone-a": 0, "zone-b": 0}
    mark = zone_a.journal_mark()
    code, text = local.run("refresh", "--preview-only", "--expect-no-changes")
    assert code == 0, text
    users = {e["user"] for e in zone_a.journal_since(mark) if e.get("kind") == "create"}
    assert users == {"deploy2"}, users
    code, text = local.run("destroy")
    assert code == 0, text


def test_one_change_by_hand_shows_as_exactly_that_change(local: EstateProject) -> None:
    """Issue 7: the pool's idle time-out changed in IIS Manager on one host; the drift check and
    `preview --refresh` name that pool alone (an update, no replacement, no other resource), the
    drift check keeps reporting it until `up --refresh` repairs it."""
    code, text = local.run("up")
    assert code == 0, text
    zone_a = local.estate.hosts["zone-a"]
    assert zone_a.state_dir is not None
    iis.admin_set_pool_attribute(
        zone_a.state_dir, "IdentityManagerAgentContoso", "processModel/idleTimeout", "00:20:00"
    )

    for _ in range(2):  # the check never writes state: the same drift, every night
        code, text = local.run("refresh", "--preview-only", "--expect-no-changes", "--diff")
        assert code == 7, text
        assert "zone-a-pool" in text and "idle_timeout" in text, text
    code, text = local.run("preview", "--refresh", "--json")
    assert code == 0, text
    steps = [
        (step["op"], step["urn"].rsplit("::", 1)[-1])
        for step in json.loads(text[text.index("{") :])["steps"]
        if step["op"] not in ("same", "refresh") and not step["urn"].endswith("Stack::usercube-agents-local")
    ]
    assert steps == [("update", "zone-a-pool")], steps
    code, text = local.run("up", "--refresh")
    assert code == 0, text
    code, text = local.run("refresh", "--preview-only", "--expect-no-changes")
    assert code == 0, text
    local.run("destroy")


# zone-a where `localhost` also leads (127.0.0.1), zone-b on the default WinRM HTTP port (so that `port` unset and
# `port: 5985` are the same place); addresses of their own, so the module's estate is not disturbed.
RESPELL_PLACES = {"server": ("127.0.0.34", 0), "zone-a": ("127.0.0.1", 0), "zone-b": ("127.0.0.35", 5985)}


@pytest.fixture
def respell_estate(tmp_path: Path, target: Target) -> Iterator[SimulatedEstate]:
    if not target.simulated:
        pytest.skip("an estate of three hosts runs on simulated hosts; a real-host run covers one host")
    yield from start_estate_at(tmp_path / "estate", RESPELL_PLACES)


def test_a_host_address_or_port_spelt_another_way_is_no_move(tmp_path: Path, respell_estate: SimulatedEstate) -> None:
    """Issue 11 §1 (audit gap 1): `hosts.zone-a.address` 127.0.0.1 -> localhost and `hosts.zone-b.port` unset ->
    5985 (the HTTP default) name the same machines. Before, both were taken for moves: created again (adopting
    what was there), then deleted through the old address, so `up` succeeded and left the agents without files."""
    local = EstateProject(tmp_path / "run", respell_estate)
    config = local.config()
    hosts = config[HOSTS_KEY]
    del hosts["zone-b"]["port"]  # unset: 5985, as useHttps is false
    local.write(config)
    code, text = local.run("up")
    assert code == 0, text
    estate = local.estate
    kept = [
        ("zone-a", f"{CONTOSO}\\Runtime\\appsettings.agent.json"),
        ("zone-a", f"{CONTOSO}\\Runtime\\web.config"),
        ("zone-b", f"{CONTOSO}\\Runtime\\appsettings.agent.json"),
    ]
    assert all(estate.file(host, path).exists() for host, path in kept)

    hosts["zone-a"]["address"] = "localhost"
    hosts["zone-b"]["port"] = 5985
    local.write(config)
    steps = changed_steps(local)
    assert steps and {op for op, _ in steps} == {"update"}, steps
    assert all(name.startswith(("zone-a", "host-zone-a", "zone-b", "host-zone-b")) for _, name in steps), steps
    marks = estate.marks()
    code, text = local.run("up")
    assert code == 0, text
    missing = [(host, path) for host, path in kept if not estate.file(host, path).exists()]
    assert not missing, f"an address spelt another way deleted {missing}"
    # zone-a was asked which machine it is, once through each address; nothing else reached any host
    assert estate.operations("zone-a", marks["zone-a"]) and {
        op for _, op in estate.operations("zone-a", marks["zone-a"])
    } == {"framework/machine_identity"}
    assert estate.operations("zone-b", marks["zone-b"]) == []  # the same effective port: not even asked
    assert estate.operations("server", marks["server"]) == []

    # A new address that does not answer is never guessed at (review-respell M1): taken for a move, the same
    # machine would lose what the create adopted. Both verbs stop on that host, naming it; nothing is changed.
    port = hosts["zone-a"]["port"]
    hosts["zone-a"]["port"] = 1  # nothing listens there
    local.write(config)
    for verb in ("preview", "up"):
        code, text = local.run(verb)
        assert code != 0 and "[HostIdentityUnknown]" in text and "localhost:1" in text, text
    assert all(estate.file(host, path).exists() for host, path in kept)
    hosts["zone-a"]["port"] = port
    local.write(config)

    code, text = local.run("refresh", "--expect-no-changes")
    assert code == 0, text
    code, text = local.run("destroy")
    assert code == 0, text
    assert not any(estate.file(host, path).exists() for host, path in kept), "destroy works through the new addresses"


# zone-a and a copy of its disk made without sysprep (the same MachineGuid), renamed and in a VM of its own.
CLONE_PLACES = {
    "server": ("127.0.0.36", 0),
    "zone-a": ("127.0.0.37", 0),
    "zone-b": ("127.0.0.38", 0),
    "zone-a-clone": ("127.0.0.39", 0),
}


@pytest.fixture
def clone_estate(tmp_path: Path, target: Target) -> Iterator[SimulatedEstate]:
    if not target.simulated:
        pytest.skip("an estate of several hosts runs on simulated hosts; a real-host run covers one host")
    yield from start_estate_at(tmp_path / "estate", CLONE_PLACES)


def test_a_host_moved_to_a_clone_made_without_sysprep_is_a_move(tmp_path: Path, clone_estate: SimulatedEstate) -> None:
    """Review-respell M2: `hosts.zone-a.address` changed to a clone of zone-a's disk made without sysprep (one
    MachineGuid; the clone renamed, its VM with its own SMBIOS UUID). Taken for the same machine (GUID alone), `up`
    sent nothing and the state pointed at the clone, where nothing was; now zone-a's resources are replaced:
    created on the clone, then removed from zone-a, and the run says why."""
    local = EstateProject(tmp_path / "run", clone_estate)
    code, text = local.run("up")
    assert code == 0, text
    estate = local.estate
    source, copy_ = estate.hosts["zone-a"], estate.hosts["zone-a-clone"]
    assert source.state_dir is not None and copy_.state_dir is not None
    machine.clone_without_sysprep(source.state_dir, copy_.state_dir)
    settings = f"{CONTOSO}\\Runtime\\appsettings.agent.json"
    assert estate.file("zone-a", settings).exists() and not estate.file("zone-a-clone", settings).exists()

    config = local.config()
    config[HOSTS_KEY]["zone-a"].update(address=copy_.connection["host"], port=copy_.connection["port"])
    local.write(config)
    steps = changed_steps(local)
    assert steps and all(name.startswith(("zone-a", "host-zone-a")) for _, name in steps), steps
    assert {op for op, _ in steps} == {"replace"}, steps
    code, text = local.run("up")
    assert code == 0, text
    assert "share MachineGuid" in text and "computer name" in text, text
    assert estate.file("zone-a-clone", settings).exists(), "created on the clone"
    assert not estate.file("zone-a", settings).exists(), "then removed from the machine it was on"
    code, text = local.run("refresh", "--expect-no-changes")
    assert code == 0, text
    code, text = local.run("destroy")
    assert code == 0, text
    assert not estate.file("zone-a-clone", settings).exists(), "destroy works through the clone's address"

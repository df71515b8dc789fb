"""The hosting bundle in a stack (`hosts.<name>.hostingBundle`), through the real CLI on the local estate's three
SIMULATED hosts (an estate of this module's own: the bundle and a restart change a host for good).

With `restart: true`, a host the installer asks to restart is restarted, and nothing else of that host runs while
it is down: every other resource there waits for the bundle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devhost import iis, installers
from tests.support.estate import HOSTS_KEY, EstateProject

pytestmark = pytest.mark.engine


def test_a_restart_the_stack_allows_happens_with_nothing_else_in_flight(local: EstateProject, tmp_path: Path) -> None:
    zone_a = local.estate.hosts["zone-a"]
    assert zone_a.state_dir is not None
    state = zone_a.state_dir
    # Another application's pool runs on zone-a: its w3wp.exe holds aspnetcorev2.dll, so the upgrade asks for a
    # restart (exit code 3010).
    manager = iis.ServerManager(state)
    pool = manager.add_pool("OtherApp")
    manager.set_pool_value(pool, "startMode", "AlwaysRunning")
    manager.commit()
    path = installers.stand_in_installer(tmp_path / "dotnet-hosting-8.0.12-win.exe", "8.0.12")
    config = local.config()
    config[HOSTS_KEY]["zone-a"]["hostingBundle"] = {"path": str(path), "version": "8.0.12", "restart": True}
    local.write(config)

    mark = zone_a.journal_mark()
    code, text = local.run("up")
    assert code == 0, text
    assert "restarted as the installer asked" in text
    power = json.loads((state / "_sim" / "power.json").read_text())
    up_again = float(power["down_until"])
    events = zone_a.operation_events_since(mark)
    before = [e["op"] for e in events if float(e["started"]) < up_again]
    assert set(before) <= {"windows_feature/get", "windows_feature/set", *(f"hosting_bundle/{o}" for o in
                           ("get", "chunk", "set", "restart"))}, before  # fmt: skip
    after = {e["op"] for e in events if float(e["started"]) >= up_again}
    assert {"iis_site/set", "agent_verification/get", "directory/set"} <= after, after
    assert local.outputs()["hosts"]["zone-a"]["hostingBundle"] == {
        "installedVersion": "8.0.12",
        "restartPending": False,
    }

    code, text = local.run("up")
    assert code == 0, text
    code, text = local.run("destroy")
    assert code == 0, text

"""Issue 11, §3: a host of the local estate restarted in the middle of an `up`, and one down for a whole `up`.

Both through ``python -m stackrun`` on three SIMULATED hosts of the test's own. The run fails, the line stackrun
prints after the CLI's output names the host by the stack's name for it (and its address, and why); the other
hosts' agents are deployed all the same (stackrun runs `up` with --continue-on-error on an estate of two or more
hosts); once the host is back, a plain re-run converges and `refresh --preview-only --expect-no-changes` exits 0.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from devhost import power
from tests.support.estate import EstateProject, SimulatedEstate
from tests.support.hosts import start_simulator, stop_simulator
from tests.support.interrupt import RequestCounter, start_run

CONTOSO = "C:\\identitymanagerContoso"
# Longer than the transport's retries of one operation (3 retries, 0.5 + 1 + 2 s of back-off): a real restart
# takes minutes, and the run is to fail, not to be saved by the back-off.
RESTART_S = 12.0


def agent_settings(estate: SimulatedEstate, host: str) -> Path:
    name = "appsettings.json" if host == "server" else "appsettings.agent.json"
    return estate.file(host, f"{CONTOSO}\\Runtime\\{name}")


def converge(local: EstateProject) -> None:
    code, text = local.run("up")
    assert code == 0, text
    code, text = local.run("refresh", "--preview-only", "--expect-no-changes")
    assert code == 0, text


def test_a_host_restarted_during_up_fails_by_name_and_the_rerun_converges(
    tmp_path: Path, fresh_estate: SimulatedEstate
) -> None:
    local = EstateProject(tmp_path, fresh_estate)
    zone_a = fresh_estate.hosts["zone-a"]
    assert zone_a.state_dir is not None
    zone_a.set_knobs(restart_seconds=RESTART_S)
    boot = power.boot_time(zone_a.state_dir)
    counter = RequestCounter(fresh_estate, ["zone-a"])
    process, log = start_run(local, "up")
    try:
        while counter.update() < 15:  # its shell is open and operations are running on it
            assert process.poll() is None, log.read_text()
            time.sleep(0.005)
        power.restart(zone_a.state_dir)  # Restart-Computer -Force, by someone else
        code = process.wait(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()
    text = log.read_text(encoding="utf-8", errors="replace")
    assert code not in (0, 7), text
    address = f"{zone_a.connection['host']}:{zone_a.connection['port']}"
    assert f"stackrun: failed on host zone-a ({address}):" in text, text
    assert "stackrun: failed on host server" not in text and "stackrun: failed on host zone-b" not in text, text
    restarts = [e for e in zone_a.journal() if e.get("kind") == "restart"]
    assert restarts, "the restart ended the host's shells (devhost/server.py restarting)"
    assert power.boot_time(zone_a.state_dir) != boot
    for host in ("server", "zone-b"):  # --continue-on-error: the other hosts' agents are deployed
        assert json.loads(agent_settings(fresh_estate, host).read_text(encoding="utf-8-sig")), host

    while power.status(zone_a.state_dir)[1]:  # the machine is down until the restart is over
        time.sleep(0.2)
    converge(local)
    assert json.loads(agent_settings(fresh_estate, "zone-a").read_text(encoding="utf-8-sig"))


def test_one_host_down_for_a_whole_up_leaves_the_others_deployed_and_is_named(
    tmp_path: Path, fresh_estate: SimulatedEstate
) -> None:
    local = EstateProject(tmp_path, fresh_estate)
    zone_b = fresh_estate.hosts["zone-b"]
    assert zone_b.state_dir is not None
    stop_simulator(zone_b)  # switched off: nothing listens on its address any more
    code, text = local.run("up")
    assert code not in (0, 7), text
    address = f"{zone_b.connection['host']}:{zone_b.connection['port']}"
    assert f"stackrun: failed on host zone-b ({address}): " in text, text
    failed = text[text.index("stackrun: failed on host zone-b") :].splitlines()[0]
    assert "[HostUnreachable]" in failed and "zone-b-" in failed, failed
    assert text.count("stackrun: failed on host") == 1, text
    for host in ("server", "zone-a"):
        assert json.loads(agent_settings(fresh_estate, host).read_text(encoding="utf-8-sig")), host

    # Switched on again (same disk, same address): the re-run deploys it and changes nothing else.
    fresh_estate.hosts["zone-b"] = start_simulator(
        zone_b.state_dir, zone_b.connection["password"], zone_b.connection["host"]
    )
    local.document["config"]["usercube-agents:hosts"]["zone-b"]["port"] = fresh_estate.hosts["zone-b"].connection[
        "port"
    ]
    local.write()
    converge(local)
    assert json.loads(agent_settings(fresh_estate, "zone-b").read_text(encoding="utf-8-sig"))

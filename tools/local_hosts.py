"""Start or stop one SIMULATED Windows host (devhost, not Windows) per host of the `local` stack.

    .venv/bin/python tools/local_hosts.py start|stop|status

Each host of stacks/Pulumi.local.yaml gets its own simulator, state directory (.devhost/<name>/)
and loopback address, on the standard WinRM ports (5985 HTTP, 5986 HTTPS), as real hosts look.
A started host is prepared as the manual's prerequisites leave a server: IIS where an IIS agent runs,
then the .NET 8 hosting bundle (every agent runs on it), the gMSA accounts the domain would provide, and
stand-ins of the vendor's runtime extracted into each agent's Runtime folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".devhost"
STACK_FILE = ROOT / "stacks" / "Pulumi.local.yaml"
PROJECT = "usercube-agents"
# Dev-only credentials of the simulated hosts; the local stack holds the same password, encrypted.
USER = "administrator"
PASSWORD = "DevHost-Only-Passw0rd"
HTTP_PORT, HTTPS_PORT = 5985, 5986
HOSTING_BUNDLE = "8.0.11"


def local_estate() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    config = (yaml.safe_load(STACK_FILE.read_text(encoding="utf-8")) or {}).get("config") or {}
    return config.get(f"{PROJECT}:hosts") or {}, config.get(f"{PROJECT}:agents") or []


def devhost(*args: str, stdin: str | None = None) -> None:
    subprocess.run([sys.executable, "-m", "devhost", *args], input=stdin, text=True, check=True, cwd=ROOT)


def running(state: Path) -> int | None:
    ready = state / "_sim" / "ready.json"
    if not ready.exists():
        return None
    pid = int(json.loads(ready.read_text())["pid"])
    try:
        os.kill(pid, 0)
    except OSError:
        return None
    return pid


def start(name: str, host: dict[str, Any], agents: list[dict[str, Any]]) -> None:
    state = STATE / name
    address = str(host["address"])
    if running(state):
        print(f"simulated host {name} already running on {address}")
        return
    state.mkdir(parents=True, exist_ok=True)
    (state / "_sim" / "ready.json").unlink(missing_ok=True)
    devhost("add-user", "--state", str(state), "--user", USER, "--password-stdin", stdin=PASSWORD)
    log = (state / "devhost.log").open("wb")
    subprocess.Popen(
        [
            *(sys.executable, "-m", "devhost", "serve", "--state", str(state), "--bind", address),
            *("--port", str(HTTP_PORT), "--https-port", str(HTTPS_PORT)),
            *("--ready-file", str(state / "_sim" / "ready.json")),
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 20
    while not running(state):
        if time.monotonic() > deadline:
            sys.exit(f"simulated host {name} did not start:\n{(state / 'devhost.log').read_text()}")
        time.sleep(0.1)
    mine = [agent for agent in agents if agent.get("host") == name]
    if any(agent.get("hosting", "iis") == "iis" for agent in mine):
        # The server as the manual's prerequisites leave it: IIS first, then the hosting bundle.
        devhost("admin", "feature-install", "--state", str(state), "--name", "Web-Server")
    # Every agent runs on the hosting bundle's .NET runtime, a Windows service too (agent-requirements: Software).
    devhost("admin", "install-hosting-bundle", "--state", str(state), "--version", HOSTING_BUNDLE)
    for agent in mine:
        identity = agent.get("identity") or {}
        if identity.get("kind") == "GroupManagedServiceAccount":
            devhost("admin", "add-account", "--state", str(state), "--name", identity["account"], "--kind", "gmsa")
        # The vendor's runtime archive, which the operator extracts into Runtime when the stack names none (this
        # project never ships it): stand-ins of its main file, so the service starts and the site answers.
        root = agent.get("workingDirectory") or f"C:\\identitymanager{agent['organization']}"
        app = "identitymanager-Server.dll" if agent.get("kind") == "integrated" else "identitymanager-Agent.dll"
        if agent.get("hosting") == "service":
            app = "Usercube-Agent.exe"
        devhost("admin", "runtime-stand-in", "--state", str(state), "--runtime", f"{root}\\Runtime", "--app", app)
    print(f"simulated Windows host {name} (devhost, NOT Windows) on {address}:{HTTP_PORT} (http+ntlm)")


def stop(name: str) -> None:
    pid = running(STATE / name)
    if pid:
        os.kill(pid, signal.SIGTERM)
        (STATE / name / "_sim" / "ready.json").unlink(missing_ok=True)
        print(f"simulated host {name} stopped")


def main(verb: str) -> int:
    hosts, agents = local_estate()
    for name, host in hosts.items():
        if verb == "start":
            start(name, host, agents)
        elif verb == "stop":
            stop(name)
        else:
            print(f"{name}: {'running' if running(STATE / name) else 'stopped'} ({host['address']})")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ("start", "stop", "status"):
        sys.exit(__doc__)
    raise SystemExit(main(sys.argv[1]))

"""Where the tests run their resources: the simulated host (default) or a real Windows host.

A real host is used when ``USERCUBE_TEST_WINRM_HOST`` is set, with ``USERCUBE_TEST_WINRM_USER``,
``USERCUBE_TEST_WINRM_PASSWORD`` and optionally ``_PORT``, ``_TRANSPORT``, ``_HTTPS`` (1/0),
``_CA_BUNDLE``. Tests that inspect the simulator itself (its journal, its files, injected faults)
are skipped there, and say so.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TEST_USER = "administrator"
TEST_PASSWORD = "Test-Only-Passw0rd!"


@dataclass
class Target:
    """A host the tests can deploy to, plus (for the simulator) a view of its inside."""

    connection: dict[str, Any]
    state_dir: Path | None = None
    https_port: int | None = None
    ca_cert: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def simulated(self) -> bool:
        return self.state_dir is not None

    # -- simulator introspection ----------------------------------------------------------------

    def windows_file(self, windows_path: str) -> Path:
        assert self.state_dir is not None, "only the simulated host exposes its files"
        drive, rest = windows_path.split(":\\", 1)
        return self.state_dir / drive.upper() / Path(*rest.split("\\"))

    def journal(self) -> list[dict[str, Any]]:
        assert self.state_dir is not None
        path = self.state_dir / "_sim" / "journal.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def journal_mark(self) -> int:
        return len(self.journal())

    def journal_since(self, mark: int) -> list[dict[str, Any]]:
        return self.journal()[mark:]

    def operations_since(self, mark: int) -> list[str]:
        """The ``# op:`` names of the scripts the host received since ``mark``."""
        return [op for _time, op in self.timed_operations_since(mark)]

    def timed_operations_since(self, mark: int) -> list[tuple[float, str]]:
        """(start time, ``# op:`` name) of every operation the host ran since ``mark``, in start order."""
        ops = [
            (float(entry["started"]), str(entry["op"]))
            for entry in self.journal_since(mark)
            if entry.get("kind") == "operation"
        ]
        return sorted(ops)

    def operation_events_since(self, mark: int) -> list[dict[str, Any]]:
        """The journal's ``operation`` events (op, shell_id, request_id, started, ended, ok) since ``mark``."""
        return [entry for entry in self.journal_since(mark) if entry.get("kind") == "operation"]

    def requests_since(self, mark: int) -> list[dict[str, Any]]:
        """The operation requests the host received since ``mark``: {"script", "input"} decoded from stdin
        (each Send may carry several request lines, and a long line may span several Sends)."""
        buffers: dict[str, bytes] = {}
        requests = []
        for entry in self.journal_since(mark):
            if entry.get("kind") != "stdin":
                continue
            key = str(entry["command_id"])
            data = buffers.get(key, b"") + base64.b64decode(entry["data"])
            *lines, buffers[key] = data.split(b"\n")
            for line in lines:
                request_id, _, encoded = line.partition(b" ")
                if request_id.isdigit():  # (the first line of a process is the loop script, not a request)
                    requests.append(json.loads(base64.b64decode(encoded)))
        return requests

    def set_knobs(self, **knobs: Any) -> None:
        assert self.state_dir is not None
        (self.state_dir / "_sim" / "knobs.json").write_text(json.dumps(knobs), encoding="utf-8")


def real_host_from_env() -> Target | None:
    host = os.environ.get("USERCUBE_TEST_WINRM_HOST")
    if not host:
        return None
    https = os.environ.get("USERCUBE_TEST_WINRM_HTTPS", "1") == "1"
    connection: dict[str, Any] = {
        "host": host,
        "transport": os.environ.get("USERCUBE_TEST_WINRM_TRANSPORT", "ntlm"),
        "use_https": https,
        "username": os.environ["USERCUBE_TEST_WINRM_USER"],
        "password": os.environ["USERCUBE_TEST_WINRM_PASSWORD"],
    }
    if os.environ.get("USERCUBE_TEST_WINRM_PORT"):
        connection["port"] = int(os.environ["USERCUBE_TEST_WINRM_PORT"])
    if os.environ.get("USERCUBE_TEST_WINRM_CA_BUNDLE"):
        connection["ca_bundle"] = os.environ["USERCUBE_TEST_WINRM_CA_BUNDLE"]
    return Target(connection=connection)


def start_simulator(
    state_dir: Path, password: str = TEST_PASSWORD, address: str = "127.0.0.1", http_port: int = 0
) -> Target:
    """Start ``python -m devhost serve`` on free loopback ports (or the given HTTP port) and wait until it listens."""
    state_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "devhost",
            "add-user",
            "--state",
            str(state_dir),
            "--user",
            TEST_USER,
            "--password-stdin",
        ],
        input=password.encode(),
        check=True,
        cwd=ROOT,
    )
    ready = state_dir / "_sim" / "ready.json"
    ready.unlink(missing_ok=True)
    log = open(state_dir / "devhost.log", "wb")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devhost",
            "serve",
            "--state",
            str(state_dir),
            "--port",
            str(http_port),
            "--https-port",
            "0",
            "--ready-file",
            str(ready),
            "--bind",
            address,
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 20
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"simulated host did not start: {(state_dir / 'devhost.log').read_text()}")
        time.sleep(0.05)
    info = json.loads(ready.read_text())
    connection = {
        "host": address,
        "port": info["http_port"],
        "transport": "ntlm",
        "use_https": False,
        "username": TEST_USER,
        "password": password,
        "retries": 1,
    }
    return Target(connection, state_dir, info["https_port"], info["ca_cert"], process)


def stop_simulator(target: Target) -> None:
    if target.process is not None and target.process.poll() is None:
        target.process.send_signal(signal.SIGTERM)
        try:
            target.process.wait(10)
        except subprocess.TimeoutExpired:
            target.process.kill()


def target_session(tmp_root: Path) -> Iterator[Target]:
    real = real_host_from_env()
    if real is not None:
        yield real
        return
    target = start_simulator(tmp_root / "devhost")
    try:
        yield target
    finally:
        stop_simulator(target)

"""Fixtures for the SIMULATED Windows host's WinRM endpoint (devhost) — not Windows."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from winrm.protocol import Protocol

from devhost import auth
from devhost.fs import WindowsFs
from devhost.processes import SimulatedHostApi
from devhost.server import BuiltinHost, DevhostServer, sim_dir, users_file

USER = "vagrant"
PASSWORD = "Sim-Passw0rd!"


@dataclass
class SimServer:
    """An in-process devhost on random loopback ports, with helpers for its test hooks."""

    state: Path
    server: DevhostServer

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.server.http_port}/wsman"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.server.https_port}/wsman"

    @property
    def ca_cert(self) -> str:
        assert self.server.ca_cert is not None
        return str(self.server.ca_cert)

    def ntlm(self, password: str = PASSWORD, **kwargs: Any) -> Protocol:
        """pywinrm over plain HTTP with NTLM; pywinrm encrypts the messages itself."""
        kwargs.setdefault("ca_trust_path", self.ca_cert)  # unused over http; keeps pywinrm off REQUESTS_CA_BUNDLE
        return Protocol(self.http_url, transport="ntlm", username=USER, password=password, **kwargs)

    def basic(self, password: str = PASSWORD, **kwargs: Any) -> Protocol:
        """pywinrm over HTTPS with Basic auth, validating the simulator's certificate."""
        kwargs.setdefault("ca_trust_path", self.ca_cert)
        return Protocol(
            self.https_url,
            transport="basic",
            username=USER,
            password=password,
            server_cert_validation="validate",
            **kwargs,
        )

    def journal(self, kind: str | None = None) -> list[dict[str, Any]]:
        path = sim_dir(self.state) / "journal.jsonl"
        if not path.exists():
            return []
        events = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return [e for e in events if kind is None or e["kind"] == kind]

    def set_knobs(self, knobs: dict[str, Any]) -> None:
        (sim_dir(self.state) / "knobs.json").write_text(json.dumps(knobs), encoding="utf-8")

    def knobs(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((sim_dir(self.state) / "knobs.json").read_text(encoding="utf-8"))
        return data


def make_state(root: Path) -> Path:
    state = root / "state"
    auth.write_user(users_file(state), USER, PASSWORD)
    return state


@pytest.fixture
def fs(tmp_path: Path) -> WindowsFs:
    """An empty simulated host's files (a test file whose host needs more defines its own fs)."""
    return WindowsFs(tmp_path)


@pytest.fixture
def sim_state(tmp_path: Path) -> Path:
    """A state directory with a users file holding the test user."""
    return make_state(tmp_path)


@pytest.fixture
def start_sim(sim_state: Path) -> Iterator[Callable[..., SimServer]]:
    """Start an in-process simulator (HTTP + HTTPS on port 0); stopped after the test."""
    started: list[DevhostServer] = []

    def start(host_factory: Callable[[Path], SimulatedHostApi] = BuiltinHost) -> SimServer:
        server = DevhostServer(sim_state, http_port=0, https_port=0, host_factory=host_factory)
        server.start()
        started.append(server)
        return SimServer(sim_state, server)

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def sim(start_sim: Callable[..., SimServer]) -> SimServer:
    """The simulator with only the builtin command models (no devhost.host dependency)."""
    return start_sim()

"""Sessions are built in parallel, but requests' proxy lookup runs one at a time.

requests.utils.set_environ sets os.environ["no_proxy"] and deletes it again around the lookup
that Session.merge_environment_settings (called by pywinrm's build_session) makes; two threads
building at once let one delete the key the other then deletes, and the operation fails with
KeyError 'no_proxy' (seen in a refresh of the local estate). build_session also performs the NTLM
handshake, so only the environment change may be serialised, or hosts connect one after another.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from winrm.transport import Transport

from providers.scripting.runner import POWERSHELL, ScriptRef, bootstrap_arguments, encode_request, loop_preamble
from providers.transport import proxy_environ
from providers.transport.connection import HostConnection
from providers.transport.session import WinRMSession
from tests.support.hosts import Target

GET = ScriptRef("providers.settings_file", "get")
PAYLOAD = {"path": "C:\\x.json", "content": "", "encoding": "utf-8", "keep_backup": True, "readers": None}


def open_in_parallel(conn: HostConnection, count: int) -> list[BaseException]:
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            session = WinRMSession(conn)  # each its own channel: two connections built at once
            session.request(POWERSHELL, bootstrap_arguments(), encode_request(GET, PAYLOAD), preamble=loop_preamble())
            session.close()
        except BaseException as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=open_one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_proxy_environment_changes_never_overlap(simulated: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    original = proxy_environ._original
    inside = [0]
    calls = [0]
    overlaps: list[int] = []

    @contextlib.contextmanager
    def watched(name: str, value: str | None) -> Iterator[None]:
        calls[0] += 1
        inside[0] += 1
        if inside[0] > 1:
            overlaps.append(inside[0])
        time.sleep(0.005)  # widen the window a race needs
        try:
            with original(name, value):
                yield
        finally:
            inside[0] -= 1

    monkeypatch.setattr(proxy_environ, "_original", watched)
    errors = open_in_parallel(HostConnection.model_validate(simulated.connection), 8)
    assert errors == []
    assert calls[0] >= 8, "requests' lookup goes through the lock (requests.utils.set_environ is wrapped)"
    assert overlaps == []


def test_handshakes_of_several_sessions_run_at_once(simulated: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    original = Transport.build_session
    active = [0]
    peak = [0]
    guard = threading.Lock()

    def counted(self: Transport) -> requests.Session:
        with guard:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            return original(self)
        finally:
            with guard:
                active[0] -= 1

    monkeypatch.setattr(Transport, "build_session", counted)
    simulated.set_knobs(latency_ms=50)  # each of the three handshake requests waits on the host
    try:
        errors = open_in_parallel(HostConnection.model_validate(simulated.connection), 4)
    finally:
        simulated.set_knobs()
    assert errors == []
    assert peak[0] > 1, "NTLM handshakes of different sessions must not wait for each other"

"""The WinRM session layer: one pooled session per host, retries of transient failures, clear errors."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest

from providers.scripting.runner import ScriptRef, run_script
from providers.transport.connection import HostConnection
from providers.transport.errors import AuthenticationFailed, HostUnreachable, WinRMProtocolError
from providers.transport.session import session_for
from tests.support.hosts import Target

GET = ScriptRef("providers.settings_file", "get")


def payload() -> dict[str, Any]:
    return {
        "path": f"C:\\UsercubeIacTests\\{uuid.uuid4().hex[:8]}.json",
        "content": "",
        "encoding": "utf-8",
        "keep_backup": True,
    }


def connect(target: Target, **overrides: Any) -> HostConnection:
    return HostConnection.model_validate({**target.connection, **overrides})


def test_operations_reuse_one_authenticated_session(simulated: Target) -> None:
    conn = connect(simulated, max_shells=1)
    run_script(conn, GET, payload(), resource="warm-up")
    mark = simulated.journal_mark()
    for _ in range(5):
        run_script(conn, GET, payload(), resource="t")
    kinds = [e["kind"] for e in simulated.journal_since(mark)]
    assert kinds.count("create") == 0, "the shell stays open between operations"
    assert kinds.count("command") == 5
    statuses = [e.get("status") for e in simulated.journal_since(mark) if e["kind"] == "request"]
    assert statuses and 401 not in statuses, "no new NTLM handshake per operation"


def test_parallel_operations_use_several_shells(simulated: Target) -> None:
    conn = connect(simulated, max_shells=4)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            run_script(conn, GET, payload(), resource="t")
        except BaseException as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


@pytest.mark.parametrize("kind", ["http500", "drop"])
def test_transient_failures_are_retried(simulated: Target, kind: str) -> None:
    conn = connect(simulated, retries=2)
    run_script(conn, GET, payload(), resource="warm-up")
    simulated.set_knobs(faults=[{"kind": kind, "on": "Command"}])
    try:
        result = run_script(conn, GET, payload(), resource="t")
    finally:
        simulated.set_knobs()
    assert result.state["ensure"] == "absent"
    assert any(e["kind"] == "fault" for e in simulated.journal()[-40:])


def test_retries_are_bounded(simulated: Target) -> None:
    conn = connect(simulated, retries=1)
    simulated.set_knobs(faults=[{"kind": "http500", "on": "Command"}] * 3)
    try:
        with pytest.raises(
            WinRMProtocolError, match=r"\[WinRMProtocolError\] host 127.0.0.1:\d+: WS-Management fault 2147500037"
        ):
            run_script(conn, GET, payload(), resource="t")
    finally:
        simulated.set_knobs()


def test_wrong_password_is_an_authentication_error_naming_host_and_user(target: Target) -> None:
    conn = connect(target, password="definitely-wrong")
    started = time.monotonic()
    with pytest.raises(AuthenticationFailed) as raised:
        session_for(conn).run("cmd.exe", ["/c", "echo", "hi"], b"")
    assert conn.label in str(raised.value) and target.connection["username"] in str(raised.value)
    assert "definitely-wrong" not in str(raised.value)
    assert time.monotonic() - started < 10, "authentication failures are not retried"


def test_https_with_basic_and_certificate_validation(simulated: Target) -> None:
    conn = connect(simulated, transport="basic", use_https=True, port=simulated.https_port, ca_bundle=simulated.ca_cert)
    assert run_script(conn, GET, payload(), resource="t").state["ensure"] == "absent"


def test_https_certificate_not_trusted_is_refused(simulated: Target) -> None:
    conn = connect(simulated, transport="basic", use_https=True, port=simulated.https_port, retries=0, ca_bundle=None)
    with pytest.raises(HostUnreachable, match="certificate could not be verified"):
        run_script(conn, GET, payload(), resource="t")

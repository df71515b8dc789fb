"""The SIMULATED host's WinRM endpoint (devhost) with the real pywinrm client.

Real TCP on loopback, real HTTP/1.1, real TLS and real NTLM/Basic, so what
passes here is what the project's providers will meet.
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import certifi
import pytest
import requests
from winrm.exceptions import (
    InvalidCredentialsError,
    WinRMError,
    WinRMOperationTimeoutError,
    WSManFaultError,
)
from winrm.protocol import Protocol

from devhost.builtin_commands import CMD_LINE_LIMIT
from devhost.server import DevhostServer
from tests.devhost.conftest import PASSWORD, USER, SimServer, make_state

REPO = Path(__file__).resolve().parents[2]


def run(protocol: Protocol, command: str, args: list[str], stdin: bytes | None = None) -> tuple[bytes, bytes, int]:
    shell = protocol.open_shell(codepage=65001)
    try:
        command_id = protocol.run_command(shell, command, args)
        if stdin is not None:
            protocol.send_command_input(shell, command_id, stdin, end=True)
        result = protocol.get_command_output(shell, command_id)
        protocol.cleanup_command(shell, command_id)
        return result
    finally:
        protocol.close_shell(shell)


# --- authentication and transport ------------------------------------------


def test_ntlm_over_http_with_message_encryption(sim: SimServer) -> None:
    protocol = sim.ntlm()
    assert run(protocol, "cmd.exe", ["/c echo hi"]) == (b"hi\r\n", b"", 0)
    # pywinrm chose to seal the messages (ntlm over http) and the server understood them.
    assert protocol.transport.encryption is not None
    requests_seen = sim.journal("request")
    assert {e.get("auth") for e in requests_seen if e["action"]} == {"ntlm"}
    created = sim.journal("create")
    assert created[-1]["user"] == USER


def test_unencrypted_ntlm_over_http_is_refused(sim: SimServer) -> None:
    protocol = sim.ntlm(message_encryption="never")
    with pytest.raises(InvalidCredentialsError):
        protocol.open_shell()


def test_basic_over_https_validates_the_simulator_certificate(sim: SimServer) -> None:
    assert run(sim.basic(), "echo", ["hi"]) == (b"hi\r\n", b"", 0)


def test_https_certificate_is_really_validated(sim: SimServer) -> None:
    # A public trust store does not know the simulator's CA.
    protocol = Protocol(
        sim.https_url, transport="basic", username=USER, password=PASSWORD, ca_trust_path=certifi.where()
    )
    with pytest.raises(requests.exceptions.SSLError):
        protocol.open_shell()


def test_ntlm_over_https_with_channel_binding(sim: SimServer) -> None:
    protocol = Protocol(sim.https_url, transport="ntlm", username=USER, password=PASSWORD, ca_trust_path=sim.ca_cert)
    assert run(protocol, "echo", ["over tls"]) == (b"over tls\r\n", b"", 0)


class _SpnegoClients:
    """requests_ntlm's NTLM client swapped for pyspnego's SPNEGO one (protocol="negotiate"): the NTLM wrapped in
    NegTokenInit/NegTokenResp that pypsrp and Ansible's psrp connection send with auth="negotiate"."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self.real = real
        self.first_tokens: list[bytes] = []
        self.contexts: list[Any] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["protocol"] = "negotiate"
        kwargs.pop("options", None)  # requests_ntlm's use_ntlm would make pyspnego send raw NTLM
        context = self.real(*args, **kwargs)
        self.contexts.append(context)
        step = context.step

        def recording_step(token: bytes | None = None, **step_kwargs: Any) -> bytes | None:
            out = step(token, **step_kwargs)
            if token is None and out:
                self.first_tokens.append(out)
            return out

        context.step = recording_step
        return context


class _ModuleWith:
    def __init__(self, module: Any, **overrides: Any) -> None:
        self._module, self._overrides = module, overrides

    def __getattr__(self, name: str) -> Any:
        return self._overrides[name] if name in self._overrides else getattr(self._module, name)


def test_spnego_wrapped_ntlm_with_message_encryption(sim: SimServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import requests_ntlm.requests_ntlm
    import spnego

    clients = _SpnegoClients(spnego.client)
    # Only requests_ntlm's view of the module: pyspnego's own Negotiate proxy calls spnego.client for NTLM.
    monkeypatch.setattr(requests_ntlm.requests_ntlm, "spnego", _ModuleWith(spnego, client=clients))
    # Like pypsrp, read the acceptor's last SPNEGO token (its mechListMIC) off the response that ends the handshake.
    retry = requests_ntlm.HttpNtlmAuth.retry_using_http_NTLM_auth

    def retry_and_finish(self: Any, *args: Any, **kwargs: Any) -> Any:
        response = retry(self, *args, **kwargs)
        scheme, _, token = response.headers.get("WWW-Authenticate", "").partition(" ")
        if scheme == "Negotiate" and token:
            clients.contexts[-1].step(base64.b64decode(token))
        return response

    monkeypatch.setattr(requests_ntlm.HttpNtlmAuth, "retry_using_http_NTLM_auth", retry_and_finish)
    assert run(sim.ntlm(), "cmd.exe", ["/c echo hi"]) == (b"hi\r\n", b"", 0)
    assert clients.first_tokens and all(t[:1] == b"\x60" for t in clients.first_tokens), "SPNEGO NegTokenInit"
    assert b"NTLMSSP\x00" in clients.first_tokens[0], "with NTLM as its mechanism token"
    assert all(context.complete for context in clients.contexts), "the mechListMIC exchange completed"
    assert {e.get("status") for e in sim.journal("request") if e["action"]} == {200}


def test_spnego_handshake_ends_with_the_acceptors_mech_list_mic(sim: SimServer) -> None:
    # RFC 4178 section 5: the acceptor's last NegTokenResp (accept-completed, mechListMIC) completes the client.
    import spnego

    client = spnego.client(USER, PASSWORD, hostname="127.0.0.1", service="http", protocol="negotiate")
    with requests.Session() as http:
        first = http.post(sim.http_url, data=b"", headers={"Authorization": "Negotiate " + b64(client.step())})
        assert first.status_code == 401
        challenge = first.headers["WWW-Authenticate"].split(" ", 1)[1]
        answer = client.step(base64.b64decode(challenge))
        done = http.post(sim.http_url, data=b"", headers={"Authorization": "Negotiate " + b64(answer)})
        assert done.status_code == 200
        client.step(base64.b64decode(done.headers["WWW-Authenticate"].split(" ", 1)[1]))
    assert client.complete


def test_an_unreadable_spnego_token_is_a_401(sim: SimServer) -> None:
    token = base64.b64decode("YIIBAA==") + b"\x00" * 16  # a GSS-API token header over nothing SPNEGO can read
    response = requests.post(sim.http_url, data=b"", headers={"Authorization": "Negotiate " + b64(token)}, timeout=10)
    assert response.status_code == 401


def b64(data: bytes | None) -> str:
    return base64.b64encode(data or b"").decode("ascii")


@pytest.mark.parametrize("transport", ["ntlm", "basic"])
def test_wrong_password_is_invalid_credentials(sim: SimServer, transport: str) -> None:
    protocol = sim.ntlm(password="wrong") if transport == "ntlm" else sim.basic(password="wrong")
    with pytest.raises(InvalidCredentialsError):
        protocol.open_shell()


def test_unknown_user_is_invalid_credentials(sim: SimServer) -> None:
    protocol = Protocol(sim.http_url, transport="ntlm", username="nobody", password=PASSWORD, ca_trust_path=sim.ca_cert)
    with pytest.raises(InvalidCredentialsError):
        protocol.open_shell()


def test_basic_over_plain_http_is_refused(sim: SimServer) -> None:
    protocol = Protocol(sim.http_url, transport="basic", username=USER, password=PASSWORD, ca_trust_path=sim.ca_cert)
    with pytest.raises(InvalidCredentialsError):
        protocol.open_shell()
    assert not sim.journal("create")


def test_server_says_it_is_a_simulator(sim: SimServer) -> None:
    response = requests.post(sim.http_url, data=b"", timeout=10)
    assert response.status_code == 401
    assert "SIMULATED" in response.headers["Server"]
    assert "Negotiate" in response.headers["WWW-Authenticate"]
    assert requests.get(sim.http_url, timeout=10).status_code == 405


# --- commands ---------------------------------------------------------------


def test_stdin_via_send_command_input(sim: SimServer) -> None:
    protocol = sim.ntlm()
    shell = protocol.open_shell()
    command_id = protocol.run_command(shell, "powershell.exe", ["-"])
    protocol.send_command_input(shell, command_id, b'Write-Host "line 1";', end=False)
    protocol.send_command_input(shell, command_id, b'Write-Host "line 2"', end=True)
    assert protocol.get_command_output(shell, command_id) == (b"line 1\nline 2\n", b"", 0)
    protocol.close_shell(shell)


def test_encoded_command_runs_its_script(sim: SimServer) -> None:
    script = base64.b64encode("Write-Host encoded; exit 4".encode("utf-16-le")).decode()
    assert run(sim.ntlm(), "powershell.exe", ["-NoProfile -NonInteractive -EncodedCommand", script]) == (
        b"encoded\n",
        b"",
        4,
    )


def test_command_line_limit_is_8191_characters(sim: SimServer) -> None:
    protocol = sim.basic()
    fits = "x" * (CMD_LINE_LIMIT - len("cmd.exe /c echo "))
    stdout, _stderr, code = run(protocol, "cmd.exe", [f"/c echo {fits}"])
    assert (stdout, code) == (fits.encode() + b"\r\n", 0)
    too_long = fits + "y"
    assert run(protocol, "cmd.exe", [f"/c echo {too_long}"]) == (b"", b"The command line is too long.\r\n", 1)


def test_unknown_command_fails_loudly(sim: SimServer) -> None:
    stdout, stderr, code = run(sim.ntlm(), "net.exe", ["user", "someone", "/add"])
    assert code != 0
    assert stdout == b""
    assert b"devhost (simulator) does not model this command: net.exe user someone /add" in stderr


def test_unknown_shell_is_a_wsman_fault(sim: SimServer) -> None:
    protocol = sim.ntlm()
    with pytest.raises(WSManFaultError) as caught:
        protocol.run_command("00000000-0000-0000-0000-000000000000", "cmd.exe", ["/c echo hi"])
    assert caught.value.wsman_fault_code == 2150858843


def test_receive_times_out_like_windows_then_completes(sim: SimServer) -> None:
    protocol = sim.basic(operation_timeout_sec=1, read_timeout_sec=5)
    shell = protocol.open_shell()
    command_id = protocol.run_command(shell, "powershell.exe", ["Start-Sleep 2; Write-Host late"])
    with pytest.raises(WinRMOperationTimeoutError):
        protocol.get_command_output_raw(shell, command_id)
    assert protocol.get_command_output(shell, command_id) == (b"late\n", b"", 0)
    protocol.close_shell(shell)


def test_terminate_signal_stops_a_long_runner(sim: SimServer) -> None:
    protocol = sim.basic(operation_timeout_sec=1, read_timeout_sec=5)
    shell = protocol.open_shell()
    command_id = protocol.run_command(shell, "powershell.exe", ["Start-Sleep 30"])
    started = time.monotonic()
    protocol.cleanup_command(shell, command_id)  # rsp:Signal terminate
    with pytest.raises(WSManFaultError):
        protocol.get_command_output_raw(shell, command_id)  # the command id is gone, as on Windows
    protocol.close_shell(shell)
    assert time.monotonic() - started < 5


def test_large_output_is_split_across_receives(sim: SimServer) -> None:
    # `set` with a big variable produces more than one 153600-byte envelope can carry.
    protocol = sim.basic()
    shell = protocol.open_shell(env_vars={"BIG": "z" * 200_000})
    command_id = protocol.run_command(shell, "cmd.exe", ["/c set"])
    receives = 0
    stdout = b""
    done = False
    while not done:
        out, _, code, done = protocol.get_command_output_raw(shell, command_id)
        stdout += out
        receives += 1
    protocol.close_shell(shell)
    assert receives >= 2
    assert code == 0
    assert b"BIG=" + b"z" * 200_000 + b"\r\n" in stdout


def test_concurrent_shells_from_several_connections(sim: SimServer) -> None:
    results: dict[int, tuple[bytes, bytes, int]] = {}

    def worker(n: int) -> None:
        protocol = sim.ntlm() if n % 2 else sim.basic()
        results[n] = run(protocol, "cmd.exe", [f"/c echo worker {n}"])

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == {n: (f"worker {n}\r\n".encode(), b"", 0) for n in range(6)}


# --- the journal ------------------------------------------------------------


def test_journal_records_command_lines_and_stdin(sim: SimServer) -> None:
    protocol = sim.ntlm()
    shell = protocol.open_shell()
    command_id = protocol.run_command(shell, "powershell.exe", ["-"])
    protocol.send_command_input(shell, command_id, b"Write-Host journal", end=True)
    protocol.get_command_output(shell, command_id)
    protocol.cleanup_command(shell, command_id)
    protocol.close_shell(shell)

    commands = sim.journal("command")
    assert [(e["shell_id"], e["command_id"], e["command_line"]) for e in commands] == [
        (shell, command_id, "powershell.exe -")
    ]
    stdin = sim.journal("stdin")
    assert [base64.b64decode(e["data"]) for e in stdin] == [b"Write-Host journal"]
    assert stdin[0]["end"] is True
    assert [e["kind"] for e in sim.journal() if e["kind"] in ("create", "command", "stdin", "signal", "delete")] == [
        "create",
        "command",
        "stdin",
        "signal",
        "delete",
    ]
    actions = [e["action"] for e in sim.journal("request") if e["action"]]
    assert actions == ["Create", "Command", "Send", "Receive", "Signal", "Delete"]
    assert all(isinstance(e["time"], float) for e in sim.journal())


# --- knobs --------------------------------------------------------------------


def test_latency_knob_slows_every_request(sim: SimServer) -> None:
    protocol = sim.basic()
    shell = protocol.open_shell()
    sim.set_knobs({"latency_ms": 300})
    started = time.monotonic()
    protocol.close_shell(shell)
    assert time.monotonic() - started >= 0.3


def test_process_start_knob_slows_commands(sim: SimServer) -> None:
    protocol = sim.basic()
    shell = protocol.open_shell()
    sim.set_knobs({"process_start_ms": 400})
    started = time.monotonic()
    protocol.run_command(shell, "echo", ["x"])
    assert time.monotonic() - started >= 0.4
    protocol.close_shell(shell)


def test_http500_fault_is_one_shot(sim: SimServer) -> None:
    protocol = sim.ntlm()
    shell = protocol.open_shell()
    sim.set_knobs({"faults": [{"kind": "http500", "on": "Command"}]})
    with pytest.raises(WSManFaultError) as caught:
        protocol.run_command(shell, "echo", ["first"])
    assert caught.value.code == 500
    assert caught.value.fault_subcode == "w:InternalError"
    assert sim.knobs()["faults"] == []
    command_id = protocol.run_command(shell, "echo", ["second"])
    assert protocol.get_command_output(shell, command_id) == (b"second\r\n", b"", 0)
    protocol.close_shell(shell)
    assert [e["command_line"] for e in sim.journal("command")] == ["echo second"]


def test_drop_fault_closes_the_connection(sim: SimServer) -> None:
    protocol = sim.basic()
    sim.set_knobs({"faults": [{"kind": "drop", "on": "Create"}]})
    with pytest.raises(requests.exceptions.ConnectionError):
        protocol.open_shell()
    shell = protocol.open_shell()  # the next request reconnects and works
    protocol.close_shell(shell)


def test_faults_fire_in_order_and_only_on_their_action(sim: SimServer) -> None:
    protocol = sim.basic()
    shell = protocol.open_shell()
    sim.set_knobs({"faults": [{"kind": "http500", "on": "Delete"}, {"kind": "http500", "on": "any"}]})
    with pytest.raises(WinRMError):
        protocol.run_command(shell, "echo", ["x"])  # only the "any" fault matches a Command
    assert sim.knobs()["faults"] == [{"kind": "http500", "on": "Delete"}]
    with pytest.raises(WinRMError):
        protocol.close_shell(shell)
    protocol.close_shell(shell)


def test_fault_after_the_operation_loses_only_the_answer(sim: SimServer) -> None:
    protocol = sim.basic()
    shell = protocol.open_shell()
    sim.set_knobs({"faults": [{"kind": "drop", "on": "Command", "when": "after"}]})
    with pytest.raises(requests.exceptions.ConnectionError):
        protocol.run_command(shell, "echo", ["ran"])
    assert [e["command_line"] for e in sim.journal("command")] == ["echo ran"]
    protocol.close_shell(shell)


def test_timeout_fault_outlasts_the_client(sim: SimServer) -> None:
    protocol = sim.basic(operation_timeout_sec=1, read_timeout_sec=2)
    sim.set_knobs({"faults": [{"kind": "timeout", "on": "Create", "seconds": 4}]})
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        protocol.open_shell()
    assert 1.5 < time.monotonic() - started < 4


def test_small_requests_are_not_delayed_by_nagle(sim: SimServer) -> None:
    # Without TCP_NODELAY each response would wait ~40 ms for a delayed ACK.
    protocol = sim.basic()
    shell = protocol.open_shell()
    command_id = protocol.run_command(shell, "powershell.exe", ["-"])
    timings = []
    for _ in range(15):
        started = time.monotonic()
        protocol.send_command_input(shell, command_id, b"Write-Host x;", end=False)
        timings.append(time.monotonic() - started)
    protocol.close_shell(shell)
    assert statistics.median(timings) < 0.03, timings


# --- server construction and the command line -----------------------------


def test_server_refuses_to_start_without_users(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="add-user"):
        DevhostServer(tmp_path / "empty")
    result = subprocess.run(
        [sys.executable, "-m", "devhost", "serve", "--state", str(tmp_path / "empty"), "--port", "0"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert "python -m devhost add-user --state" in result.stderr


def test_cli_add_user_and_serve(tmp_path: Path) -> None:
    state = tmp_path / "state"
    added = subprocess.run(
        [sys.executable, "-m", "devhost", "add-user", "--state", str(state), "--user", USER, "--password-stdin"],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
        check=True,
    )
    assert PASSWORD not in added.stdout
    ready = tmp_path / "ready.json"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devhost",
            "serve",
            "--state",
            str(state),
            "--port",
            "0",
            "--https-port",
            "0",
            "--ready-file",
            str(ready),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline and server.poll() is None:
            time.sleep(0.05)
        info = json.loads(ready.read_text(encoding="utf-8"))
        assert info["pid"] == server.pid
        protocol = Protocol(
            f"https://127.0.0.1:{info['https_port']}/wsman",
            transport="basic",
            username=USER,
            password=PASSWORD,
            ca_trust_path=info["ca_cert"],
        )
        assert run(protocol, "echo", ["cli"]) == (b"cli\r\n", b"", 0)
        over_http = Protocol(
            f"http://127.0.0.1:{info['http_port']}/wsman",
            transport="ntlm",
            username=USER,
            password=PASSWORD,
            ca_trust_path=info["ca_cert"],
        )
        assert run(over_http, "echo", ["ntlm"])[0] == b"ntlm\r\n"
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=30)
    assert "SIMULATED Windows host (devhost) — not Windows" in out
    assert server.returncode == 0


def test_default_host_factory_is_used_when_none_given(sim_state: Path) -> None:
    server = DevhostServer(sim_state)
    try:
        server.start()
        protocol = Protocol(
            f"http://127.0.0.1:{server.http_port}/wsman",
            transport="ntlm",
            username=USER,
            password=PASSWORD,
            ca_trust_path="unused-over-http",
        )
        assert run(protocol, "cmd.exe", ["/c echo via default host"])[0] == b"via default host\r\n"
    finally:
        server.stop()


def test_two_servers_in_one_process_keep_their_own_users(tmp_path: Path, start_sim: Callable[..., SimServer]) -> None:
    first = start_sim()
    other_state = make_state(tmp_path / "other")
    (other_state / "_sim" / "users").write_text(":vagrant:different\n", encoding="utf-8")
    second = DevhostServer(other_state)
    second.start()
    try:
        ok = Protocol(
            f"http://127.0.0.1:{second.http_port}/wsman",
            transport="ntlm",
            username=USER,
            password="different",
            ca_trust_path="unused-over-http",
        )
        assert run(ok, "echo", ["b"])[0] == b"b\r\n"
        assert run(first.ntlm(), "echo", ["a"])[0] == b"a\r\n"
        assert os.environ.get("NTLM_USER_FILE") is None or "other" not in os.environ["NTLM_USER_FILE"]
    finally:
        second.stop()


class BrokenHost:
    def __init__(self, state_dir: Path) -> None:
        pass

    def start(self, request: object) -> object:
        raise RuntimeError("model exploded")


def test_a_bug_in_the_host_is_a_loud_fault(start_sim: Callable[..., SimServer]) -> None:
    sim = start_sim(BrokenHost)
    protocol = sim.ntlm()
    shell = protocol.open_shell()
    with pytest.raises(WSManFaultError) as caught:
        protocol.run_command(shell, "echo", ["x"])
    assert "devhost (simulator) internal error" in caught.value.reason
    assert "model exploded" in caught.value.reason
    protocol.close_shell(shell)  # the service keeps working

"""The WinRM session layer: one pooled session per host, retries of transient failures, clear errors."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import pytest

from providers.scripting import ScriptOutputInvalid
from providers.scripting.runner import ScriptRef, run_script
from providers.transport.connection import HostConnection
from providers.transport.errors import AuthenticationFailed, HostUnreachable, WinRMProtocolError
from providers.transport.session import close_session, session_for
from tests.support.hosts import Target

GET = ScriptRef("providers.settings_file", "get")


def payload() -> dict[str, Any]:
    return {
        "path": f"C:\\UsercubeIacTests\\{uuid.uuid4().hex[:8]}.json",
        "content": "",
        "encoding": "utf-8",
        "keep_backup": True,
        "readers": None,
    }


def connect(target: Target, **overrides: Any) -> HostConnection:
    return HostConnection.model_validate({**target.connection, **overrides})


def fresh(conn: HostConnection) -> HostConnection:
    """``conn`` with no session cached in this process, so its next operation starts a new process."""
    close_session(conn)
    return conn


def test_operations_reuse_one_shell_and_one_process(simulated: Target) -> None:
    conn = connect(simulated)
    run_script(conn, GET, payload(), resource="warm-up")
    mark = simulated.journal_mark()
    for _ in range(5):
        run_script(conn, GET, payload(), resource="t")
    events = simulated.journal_since(mark)
    kinds = [e["kind"] for e in events]
    assert kinds.count("create") == 0, "the shell stays open between operations"
    assert kinds.count("command") == 0, "powershell.exe is started once, not once per operation"
    assert kinds.count("operation") == 5
    requests = [e for e in events if e["kind"] == "request"]
    assert [e["action"] for e in requests].count("Send") == 5
    assert len(requests) <= 10, "one Send and one Receive per operation"
    assert 401 not in [e.get("status") for e in requests], "no new NTLM handshake per operation"


def test_parallel_operations_share_one_process(simulated: Target) -> None:
    conn = connect(simulated, max_parallel_operations=8)
    run_script(conn, GET, payload(), resource="warm-up")
    simulated.set_knobs(latency_ms=20)
    mark = simulated.journal_mark()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            run_script(conn, GET, payload(), resource="t")
        except BaseException as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(16)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        simulated.set_knobs()
    assert errors == []
    events = simulated.journal_since(mark)
    assert [e["kind"] for e in events].count("command") == 0
    operations = simulated.operation_events_since(mark)
    assert len(operations) == 16
    assert len({e["shell_id"] for e in operations}) == 1
    sends = [e for e in events if e["kind"] == "request" and e["action"] == "Send"]
    assert len(sends) < 16, "requests queued while a Send is on the wire go out together"


def test_a_new_process_replaces_one_that_crashed(simulated: Target) -> None:
    conn = connect(simulated)
    run_script(conn, GET, payload(), resource="warm-up")
    simulated.set_knobs(process_faults=[{"kind": "crash", "on": "settings_file/get"}])
    mark = simulated.journal_mark()
    try:
        result = run_script(conn, GET, payload(), resource="t")
    finally:
        simulated.set_knobs()
    assert result.state["ensure"] == "absent"
    kinds = [e["kind"] for e in simulated.journal_since(mark)]
    assert kinds.count("process_crash") == 1 and kinds.count("command") == 1, "one new process, then the retry"


def test_a_hung_operation_is_stopped_and_named(simulated: Target) -> None:
    from providers.transport.errors import CommandTimedOut

    conn = connect(simulated, command_timeout_s=2, operation_timeout_s=1, read_timeout_s=5)
    run_script(conn, GET, payload(), resource="warm-up")
    simulated.set_knobs(process_faults=[{"kind": "hang", "on": "settings_file/get"}])
    mark = simulated.journal_mark()
    try:
        with pytest.raises(CommandTimedOut, match="command_timeout_s=2"):
            run_script(conn, GET, payload(), resource="t")
    finally:
        simulated.set_knobs()
    events = simulated.journal_since(mark)
    assert any(e["kind"] == "delete" for e in events), "the hung process's shell is deleted, which stops it"
    assert run_script(conn, GET, payload(), resource="after").state["ensure"] == "absent", "a new process serves"


@pytest.mark.parametrize("limit", ["requests", "memory"])
def test_processes_are_recycled(simulated: Target, limit: str) -> None:
    settings = {"process_max_requests": 3} if limit == "requests" else {"process_max_memory_mb": 100}
    conn = connect(simulated, **settings)
    simulated.set_knobs(process_working_set_mb=150 if limit == "memory" else 70)
    mark = simulated.journal_mark()
    try:
        for _ in range(6):
            run_script(conn, GET, payload(), resource="t")
    finally:
        simulated.set_knobs()
    events = simulated.journal_since(mark)
    shells = {e["shell_id"] for e in simulated.operation_events_since(mark)}
    expected = 2 if limit == "requests" else 6
    assert len(shells) == expected
    assert [e["kind"] for e in events].count("delete") >= expected - 1, "a recycled process's shell is deleted"


@pytest.mark.parametrize("kind", ["http500", "drop"])
def test_transient_failures_are_retried(simulated: Target, kind: str) -> None:
    conn = fresh(connect(simulated, retries=2))  # its first operation starts the process
    simulated.set_knobs(faults=[{"kind": kind, "on": "Command"}])
    try:
        result = run_script(conn, GET, payload(), resource="t")
    finally:
        simulated.set_knobs()
    assert result.state["ensure"] == "absent"
    assert any(e["kind"] == "fault" for e in simulated.journal()[-40:])


@pytest.mark.parametrize("action", ["Send", "Receive"])
def test_transient_failures_of_a_running_process_are_retried(simulated: Target, action: str) -> None:
    conn = connect(simulated, retries=2)
    run_script(conn, GET, payload(), resource="warm-up")
    simulated.set_knobs(faults=[{"kind": "http500", "on": action}])
    try:
        result = run_script(conn, GET, payload(), resource="t")
    finally:
        simulated.set_knobs()
    assert result.state["ensure"] == "absent"


def test_retries_are_bounded(simulated: Target) -> None:
    conn = fresh(connect(simulated, retries=1))
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


# --- what Windows' WinRM limits make of the session layer --------------------------------------------


def raw_protocol(target: Target) -> Any:
    from winrm.protocol import Protocol

    conn = connect(target)
    return Protocol(
        endpoint=conn.endpoint,
        transport="ssl" if conn.transport == "basic" else conn.transport,
        username=conn.username,
        password=conn.password,
        server_cert_validation="validate" if conn.validate_certificate else "ignore",
        ca_trust_path=conn.ca_bundle if conn.ca_bundle else "legacy_requests",
        message_encryption="auto",
    )


def open_shells_since(target: Target, mark: int) -> set[str]:
    events = target.journal_since(mark)
    created = {str(e["shell_id"]) for e in events if e["kind"] == "create"}
    gone = {str(e["shell_id"]) for e in events if e["kind"] in ("delete", "expire")}
    return created - gone


def test_max_shells_per_user_is_windows_default_of_30(simulated: Target) -> None:
    from winrm.exceptions import WSManFaultError

    protocol = raw_protocol(simulated)
    shells: list[str] = []
    try:

        def open_all() -> None:
            for _ in range(31):  # this test process's pooled sessions may hold a few already
                shells.append(protocol.open_shell())

        with pytest.raises(WSManFaultError, match="maximum number of 30 concurrent shells"):
            open_all()
    finally:
        for shell in shells:
            protocol.close_shell(shell)
    protocol.close_shell(protocol.open_shell())  # freed again


def test_every_cli_verb_deletes_its_shells(simulated: Target, engine: Any) -> None:
    # The provider process closes its pooled shells at exit; they used to go out after urllib3 had closed
    # the authenticated connections (401), so each verb leaked its shells until the 2-hour idle time-out.
    from providers.directory import Directory
    from tests.providers.test_iis_app_pool_engine import secret_connection

    path = f"C:\\UsercubeIacTests\\leak-{uuid.uuid4().hex[:8]}"

    def program() -> None:
        Directory("d", connection=secret_connection(simulated), path=path, subfolders=["a"])

    stack = engine(program)
    for verb in (stack.up, stack.refresh, stack.destroy):  # (preview and an up without changes read no host)
        mark = simulated.journal_mark()
        run = verb()
        assert run.ok, run.output
        assert [e for e in simulated.journal_since(mark) if e["kind"] == "create"], "the verb used the host"
        assert open_shells_since(simulated, mark) == set(), f"{verb.__name__} left shells open on the host"


def test_large_stdin_goes_in_chunks_under_max_envelope_size(simulated: Target) -> None:
    # Over MaxEnvelopeSizekb (500) a request envelope gets HTTP 413; the runner's stdin is sent in chunks.
    from winrm.exceptions import WinRMTransportError

    protocol = raw_protocol(simulated)
    shell = protocol.open_shell()
    try:
        command = protocol.run_command(shell, "cmd.exe", ["/c", "more"])
        with pytest.raises(WinRMTransportError) as refused:
            protocol.send_command_input(shell, command, b"x" * 600_000, end=True)
        assert refused.value.code == 413
    finally:
        protocol.close_shell(shell)
    big = {**payload(), "content": "é" * 400_000}  # ~1.1 MB of stdin once encoded
    mark = simulated.journal_mark()
    run_script(connect(simulated), GET, big, resource="big")
    sends = [e for e in simulated.journal_since(mark) if e["kind"] == "stdin"]
    assert len(sends) > 1 and not any(e["end"] for e in sends), "several Sends; stdin stays open for the next one"
    assert [r["input"] for r in simulated.requests_since(mark)] == [json.dumps(big, separators=(",", ":"))]


def test_clixml_on_stderr_is_decoded_into_the_error_message(simulated: Target) -> None:
    import base64

    from providers.scripting.runner import POWERSHELL, bootstrap_arguments, decode_stderr

    other = base64.b64encode("Write-Output 'not the bootstrap'".encode("utf-16-le")).decode("ascii")
    result = session_for(connect(simulated)).run(POWERSHELL, [*bootstrap_arguments()[:-1], other], b"")
    assert result.stderr.startswith(b"#< CLIXML"), "powershell.exe -EncodedCommand writes errors as CLIXML"
    text = decode_stderr(result.stderr)
    assert "does not model this -EncodedCommand script" in text
    assert "_x000D_" not in text and "<Objs" not in text and "Preparing modules" not in text
    assert decode_stderr(b"plain text\r\n") == "plain text"


def test_a_request_line_that_is_not_a_request_gets_an_error_answer(simulated: Target) -> None:
    import base64

    from providers.scripting.runner import POWERSHELL, bootstrap_arguments

    answer = session_for(connect(simulated)).request(POWERSHELL, bootstrap_arguments(), b"not-base64!")
    envelope = json.loads(answer)
    assert envelope["ok"] is False and envelope["error"]["id"].endswith("BadRequest")
    with pytest.raises(ValueError, match="one line"):
        session_for(connect(simulated)).request(POWERSHELL, bootstrap_arguments(), base64.b64encode(b"x") + b"\n")


def test_an_idle_shell_is_deleted_by_the_host_and_the_next_operation_opens_a_new_one(simulated: Target) -> None:
    # WinRM deletes a shell nobody used for winrm/config/winrs IdleTimeout (2 hours by default; here 1 s, the least
    # Windows allows). A request to it then gets the "shell was not found" fault.
    from winrm.exceptions import WSManFaultError

    conn = fresh(connect(simulated, retries=0))  # not even one retry: the reopening must not need one
    simulated.set_knobs(winrs_idle_timeout_ms=1000)
    try:
        protocol = raw_protocol(simulated)
        shell = protocol.open_shell()
        time.sleep(1.5)
        with pytest.raises(WSManFaultError) as expired:
            protocol.run_command(shell, "cmd.exe", ["/c", "echo", "hi"])
        assert expired.value.wsman_fault_code == 2150858843
        assert f"ShellId {shell} failed because the shell was not found" in expired.value.response

        run_script(conn, GET, payload(), resource="before")
        time.sleep(1.5)
        mark = simulated.journal_mark()
        assert run_script(conn, GET, payload(), resource="after").state["ensure"] == "absent"
    finally:
        simulated.set_knobs()
        close_session(conn)
    events = simulated.journal_since(mark)
    kinds = [e["kind"] for e in events]
    assert "expire" in kinds and kinds.count("create") == 1, "the host expired the shell; one new shell served"
    assert len({e["shell_id"] for e in simulated.operation_events_since(mark)}) == 1


def test_max_processes_per_shell_is_windows_default_of_25_and_the_session_layer_starts_one(simulated: Target) -> None:
    from winrm.exceptions import WSManFaultError

    protocol = raw_protocol(simulated)
    shell = protocol.open_shell()
    try:
        commands = [protocol.run_command(shell, "cmd.exe", ["/c", "more"]) for _ in range(25)]
        with pytest.raises(WSManFaultError, match="Not enough quota") as refused:
            protocol.run_command(shell, "cmd.exe", ["/c", "more"])
        assert refused.value.wsman_fault_code == 0x80070718  # ERROR_NOT_ENOUGH_QUOTA
        protocol.cleanup_command(shell, commands.pop())  # a terminated command frees its place
        commands.append(protocol.run_command(shell, "cmd.exe", ["/c", "more"]))
    finally:
        protocol.close_shell(shell)
    # The session layer starts one long-lived command per shell, even while recycling it.
    mark = simulated.journal_mark()
    conn = fresh(connect(simulated, process_max_requests=2))
    for _ in range(5):
        run_script(conn, GET, payload(), resource="t")
    close_session(conn)
    started = [e["shell_id"] for e in simulated.journal_since(mark) if e["kind"] == "command"]
    assert len(started) >= 3 and len(started) == len(set(started)), "never two processes in one shell"


@pytest.mark.parametrize("form", ["split", "whole", "whole, quoted full path"])
def test_a_whole_command_line_in_rsp_command_reaches_the_same_loop_as_the_split_form(
    simulated: Target, form: str
) -> None:
    # WinRS joins rsp:Command and rsp:Arguments into one command line (WSManRunShellCommand: "a user can specify
    # the command line and all of the arguments by using this parameter"), as pypsrp-style clients send it.
    from providers.scripting.runner import POWERSHELL, bootstrap_arguments, encode_request, loop_preamble

    program = {"whole, quoted full path": '"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"'}
    command, arguments = POWERSHELL, bootstrap_arguments()
    if form != "split":
        command, arguments = " ".join([program.get(form, POWERSHELL), *arguments]), []
    conn = fresh(connect(simulated))
    mark = simulated.journal_mark()
    try:
        answer = session_for(conn).request(command, arguments, encode_request(GET, payload()), preamble=loop_preamble())
    finally:
        close_session(conn)
    envelope = json.loads(answer)
    assert envelope["ok"] is True and envelope["state"]["ensure"] == "absent", envelope
    assert [e["op"] for e in simulated.operation_events_since(mark)] == ["settings_file/get"]


# --- what an error quotes of an answer that is no envelope ---------------------------------------------


class _Answers:
    """A session whose one request gets ``answer`` (the layer under run_script: only what it returns matters)."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer

    def request(self, *_: Any, **__: Any) -> bytes:
        return self.answer


@pytest.mark.parametrize(
    "answer",
    [
        b'{"ok":true,"state":{"content":"{\\"OpenIdClients\\":{\\"Job\\":\\"s3cr3t-client\\"}}"',  # cut short
        b'{"ok":true,"state":{"content":"s3cr3t-client"}}garbage',  # mangled after the envelope
    ],
)
def test_an_envelope_that_does_not_parse_is_never_quoted(monkeypatch: pytest.MonkeyPatch, answer: bytes) -> None:
    monkeypatch.setattr("providers.scripting.runner.session_for", lambda conn: _Answers(answer))
    conn = HostConnection.model_validate({"host": "h.example", "username": "u", "password": "p"})
    with pytest.raises(ScriptOutputInvalid, match="without a JSON envelope") as raised:
        run_script(conn, GET, payload(), resource="t")
    assert "s3cr3t-client" not in str(raised.value)
    assert f"{len(answer)} characters" in str(raised.value)


def test_an_answer_that_is_no_json_is_quoted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("providers.scripting.runner.session_for", lambda conn: _Answers(b"Access is denied.\r\n"))
    conn = HostConnection.model_validate({"host": "h.example", "username": "u", "password": "p"})
    with pytest.raises(ScriptOutputInvalid, match="Access is denied"):
        run_script(conn, GET, payload(), resource="t")

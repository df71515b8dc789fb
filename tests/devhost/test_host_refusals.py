"""The simulator never makes a wrong script look right: what it does not model fails loudly."""

from __future__ import annotations

import base64
import json
from typing import Any

from providers.scripting.runner import POWERSHELL, ScriptRef, bootstrap_arguments, loop_preamble, render_script
from providers.transport.connection import HostConnection
from providers.transport.session import session_for
from tests.support.hosts import Target

GET = ScriptRef("providers.settings_file", "get")
PAYLOAD = {"path": "C:\\x.json", "content": "", "encoding": "utf-8", "keep_backup": True, "readers": None}


def run(target: Target, script: str, payload: dict[str, Any] = PAYLOAD) -> dict[str, Any]:
    """The envelope the host's loop answers one request with."""
    request = {"script": script, "input": json.dumps(payload)}
    line = base64.b64encode(json.dumps(request).encode())
    conn = HostConnection.model_validate(target.connection)
    answer = session_for(conn).request(POWERSHELL, bootstrap_arguments(), line, preamble=loop_preamble())
    envelope: dict[str, Any] = json.loads(answer)
    return envelope


def refusal(envelope: dict[str, Any]) -> str:
    assert envelope["ok"] is False and envelope["error"]["id"].startswith("Simulator"), envelope
    message: str = envelope["error"]["message"]
    assert message.startswith("devhost (SIMULATOR)")
    return message


def test_the_reviewed_script_runs(simulated: Target) -> None:
    assert run(simulated, render_script(GET))["state"]["ensure"] == "absent"


def test_an_edited_script_is_refused_until_its_model_is_reviewed(simulated: Target) -> None:
    edited = render_script(GET).replace("Complete-Operation -State", "Complete-Operation -Sate")
    message = refusal(run(simulated, edited))
    assert "not reviewed" in message and "settings_file/get" in message


def test_an_unknown_operation_is_refused(simulated: Target) -> None:
    assert "does not model operation 'registry/set'" in refusal(
        run(simulated, "# op: registry/set\nparam([string]$InputJson)\n")
    )


def test_a_script_without_header_is_refused(simulated: Target) -> None:
    assert "no '# op:" in refusal(run(simulated, "Write-Output 'hello'\n"))


def test_input_that_does_not_match_the_model_is_refused(simulated: Target) -> None:
    assert "input does not match the model" in refusal(run(simulated, render_script(GET), {**PAYLOAD, "unexpected": 1}))


def test_another_encoded_command_is_refused(simulated: Target) -> None:
    other = base64.b64encode("Get-ChildItem C:\\".encode("utf-16-le")).decode()
    conn = HostConnection.model_validate(simulated.connection)
    result = session_for(conn).run(POWERSHELL, ["-NoProfile", "-EncodedCommand", other], b"")
    assert result.exit_code != 0 and b"does not model this -EncodedCommand" in result.stderr


def test_another_loop_is_refused(simulated: Target) -> None:
    other_loop = base64.b64encode(b"while ($true) { }") + b"\n"
    conn = HostConnection.model_validate(simulated.connection)
    result = session_for(conn).run(POWERSHELL, bootstrap_arguments(), other_loop)
    assert result.exit_code != 0 and b"does not model this loop script" in result.stderr


def test_an_arbitrary_command_is_refused(simulated: Target) -> None:
    conn = HostConnection.model_validate(simulated.connection)
    result = session_for(conn).run("net.exe", ["user", "administrator"], b"")
    assert result.exit_code != 0 and b"does not model this command" in result.stderr


def test_a_loop_whose_children_would_inherit_its_stdout_is_refused(simulated: Target) -> None:
    # Finding 4 of the hosting bundle review: a child given the loop's stdout pipe keeps the command open.
    loop = base64.b64decode(loop_preamble()).decode("utf-8")
    line = "[void]$kernel32::SetHandleInformation($kernel32::GetStdHandle($STD_OUTPUT_HANDLE), 1, 0)"
    assert line in loop
    inheriting = base64.b64encode(loop.replace(line, "").encode("utf-8")) + b"\n"
    conn = HostConnection.model_validate(simulated.connection)
    result = session_for(conn).run(POWERSHELL, bootstrap_arguments(), inheriting)
    assert result.exit_code != 0 and b"does not model this loop script" in result.stderr

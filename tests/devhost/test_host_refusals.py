"""The simulator never makes a wrong script look right: what it does not model fails loudly."""

from __future__ import annotations

import base64
import json
from typing import Any

from providers.scripting.runner import POWERSHELL, ScriptRef, bootstrap_arguments, render_script
from providers.transport.connection import HostConnection
from providers.transport.session import session_for
from tests.support.hosts import Target

GET = ScriptRef("providers.settings_file", "get")
PAYLOAD = {"path": "C:\\x.json", "content": "", "encoding": "utf-8", "keep_backup": True, "readers": None}


def run(target: Target, script: str, payload: dict[str, Any] = PAYLOAD, arguments: list[str] | None = None) -> Any:
    request = {"script": script, "input": json.dumps(payload)}
    stdin = base64.b64encode(json.dumps(request).encode())
    conn = HostConnection.model_validate(target.connection)
    return session_for(conn).run(POWERSHELL, arguments or bootstrap_arguments(), stdin)


def test_the_reviewed_script_runs(simulated: Target) -> None:
    result = run(simulated, render_script(GET))
    assert result.exit_code == 0
    assert json.loads(result.stdout)["state"]["ensure"] == "absent"


def test_an_edited_script_is_refused_until_its_model_is_reviewed(simulated: Target) -> None:
    edited = render_script(GET).replace("Complete-Operation -State", "Complete-Operation -Sate")
    result = run(simulated, edited)
    assert result.exit_code != 0 and result.stdout == b""
    assert b"not reviewed" in result.stderr and b"settings_file/get" in result.stderr


def test_an_unknown_operation_is_refused(simulated: Target) -> None:
    result = run(simulated, "# op: registry/set\nparam([string]$InputJson)\n")
    assert result.exit_code != 0 and b"does not model operation 'registry/set'" in result.stderr


def test_a_script_without_header_is_refused(simulated: Target) -> None:
    result = run(simulated, "Write-Output 'hello'\n")
    assert result.exit_code != 0 and b"no '# op:" in result.stderr


def test_input_that_does_not_match_the_model_is_refused(simulated: Target) -> None:
    result = run(simulated, render_script(GET), {**PAYLOAD, "unexpected": 1})
    assert result.exit_code != 0 and b"input does not match the model" in result.stderr


def test_another_encoded_command_is_refused(simulated: Target) -> None:
    other = base64.b64encode("Get-ChildItem C:\\".encode("utf-16-le")).decode()
    result = run(simulated, render_script(GET), arguments=["-NoProfile", "-EncodedCommand", other])
    assert result.exit_code != 0 and b"does not model this -EncodedCommand" in result.stderr


def test_an_arbitrary_command_is_refused(simulated: Target) -> None:
    conn = HostConnection.model_validate(simulated.connection)
    result = session_for(conn).run("net.exe", ["user", "administrator"], b"")
    assert result.exit_code != 0 and b"does not model this command" in result.stderr

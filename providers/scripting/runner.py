"""The one way an operation reaches a host.

A fixed bootstrap runs as ``powershell.exe -EncodedCommand`` and stays running; each operation's
script and its JSON input travel through the command's standard input (WinRM Send) as one request
line, and its envelope comes back as one response line. Two reasons for stdin: cmd.exe caps a
command line at 8191 characters, so a script on the command line breaks as soon as it grows; and
Windows records command lines in process-creation and script-block logs, where a secret must never
appear. The bootstrap therefore never changes and carries no data.
"""

from __future__ import annotations

import base64
import json
import logging
from functools import cache
from typing import Any

import jinja2

from providers.scripting.errors import HostOperationFailed, ScriptOutputInvalid
from providers.scripting.refs import OperationResult, ScriptRef
from providers.transport.clixml import decode_stderr
from providers.transport.connection import HostConnection
from providers.transport.session import session_for

__all__ = [
    "POWERSHELL",
    "OperationResult",
    "ScriptRef",
    "bootstrap_arguments",
    "decode_stderr",
    "encode_request",
    "loop_preamble",
    "run_script",
]

_log = logging.getLogger(__name__)

POWERSHELL = "powershell.exe"


@cache
def _environment(package: str) -> jinja2.Environment:
    # Jinja is used only to assemble files (the shared prelude into each script); values are
    # never rendered into script text: they arrive as JSON on stdin.
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [jinja2.PackageLoader(package, "scripts"), jinja2.PackageLoader("providers.scripting", "ps")]
        ),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )


@cache
def render_script(ref: ScriptRef) -> str:
    """The complete script text of an operation (header line, parameter block, prelude, body)."""
    body = _environment(ref.package).get_template(f"{ref.name}.ps1").render()
    return f"# op: {ref.operation}\n{body}"


def _ps_source(name: str) -> str:
    return jinja2.PackageLoader("providers.scripting", "ps").get_source(jinja2.Environment(), name)[0]


@cache
def bootstrap_arguments() -> list[str]:
    """The fixed command line: powershell.exe runs bootstrap.ps1, which reads the loop from stdin."""
    encoded = base64.b64encode(_ps_source("bootstrap.ps1").encode("utf-16-le")).decode("ascii")
    return ["-NoLogo", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-EncodedCommand", encoded]


@cache
def loop_preamble() -> bytes:
    """The first line of stdin: the loop (loop.ps1), base64 of UTF-8."""
    return base64.b64encode(_ps_source("loop.ps1").encode("utf-8")) + b"\n"


def encode_request(ref: ScriptRef, payload: dict[str, Any]) -> bytes:
    """One request line (without its id): base64 of UTF-8 JSON, so no console code page can mangle it and
    no line feed can split it."""
    request = {"script": render_script(ref), "input": json.dumps(payload, separators=(",", ":"))}
    return base64.b64encode(json.dumps(request).encode("utf-8"))


def _shown(text: str) -> str:
    """What an error may quote of an answer that is no envelope. An envelope cut short or mangled may hold a
    state with a settings file's content (client secrets, connection strings): only its size is shown. Any other
    text (a PowerShell error, a proxy's page) carries no value of ours: its start helps to see what answered."""
    if text.lstrip().startswith("{") or '"ok"' in text:
        return f"a JSON text that does not parse ({len(text)} characters, not shown: it may hold settings content)"
    return repr(text[:500])


def run_script(conn: HostConnection, ref: ScriptRef, payload: dict[str, Any], *, resource: str) -> OperationResult:
    """Run one operation script on the host and return its parsed envelope; raise on any failure."""
    answer = session_for(conn).request(
        POWERSHELL, bootstrap_arguments(), encode_request(ref, payload), preamble=loop_preamble()
    )
    text = answer.decode("utf-8", errors="replace")
    try:
        envelope = json.loads(text)
    except json.JSONDecodeError:
        envelope = None
    if not isinstance(envelope, dict) or "ok" not in envelope:
        raise ScriptOutputInvalid(
            conn.label, f"{resource} ({ref.operation}): the host answered without a JSON envelope: {_shown(text)}"
        )
    if not envelope["ok"]:
        error = envelope.get("error") or {}
        raise HostOperationFailed(
            conn.label,
            resource,
            ref.operation,
            str(error.get("id") or "UnknownError"),
            str(error.get("message") or "(no message)"),
            category=error.get("category"),
            property_name=error.get("property"),
        )
    return OperationResult(
        changed=bool(envelope.get("changed")),
        state=dict(envelope.get("state") or {}),
        changes=list(envelope.get("changes") or []),
    )

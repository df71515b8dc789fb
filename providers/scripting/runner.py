"""The one way an operation reaches a host.

A fixed bootstrap runs as ``powershell.exe -EncodedCommand``; the operation's script and its
JSON input travel through the command's standard input (WinRM Send). Two reasons: cmd.exe caps
a command line at 8191 characters, so a script on the command line breaks as soon as it grows;
and Windows records command lines in process-creation and script-block logs, where a secret
must never appear. The bootstrap therefore never changes and carries no data.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import jinja2

from providers.scripting.errors import HostOperationFailed, ScriptOutputInvalid
from providers.transport.connection import HostConnection
from providers.transport.session import session_for

_log = logging.getLogger(__name__)

POWERSHELL = "powershell.exe"


@dataclass(frozen=True)
class ScriptRef:
    """A script file ``<package>/scripts/<name>.ps1``, e.g. ``ScriptRef("providers.settings_file", "get")``."""

    package: str
    name: str

    @property
    def operation(self) -> str:
        return f"{self.package.rsplit('.', 1)[-1]}/{self.name}"


@dataclass(frozen=True)
class OperationResult:
    changed: bool
    state: dict[str, Any]
    changes: list[dict[str, Any]] = field(default_factory=list)


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


@cache
def bootstrap_arguments() -> list[str]:
    text = jinja2.PackageLoader("providers.scripting", "ps").get_source(jinja2.Environment(), "bootstrap.ps1")[0]
    encoded = base64.b64encode(text.encode("utf-16-le")).decode("ascii")
    return ["-NoLogo", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-EncodedCommand", encoded]


def encode_request(ref: ScriptRef, payload: dict[str, Any]) -> bytes:
    """What goes to stdin: base64 of UTF-8 JSON, so no console code page can mangle it."""
    request = {"script": render_script(ref), "input": json.dumps(payload, separators=(",", ":"))}
    return base64.b64encode(json.dumps(request).encode("utf-8"))


_CLIXML_HEADER = "#< CLIXML"
_CLIXML_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
_PS_NAMESPACE = "{http://schemas.microsoft.com/powershell/2004/04}"


def decode_stderr(raw: bytes) -> str:
    """powershell.exe's stderr as text.

    Under -EncodedCommand with redirected stderr (always, over WinRM), powershell.exe 5.1 writes error,
    warning and progress records as CLIXML behind a ``#< CLIXML`` line (as pywinrm's
    ``Session._clean_error_msg`` decodes it): keep the error and warning strings, unescape ``_xHHHH_``,
    drop progress records. Anything else is returned as it came.
    """
    text = raw.decode("utf-8", errors="replace")
    start = text.find(_CLIXML_HEADER)
    if start < 0:
        return text.strip()
    before, xml_text = text[:start], text[start + len(_CLIXML_HEADER) :].strip()
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError:
        return text.strip()
    lines = [
        _CLIXML_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), node.text or "")
        for node in root.iter(f"{_PS_NAMESPACE}S")
        if node.get("S") in ("Error", "Warning")
    ]
    return (before + "".join(lines)).strip()


def run_script(conn: HostConnection, ref: ScriptRef, payload: dict[str, Any], *, resource: str) -> OperationResult:
    """Run one operation script on the host and return its parsed envelope; raise on any failure."""
    result = session_for(conn).run(POWERSHELL, bootstrap_arguments(), encode_request(ref, payload))
    stdout = result.stdout.decode("utf-8", errors="replace").strip()
    try:
        envelope = json.loads(stdout) if stdout else None
    except json.JSONDecodeError:
        envelope = None
    if not isinstance(envelope, dict) or "ok" not in envelope:
        stderr = decode_stderr(result.stderr)
        raise ScriptOutputInvalid(
            conn.label,
            f"{resource} ({ref.operation}): the script exited with code {result.exit_code} without a JSON result; "
            f"stderr: {stderr[:2000] or '(empty)'}; stdout: {stdout[:500] or '(empty)'}",
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

"""Runs the project's PowerShell script files on a host: JSON in through stdin, one JSON envelope out.

``run_script`` loads the runner (jinja2, the WinRM client) on its first call: the provider process
imports this package at start, and a preview that reads no host never calls it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from providers.scripting.errors import HostOperationFailed, ScriptOutputInvalid
from providers.scripting.refs import OperationResult, ScriptRef

if TYPE_CHECKING:
    from providers.transport.connection import HostConnection

__all__ = ["HostOperationFailed", "OperationResult", "ScriptOutputInvalid", "ScriptRef", "run_script"]


def run_script(conn: HostConnection, ref: ScriptRef, payload: dict[str, Any], *, resource: str) -> OperationResult:
    """``providers.scripting.runner.run_script``, imported when first needed."""
    from providers.scripting import runner

    return runner.run_script(conn, ref, payload, resource=resource)

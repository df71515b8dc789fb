"""Runs the project's PowerShell script files on a host: JSON in through stdin, one JSON envelope out."""

from providers.scripting.errors import HostOperationFailed, ScriptOutputInvalid
from providers.scripting.runner import OperationResult, ScriptRef, run_script

__all__ = ["HostOperationFailed", "OperationResult", "ScriptOutputInvalid", "ScriptRef", "run_script"]

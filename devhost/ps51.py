"""SIMULATOR: Windows PowerShell 5.1 language rules that the models apply, and the script
constructs each model assumes.

The simulator never runs PowerShell: a model interprets what a script asks. Where a 5.1 rule
changes what a script gets (array unrolling, native argument passing, native stderr under
``$ErrorActionPreference = 'Stop'``), the model applies the rule below to the construct the
reviewed script uses, and declares that construct as a ``ScriptFact``. ``check_script`` refuses a
script text that lacks a declared construct, so a script that would behave differently on
Windows is never blessed (``tools/bless_scripts.py``) and never run against a model that no
longer describes it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ScriptFact:
    """A statement the operation script must (or must not) contain for its model to be right."""

    operations: tuple[str, ...]
    pattern: str  # a regular expression searched in the rendered script
    why: str  # the Windows behaviour and its source
    present: bool = True  # False: the script must NOT contain the pattern

    def violated_by(self, script: str) -> bool:
        return (re.search(self.pattern, script) is not None) != self.present


def in_function(name: str, pattern: str) -> str:
    """A ``ScriptFact`` pattern that matches ``pattern`` inside the body of the script function ``name`` only.

    The scripts write ``function Name ... {`` at the start of a line and close it with a ``}`` that starts a
    line (nested blocks are indented), so the body runs up to the first line that starts with ``}``."""
    return rf"(?ms)^function {re.escape(name)}\b(?:(?!^\}}).)*?{pattern}"


def in_code_of_function(name: str, pattern: str) -> str:
    """As ``in_function``, but only in the code of the body: what follows a ``#`` on a line (a comment) is not
    searched, so a fact that forbids ``pattern`` is not broken by a comment naming it (a ``#`` inside a string
    hides the rest of that line too: none of the facts' functions has one)."""
    return in_function(name, rf"^[^#\n]*?{pattern}")


def check_script(facts: Iterable[ScriptFact], operation: str, script: str) -> list[str]:
    """The facts of ``operation`` that ``script`` violates, each with its reason."""
    problems = []
    for fact in facts:
        if operation in fact.operations and fact.violated_by(script):
            verb = "must contain" if fact.present else "must not contain"
            problems.append(f"{operation}: the script {verb} /{fact.pattern}/ — {fact.why}")
    return problems


class NativeCommandError(Exception):
    """The terminating error 5.1 raises for a stderr line of a native program redirected with
    ``2>&1`` while ``$ErrorActionPreference`` is 'Stop' (PowerShell/PowerShell#3996, #14273)."""


def function_output(value: Sequence[Any], *, unary_comma: bool) -> Any:
    """What ``$x = Some-Function`` holds when the function does ``return <array>``.

    PowerShell writes a returned collection to the pipeline one element at a time (about_Return:
    "the array is unrolled"; about_Pipelines): an empty array becomes ``$null``, a one-element
    array its only element, a longer one a new ``object[]``. ``return ,$array`` wraps the array in
    a one-element array, so the caller gets the array itself.
    """
    if unary_comma:
        return value
    items = list(value)
    if not items:
        return None
    if len(items) == 1:
        return items[0]
    return items


def native_argv(arguments: Sequence[str]) -> list[str]:
    """The argv a native program receives from ``& prog.exe @arguments`` in Windows PowerShell 5.1.

    5.1 uses legacy argument passing (about_Parsing, "Passing arguments that contain quote
    characters"; PSNativeCommandArgumentPassing only exists from 7.3): an empty string is dropped
    (PowerShell/PowerShell#15143, #16639), and an argument that is exactly ``""`` goes onto the
    command line as ``""``, which the C runtime parses back into one empty argument. The simulator
    refuses anything else with quotes or spaces: it does not model 5.1's quoting of those.
    """
    argv: list[str] = []
    for argument in arguments:
        if argument == "":
            continue
        if argument == '""':
            argv.append("")
            continue
        if '"' in argument or any(c.isspace() for c in argument):
            raise ValueError(f"SIMULATOR: 5.1 quoting of the native argument {argument!r} is not modelled")
        argv.append(argument)
    return argv


def native_call_output(stdout: str, stderr: str, *, eap: str) -> str:
    """``$output = & prog.exe ... 2>&1``: under 'Stop' the first stderr line is a terminating
    NativeCommandError (5.1; PowerShell 7.2+ no longer does this, PowerShell/PowerShell#3996);
    under 'Continue' it becomes an ErrorRecord in $output whose text is the line."""
    if stderr and eap == "Stop":
        raise NativeCommandError(stderr.splitlines()[0])
    return stdout + stderr

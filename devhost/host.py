"""SIMULATOR: what a command line means on the simulated Windows host.

The project's operations arrive as ``powershell.exe ... -EncodedCommand <bootstrap>`` with the
script and its JSON input on stdin. The simulator checks that the bootstrap does what the
model assumes, identifies the script by its ``# op:`` header, refuses any script text it was
not reviewed against (``devhost/ops/modelled_scripts.json``), and runs the Python model of
that operation. Everything else goes to ``devhost.builtin_commands``; anything unknown fails
loudly with a non-zero exit code.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import threading
import traceback
from importlib import resources
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape as xml_escape

from devhost.builtin_commands import check_command_line, start_builtin
from devhost.fs import WindowsFs, WindowsPathError
from devhost.ops import OPERATIONS, UNLOCKED_OPERATIONS
from devhost.ops.envelope import InputContractError
from devhost.processes import CommandRequest, ProcessOutput, SimulatedHostApi, SimulatedProcess

# Statements the bootstrap must contain for the model below to be right: it reads all of stdin,
# decodes base64 UTF-8 JSON (with JavaScriptSerializer, no length limit), and invokes the script with
# the input JSON string.
_BOOTSTRAP_STATEMENTS = (
    "[Convert]::FromBase64String([Console]::In.ReadToEnd())",
    # Without a console (a service host, some WinRM plugins) the OutputEncoding setter throws an
    # IOException; Ansible's bootstrap_wrapper.ps1 guards the same line.
    "try { [Console]::OutputEncoding = New-Object System.Text.UTF8Encoding $false } catch { }",
    "$json.MaxJsonLength = [int]::MaxValue",
    "$json.DeserializeObject(",
    "& ([scriptblock]::Create($request['script'])) -InputJson $request['input']",
    "$ErrorActionPreference = 'Stop'",
    "$ProgressPreference = 'SilentlyContinue'",
)
_HEADER = re.compile(r"^# op: (?P<op>[a-z_]+/[a-z_]+)\n")
_POWERSHELL = re.compile(r"^(?:.*\\)?powershell(?:\.exe)?$", re.IGNORECASE)


def modelled_scripts() -> dict[str, list[str]]:
    """op -> sha256 of every script text whose model was reviewed."""
    text = resources.files("devhost.ops").joinpath("modelled_scripts.json").read_text(encoding="utf-8")
    data: dict[str, list[str]] = json.loads(text)
    return data


class FinishedProcess:
    """A process whose whole output is known when it starts (or once stdin ends)."""

    def __init__(self, stdout: bytes = b"", stderr: bytes = b"", exit_code: int = 0) -> None:
        self._output = ProcessOutput(stdout, stderr, True, exit_code)
        self._read = False

    def write_stdin(self, data: bytes, end: bool) -> None:
        pass

    def read(self, timeout: float) -> ProcessOutput:
        if self._read:
            return ProcessOutput(done=True, exit_code=self._output.exit_code)
        self._read = True
        return self._output

    def signal(self, code: str) -> None:
        pass


def _clixml_text(text: str) -> str:
    """XML text with the escapes PowerShell's serializer adds: ``_xHHHH_`` for control characters and for an
    underscore that would read as one."""
    out = []
    for index, char in enumerate(text):
        if char == "_" and re.match(r"x[0-9A-Fa-f]{4}_", text[index + 1 :]):
            out.append("_x005F_")
        elif ord(char) < 0x20:
            out.append(f"_x{ord(char):04X}_")
        else:
            out.append(xml_escape(char))
    return "".join(out)


def powershell_failure(message: str, exit_code: int = 1) -> FinishedProcess:
    """A failure of powershell.exe as a WinRM client receives it.

    Under -EncodedCommand with stderr redirected (WinRS always redirects it), powershell.exe 5.1 writes its
    error, warning, verbose and progress records to stderr serialized as CLIXML, behind a ``#< CLIXML``
    line (ConsoleHost: ``-OutputFormat`` defaults to XML when the input is not a console; pywinrm's
    ``Session._clean_error_msg`` and pypsrp decode the same stream). The first record is usually the
    "Preparing modules for first use." progress record; each error line is an ``S="Error"`` string ending
    in ``_x000D__x000A_``.
    """
    progress = (
        '<Obj S="progress" RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject</T>'
        '<T>System.Object</T></TN><MS><I64 N="SourceId">1</I64><PR N="Record"><AV>Preparing modules for first '
        "use.</AV><AI>0</AI><Nil /><PI>-1</PI><PC>-1</PC><T>Completed</T><SR>-1</SR><SD> </SD></PR></MS></Obj>"
    )
    lines = f"devhost (SIMULATOR): {message}".split("\r\n")
    errors = "".join(f'<S S="Error">{_clixml_text(line + chr(13) + chr(10))}</S>' for line in lines)
    text = f'#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">{progress}{errors}</Objs>'
    return FinishedProcess(stderr=text.encode("utf-8"), exit_code=exit_code)


class ScriptProcess:
    """powershell.exe running the project's bootstrap: collects stdin, then runs the modelled operation."""

    def __init__(self, host: SimulatedHost) -> None:
        self._host = host
        self._stdin = bytearray()
        self._done = threading.Event()
        self._result: FinishedProcess | None = None

    def write_stdin(self, data: bytes, end: bool) -> None:
        if self._done.is_set():
            return
        self._stdin.extend(data)
        if end:
            self._result = self._host.run_operation(bytes(self._stdin))
            self._done.set()

    def read(self, timeout: float) -> ProcessOutput:
        if not self._done.wait(timeout):
            return ProcessOutput()
        assert self._result is not None
        return self._result.read(timeout)

    def signal(self, code: str) -> None:
        if not self._done.is_set():
            self._result = FinishedProcess(exit_code=-1073741510)  # STATUS_CONTROL_C_EXIT
            self._done.set()


class SimulatedHost(SimulatedHostApi):
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.fs = WindowsFs(state_dir)
        # Operations run one at a time; models that need Windows' concurrency rules (IIS commits)
        # check them explicitly.
        self._lock = threading.Lock()

    def start(self, request: CommandRequest) -> SimulatedProcess:
        too_long = check_command_line(request)
        if too_long is not None:
            return too_long
        # pywinrm sends all arguments in one rsp:Arguments element; split them as powershell.exe would.
        arguments = " ".join(request.arguments).split()
        if _POWERSHELL.match(request.command) and "-EncodedCommand" in arguments:
            return self._start_bootstrap(arguments)
        return start_builtin(request)

    def _start_bootstrap(self, arguments: list[str]) -> SimulatedProcess:
        index = arguments.index("-EncodedCommand")
        try:
            bootstrap = base64.b64decode(arguments[index + 1], validate=True).decode("utf-16-le")
        except (IndexError, binascii.Error, UnicodeDecodeError):
            return powershell_failure("-EncodedCommand is not base64 of UTF-16LE text")
        missing = [s for s in _BOOTSTRAP_STATEMENTS if s not in bootstrap]
        if missing:
            return powershell_failure(f"does not model this -EncodedCommand script; missing statements {missing}")
        return ScriptProcess(self)

    def run_operation(self, stdin: bytes) -> FinishedProcess:
        try:
            request = json.loads(base64.b64decode(stdin, validate=True).decode("utf-8"))
            script: str = request["script"]
            payload: dict[str, Any] = json.loads(request["input"])
        except (ValueError, KeyError, TypeError) as error:
            return powershell_failure(f"stdin is not the bootstrap's base64 JSON request: {error}")
        header = _HEADER.match(script)
        if not header:
            return powershell_failure("the script has no '# op: <resource>/<operation>' header; it is not modelled")
        op = header.group("op")
        model = OPERATIONS.get(op)
        if model is None:
            return powershell_failure(f"does not model operation '{op}'")
        digest = hashlib.sha256(script.encode("utf-8")).hexdigest()
        if digest not in modelled_scripts().get(op, []):
            return powershell_failure(
                f"operation '{op}' arrived with script text sha256 {digest}, which its model was not reviewed "
                "against; review devhost/ops against the changed script, then run `make bless-scripts`"
            )
        try:
            if op in UNLOCKED_OPERATIONS:
                envelope = model(self.fs, payload)
            else:
                with self._lock:
                    envelope = model(self.fs, payload)
        except InputContractError as error:
            return powershell_failure(f"operation '{op}' input does not match the model: {error}")
        except WindowsPathError as error:
            return FinishedProcess(
                stdout=json.dumps(
                    {
                        "ok": False,
                        "error": {
                            "id": "UnexpectedError",
                            "category": "InvalidArgument",
                            "message": str(error),
                            "property": None,
                        },
                    }
                ).encode(),
                exit_code=1,
            )
        except Exception:  # noqa: BLE001 - a crash of a model must be visible, never a success
            return powershell_failure(f"the model of '{op}' crashed:\r\n{traceback.format_exc()}", exit_code=2)
        return FinishedProcess(stdout=json.dumps(envelope.to_json()).encode("utf-8"), exit_code=envelope.exit_code)

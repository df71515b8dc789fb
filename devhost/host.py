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
import time
import traceback
from importlib import resources
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape as xml_escape

from devhost.builtin_commands import check_command_line, start_builtin
from devhost.cmdline import command_line_argv
from devhost.fs import WindowsFs, WindowsPathError
from devhost.hooks import Journal, Knobs, sim_dir
from devhost.ops import OPERATIONS, UNLOCKED_OPERATIONS
from devhost.ops.envelope import InputContractError
from devhost.processes import CommandRequest, ProcessOutput, SimulatedHostApi, SimulatedProcess

# Statements the command-line bootstrap must contain: it reads the loop from the first stdin line (base64
# of UTF-8) and runs it.
_BOOTSTRAP_STATEMENTS = (
    "$ErrorActionPreference = 'Stop'",
    "& ([scriptblock]::Create([Text.Encoding]::UTF8.GetString([Convert]::FromBase64String([Console]::In.ReadLine()))))",
)
# Statements the loop must contain for the model below to be right: it reads one request per stdin
# line on a reader runspace, decodes base64 UTF-8 JSON (JavaScriptSerializer, no length limit), runs each
# request in a new PowerShell instance of a runspace pool in a new local scope, and answers with one framed
# line per request; the operation's script ends through the exception Exit-Operation throws.
_LOOP_STATEMENTS = (
    "for ($line = $Stdin.ReadLine(); $null -ne $line; $line = $Stdin.ReadLine())",
    # Without a console (a service host, some WinRM plugins) the OutputEncoding setter throws an
    # IOException; Ansible's bootstrap_wrapper.ps1 guards the same line.
    "try { [Console]::OutputEncoding = New-Object System.Text.UTF8Encoding $false } catch { }",
    "$json.MaxJsonLength = [int]::MaxValue",
    "$json.DeserializeObject(",
    "[Convert]::FromBase64String($line.Substring($space + 1))",
    # Native programs the operations start (sc.exe, csc.exe under Add-Type) must not inherit the request
    # pipe: a synchronous ReadFile pending on it blocks their C runtime start-up (python/cpython#78961).
    "[void]$kernel32::SetHandleInformation($kernel32::GetStdHandle($STD_INPUT_HANDLE), 1, 0)",
    "[void]$kernel32::SetStdHandle($STD_INPUT_HANDLE, [IntPtr]::Zero)",
    # Nor its stdout and stderr: CreateProcess with bInheritHandles TRUE (what .NET Framework's Process.Start
    # passes) gives a child every inheritable handle (learn.microsoft.com, CreateProcessW); one holding the stdout
    # pipe keeps the WinRM command open and can write into the framed responses.
    "[void]$kernel32::SetHandleInformation($kernel32::GetStdHandle($STD_OUTPUT_HANDLE), 1, 0)",
    "[void]$kernel32::SetHandleInformation($kernel32::GetStdHandle($STD_ERROR_HANDLE), 1, 0)",
    "[void]$pool.SetMaxRunspaces(32)",
    "$instance.RunspacePool = $pool",
    "AddScript($operation, $true).AddArgument($argument)",
    "$null = & ([scriptblock]::Create($UsercubeRequest.Script)) -InputJson $UsercubeRequest.InputJson",
    "if ($e.Data.Contains('UsercubeEnvelope'))",
    '$frame = [Text.Encoding]::ASCII.GetBytes("`n#usercube-response $Id $([Environment]::WorkingSet) $encoded`n")',
    "$stdout.Write($frame, 0, $frame.Length)",
    "$ErrorActionPreference = 'Stop'",
    "$ProgressPreference = 'SilentlyContinue'",
)
# RunspacePool.SetMaxRunspaces(32): at most 32 requests run at once; BeginInvoke queues the rest until a
# runspace is free (learn.microsoft.com, RunspacePool class).
_POOL_SIZE = 32
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


class OperationLoop:
    """SIMULATOR: powershell.exe running the project's bootstrap loop, which answers one framed request per
    stdin line until stdin ends (then it finishes what runs and exits 0).

    Process knobs (``process_faults``, one-shot, first whose ``on`` names the request's operation or
    ``any``): ``{"kind": "crash"}`` ends the process with STATUS_STACK_OVERFLOW as it takes that request;
    ``{"kind": "hang"}`` makes that request never answer. ``process_working_set_mb`` is what the loop
    reports as its working set (default 70: powershell.exe with the IIS and PKI types loaded).
    """

    _CRASH_EXIT = -1073741571  # 0xC00000FD STATUS_STACK_OVERFLOW, as a crashed powershell.exe exits

    def __init__(self, host: SimulatedHost, shell_id: str) -> None:
        self._host = host
        self._shell_id = shell_id
        self._lock = threading.Condition()
        self._stdin = bytearray()
        self._stdout = bytearray()
        self._running = 0
        self._stdin_ended = False
        self._exit_code: int | None = None
        self._slots = threading.Semaphore(_POOL_SIZE)
        self._stderr = b""
        self._loop_read = False

    def write_stdin(self, data: bytes, end: bool) -> None:
        with self._lock:
            if self._exit_code is not None:
                return
            self._stdin.extend(data)
            lines = []
            while (newline := self._stdin.find(b"\n")) >= 0:
                lines.append(bytes(self._stdin[:newline]).rstrip(b"\r"))
                del self._stdin[: newline + 1]
            if end:
                self._stdin_ended = True
        for line in lines:
            if not self._loop_read:
                self._loop_read = True
                if not self._start_loop(line):
                    return
                continue
            self._take(line)
        self._maybe_exit()

    def _start_loop(self, line: bytes) -> bool:
        """The bootstrap runs the first line as the loop; the simulator runs only the loop it models."""
        try:
            loop = base64.b64decode(line, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            self._die("the first line of stdin is not base64 of the UTF-8 loop script")
            return False
        missing = [s for s in _LOOP_STATEMENTS if s not in loop]
        if missing:
            self._die(f"does not model this loop script; missing statements {missing}")
            return False
        return True

    def _die(self, message: str) -> None:
        self._stderr = powershell_failure(message).read(0).stderr
        self._finish(1)

    def _take(self, line: bytes) -> None:
        request_id, _, encoded = line.decode("ascii", errors="replace").partition(" ")
        op, script, payload, problem = self._host.parse_request(encoded)
        fault = self._host.knobs.take_fault(op or "", key="process_faults")
        if fault is not None and fault.get("kind") == "crash":
            self._host.journal({"kind": "process_crash", "shell_id": self._shell_id, "op": op})
            self._finish(self._CRASH_EXIT)
            return
        with self._lock:
            self._running += 1
        worker = threading.Thread(target=self._run, args=(request_id, op, script, payload, problem, fault), daemon=True)
        worker.start()

    def _run(
        self,
        request_id: str,
        op: str | None,
        script: str,
        payload: dict[str, Any],
        problem: dict[str, Any] | None,
        fault: dict[str, Any] | None,
    ) -> None:
        with self._slots:
            started = time.time()
            if fault is not None and fault.get("kind") == "hang":
                self._host.journal({"kind": "process_hang", "shell_id": self._shell_id, "op": op})
                return  # never answers; the thread ends with the process
            envelope = problem if problem is not None else self._host.run_operation(op or "", script, payload)
            self._host.journal(
                {
                    "kind": "operation",
                    "shell_id": self._shell_id,
                    "request_id": request_id,
                    "op": op,
                    "started": started,
                    "ended": time.time(),
                    "ok": bool(envelope.get("ok")),
                }
            )
        working_set = int(float(self._host.knobs.read().get("process_working_set_mb", 70)) * 1024 * 1024)
        encoded = base64.b64encode(json.dumps(envelope).encode("utf-8")).decode("ascii")
        frame = f"\n#usercube-response {request_id} {working_set} {encoded}\n".encode("ascii")
        with self._lock:
            self._running -= 1
            if self._exit_code is None:
                self._stdout.extend(frame)
            self._lock.notify_all()
        self._maybe_exit()

    def _maybe_exit(self) -> None:
        with self._lock:
            if self._stdin_ended and self._running == 0 and self._exit_code is None:
                self._exit_code = 0
                self._lock.notify_all()

    def _finish(self, code: int) -> None:
        with self._lock:
            if self._exit_code is None:
                self._exit_code = code
            self._lock.notify_all()

    def read(self, timeout: float) -> ProcessOutput:
        with self._lock:
            self._lock.wait_for(lambda: bool(self._stdout or self._stderr) or self._exit_code is not None, timeout)
            out, self._stdout = bytes(self._stdout), bytearray()
            err, self._stderr = self._stderr, b""
            done = self._exit_code is not None
            return ProcessOutput(stdout=out, stderr=err, done=done, exit_code=self._exit_code)

    def signal(self, code: str) -> None:
        self._finish(-1073741510)  # STATUS_CONTROL_C_EXIT: terminated


class SimulatedHost(SimulatedHostApi):
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.fs = WindowsFs(state_dir)
        # Operations run one at a time; models that need Windows' concurrency rules (IIS commits)
        # check them explicitly.
        self._lock = threading.Lock()
        self.journal = Journal(sim_dir(state_dir) / "journal.jsonl")
        self.knobs = Knobs(sim_dir(state_dir) / "knobs.json")

    def start(self, request: CommandRequest) -> SimulatedProcess:
        too_long = check_command_line(request)
        if too_long is not None:
            return too_long
        # The program gets one command line, rsp:Command and rsp:Arguments joined (pywinrm sends all arguments in
        # one rsp:Arguments element; pypsrp and others may send the whole line in rsp:Command), and splits it by
        # the CommandLineToArgvW rules (devhost.cmdline).
        argv = command_line_argv(request.command_line)
        if argv and _POWERSHELL.match(argv[0]) and "-EncodedCommand" in argv[1:]:
            return self._start_bootstrap(request, argv[1:])
        return start_builtin(request)

    def _start_bootstrap(self, request: CommandRequest, arguments: list[str]) -> SimulatedProcess:
        index = arguments.index("-EncodedCommand")
        try:
            bootstrap = base64.b64decode(arguments[index + 1], validate=True).decode("utf-16-le")
        except (IndexError, binascii.Error, UnicodeDecodeError):
            return powershell_failure("-EncodedCommand is not base64 of UTF-16LE text")
        missing = [s for s in _BOOTSTRAP_STATEMENTS if s not in bootstrap]
        if missing:
            return powershell_failure(f"does not model this -EncodedCommand script; missing statements {missing}")
        return OperationLoop(self, request.shell_id)

    def parse_request(self, encoded: str) -> tuple[str | None, str, dict[str, Any], dict[str, Any] | None]:
        """(op, script, input, None), or the envelope the loop answers a request it cannot run with. A script
        the simulator does not model is refused loudly, naming the reason."""
        try:
            request = json.loads(base64.b64decode(encoded, validate=True).decode("utf-8"))
            script: str = request["script"]
            payload: dict[str, Any] = json.loads(request["input"])
        except (ValueError, KeyError, TypeError) as error:
            return None, "", {}, _refusal("BadRequest", f"the request is not base64 of a JSON request: {error}")
        header = _HEADER.match(script)
        if not header:
            return (
                None,
                script,
                payload,
                _refusal("NotModelled", "the script has no '# op: <resource>/<operation>' header"),
            )
        op = header.group("op")
        if op not in OPERATIONS:
            return op, script, payload, _refusal("NotModelled", f"does not model operation '{op}'")
        digest = hashlib.sha256(script.encode("utf-8")).hexdigest()
        if digest not in modelled_scripts().get(op, []):
            return (
                op,
                script,
                payload,
                _refusal(
                    "NotModelled",
                    f"operation '{op}' arrived with script text sha256 {digest}, which its model was not reviewed "
                    "against; review devhost/ops against the changed script, then run `make bless-scripts`",
                ),
            )
        return op, script, payload, None

    def run_operation(self, op: str, script: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The envelope the modelled script answers with."""
        model = OPERATIONS[op]
        try:
            if op in UNLOCKED_OPERATIONS:
                envelope = model(self.fs, payload)
            else:
                with self._lock:
                    envelope = model(self.fs, payload)
        except InputContractError as error:
            return _refusal("NotModelled", f"operation '{op}' input does not match the model: {error}")
        except WindowsPathError as error:
            return {
                "ok": False,
                "error": {
                    "id": "UnexpectedError",
                    "category": "InvalidArgument",
                    "message": str(error),
                    "property": None,
                },
            }
        except Exception:  # noqa: BLE001 - a crash of a model must be visible, never a success
            return _refusal("ModelCrashed", f"the model of '{op}' crashed:\r\n{traceback.format_exc()}")
        return envelope.to_json()


def _refusal(error_id: str, message: str) -> dict[str, Any]:
    """What the simulated loop answers for a request it will not run: an error envelope that says loudly that
    the SIMULATOR refused it (a real host would run the script; the simulator only runs what it models)."""
    return {
        "ok": False,
        "error": {
            "id": f"Simulator{error_id}",
            "category": "NotImplemented",
            "message": f"devhost (SIMULATOR): {message}",
            "property": None,
        },
    }

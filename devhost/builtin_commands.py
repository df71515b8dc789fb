"""Models of the few plain Windows commands the WinRM recordings run.

SIMULATOR: nothing here is Windows. ``start_builtin`` turns a command line into
a ``SimulatedProcess`` that produces the bytes cmd.exe or powershell.exe would
(``cmd.exe /c echo hi``, ``set``, ``echo err>&2 && exit 1``, ``Write-Host``,
``(pwd).Path``, ``powershell.exe -`` reading a script from stdin,
``Start-Sleep``). Anything it does not recognise fails loudly on stderr with a
non-zero exit code, so a test can never pass because the simulator silently
accepted a command it does not understand.

Output is always UTF-8 (the codepage pywinrm/pypsrp usually ask for is 65001;
``CommandRequest`` does not carry the shell's codepage).
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from devhost.processes import CommandRequest, ProcessOutput, SimulatedProcess

# cmd.exe refuses command lines longer than this (documented limit, in characters).
CMD_LINE_LIMIT = 8191
# What cmd.exe returns for "is not recognized as an internal or external command".
NOT_MODELLED_EXIT_CODE = 9009
# STATUS_CONTROL_C_EXIT: what a process killed by ctrl_c/terminate exits with.
SIGNALLED_EXIT_CODE = 0xC000013A


@dataclass(frozen=True)
class Op:
    """One step of a scripted process: write to a stream, sleep, or exit."""

    kind: str  # "out" | "err" | "sleep" | "exit"
    data: bytes = b""
    seconds: float = 0.0
    code: int = 0


def out(text: str) -> Op:
    return Op("out", data=text.encode("utf-8"))


def err(text: str) -> Op:
    return Op("err", data=text.encode("utf-8"))


def sleep(seconds: float) -> Op:
    return Op("sleep", seconds=seconds)


def exit_with(code: int) -> Op:
    return Op("exit", code=code)


StdinScript = Callable[[bytes], list[Op]]


class ScriptedProcess:
    """A process whose behaviour is a list of ``Op``s played out in real time.

    No thread runs it: the ops are evaluated lazily against the monotonic
    clock whenever someone reads, so a ``Start-Sleep 30`` really takes 30 s of
    wall time without a thread sitting in ``time.sleep``. A process built with
    ``stdin_script`` produces nothing until stdin ends (like the project's
    ``powershell.exe -EncodedCommand <bootstrap>`` that reads its script from
    stdin), then plays the ops that function returns.
    """

    def __init__(self, ops: list[Op] | None = None, stdin_script: StdinScript | None = None) -> None:
        self._cond = threading.Condition()
        self._ops: deque[Op] = deque(ops or [])
        self._stdin_script = stdin_script
        self._stdin = bytearray()
        self._waiting_for_stdin = stdin_script is not None
        self._cursor = time.monotonic()  # when the next op may start
        self._stdout = bytearray()
        self._stderr = bytearray()
        self._done = False
        self._exit_code = 0

    def write_stdin(self, data: bytes, end: bool) -> None:
        with self._cond:
            if not self._waiting_for_stdin or self._stdin_script is None:
                return  # like a process that never reads stdin: the bytes go nowhere
            self._stdin += data
            if end:
                self._waiting_for_stdin = False
                self._ops.extend(self._stdin_script(bytes(self._stdin)))
                self._cursor = time.monotonic()
                self._cond.notify_all()

    def read(self, timeout: float) -> ProcessOutput:
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._cond:
            while True:
                now = time.monotonic()
                wake_at = self._advance(now)
                if self._stdout or self._stderr or self._done:
                    result = ProcessOutput(
                        stdout=bytes(self._stdout),
                        stderr=bytes(self._stderr),
                        done=self._done,
                        exit_code=self._exit_code if self._done else None,
                    )
                    self._stdout.clear()
                    self._stderr.clear()
                    return result
                if now >= deadline:
                    return ProcessOutput()
                self._cond.wait(min(deadline, wake_at) - now)

    def signal(self, code: str) -> None:
        with self._cond:
            if not self._done:
                self._ops.clear()
                self._waiting_for_stdin = False
                self._done = True
                self._exit_code = SIGNALLED_EXIT_CODE
            self._cond.notify_all()

    def _advance(self, now: float) -> float:
        """Play every op due by ``now``; return when the next one becomes due."""
        while self._ops:
            op = self._ops[0]
            if op.kind == "sleep":
                if self._cursor + op.seconds > now:
                    return self._cursor + op.seconds
                self._cursor += op.seconds
            elif op.kind == "out":
                self._stdout += op.data
            elif op.kind == "err":
                self._stderr += op.data
            elif op.kind == "exit":
                self._finish(op.code)
                return float("inf")
            self._ops.popleft()
        if not self._waiting_for_stdin and not self._done:
            self._finish(0)
        return float("inf")

    def _finish(self, code: int) -> None:
        self._ops.clear()
        self._done = True
        self._exit_code = code


def not_modelled(command_line: str) -> list[Op]:
    shown = command_line if len(command_line) <= 500 else command_line[:500] + "..."
    return [
        err(f"devhost (simulator) does not model this command: {shown}\r\n"),
        exit_with(NOT_MODELLED_EXIT_CODE),
    ]


def check_command_line(request: CommandRequest) -> SimulatedProcess | None:
    """cmd.exe's own refusal of an over-long command line, or ``None`` if it fits.

    Exposed so ``devhost.host`` can apply the limit before dispatching to its
    own script models, as cmd.exe would for every command.
    """
    if len(request.command_line) > CMD_LINE_LIMIT:
        return ScriptedProcess([err("The command line is too long.\r\n"), exit_with(1)])
    return None


def start_builtin(request: CommandRequest) -> SimulatedProcess:
    """Start the model of ``request``'s command line (the host's fallback)."""
    too_long = check_command_line(request)
    if too_long is not None:
        return too_long
    exe = _exe_name(request.command)
    args = " ".join(request.arguments)
    if exe == "cmd":
        match = re.match(r"\s*/[cCkK]\s?(.*)\Z", args, re.DOTALL)
        if match is None:
            return ScriptedProcess(not_modelled(request.command_line))
        return ScriptedProcess(run_cmd(match.group(1), request))
    if exe == "powershell":
        return start_powershell(args, request)
    # WinRS runs the command line through cmd.exe /c unless WINRS_SKIP_CMD_SHELL
    # is set, so cmd built-ins such as ``echo hi`` work without "cmd.exe /c".
    return ScriptedProcess(run_cmd(request.command_line, request))


def _exe_name(command: str) -> str:
    name = re.split(r"[\\/]", command.strip().strip('"'))[-1].lower()
    return name[:-4] if name.endswith(".exe") else name


# --- cmd.exe ---------------------------------------------------------------


def _split_cmd_chain(line: str) -> list[tuple[str, str]]:
    """Split ``a && b || c & d`` into (operator-before, segment) pairs.

    ``>&2``/``2>&1`` are redirections, not separators; quoted text is opaque.
    """
    parts: list[tuple[str, str]] = []
    op, start, i, quoted = "", 0, 0, False
    while i < len(line):
        ch = line[i]
        if ch == '"':
            quoted = not quoted
        elif not quoted and line[i : i + 2] in ("&&", "||"):
            parts.append((op, line[start:i]))
            op, start = line[i : i + 2], i + 2
            i += 1
        elif not quoted and ch == "&" and (i == 0 or line[i - 1] != ">"):
            parts.append((op, line[start:i]))
            op, start = "&", i + 1
        i += 1
    parts.append((op, line[start:]))
    return parts


_REDIRECT = re.compile(r"\s?(?:1?>&2|2>&1|>\s*nul)(?=\s|$)", re.IGNORECASE)


def run_cmd(line: str, request: CommandRequest) -> list[Op]:
    """Model a cmd.exe command line made of echo/set/cd/exit joined by &&, ||, &."""
    stripped = line.strip()
    if len(stripped) >= 2 and stripped[0] == stripped[-1] == '"':
        line = stripped[1:-1]  # cmd /c "a && b": cmd strips the outer quotes
    ops: list[Op] = []
    env = shell_environment(request)
    status = 0
    for op, segment in _split_cmd_chain(line):
        if (op == "&&" and status != 0) or (op == "||" and status == 0):
            continue
        to_stderr = re.search(r"1?>&2(?=\s|$)", segment) is not None
        discard = re.search(r">\s*nul(?=\s|$)", segment, re.IGNORECASE) is not None
        text = _REDIRECT.sub("", segment).lstrip()
        word, _, rest = text.partition(" ")
        word = word.lower()
        if word in ("echo", "echo."):
            printed = rest if word == "echo" else ""
            if word == "echo" and not rest.strip():
                printed = "ECHO is on."
            if not discard:
                ops.append((err if to_stderr else out)(printed + "\r\n"))
            status = 0
        elif word == "exit":
            code_text = re.sub(r"(?i)^/b\s*", "", rest.strip())
            ops.append(exit_with(int(code_text) if re.fullmatch(r"-?\d+", code_text) else 0))
            return ops
        elif word == "set" and not rest.strip():
            listing = "".join(f"{k}={v}\r\n" for k, v in sorted(env.items(), key=lambda kv: kv[0].upper()))
            ops.append(out(listing))
            status = 0
        elif word == "set" and "=" in rest:
            name, _, value = rest.strip().partition("=")
            env[name] = value
            status = 0
        elif word == "cd" and not rest.strip():
            ops.append(out(_working_directory(request) + "\r\n"))
            status = 0
        elif word in ("powershell", "powershell.exe"):
            ops.extend(run_powershell_args(rest, request))
            status = 0
        else:
            ops.extend(not_modelled(request.command_line))
            return ops
    ops.append(exit_with(status))
    return ops


def _working_directory(request: CommandRequest) -> str:
    return request.working_directory or f"C:\\Users\\{_user_name(request)}"


def _user_name(request: CommandRequest) -> str:
    return (request.user.split("\\")[-1].split("@")[0]) or "devhost"


def shell_environment(request: CommandRequest) -> dict[str, str]:
    """The environment ``set`` prints: a plausible Windows Server one plus the shell's variables."""
    user = _user_name(request)
    profile = f"C:\\Users\\{user}"
    env = {
        "ALLUSERSPROFILE": "C:\\ProgramData",
        "APPDATA": f"{profile}\\AppData\\Roaming",
        "CommonProgramFiles": "C:\\Program Files\\Common Files",
        "COMPUTERNAME": "DEVHOST-SIM",
        "ComSpec": "C:\\Windows\\system32\\cmd.exe",
        "DEVHOST_SIMULATOR": "1",
        "LOCALAPPDATA": f"{profile}\\AppData\\Local",
        "NUMBER_OF_PROCESSORS": "2",
        "OS": "Windows_NT",
        "Path": "C:\\Windows\\system32;C:\\Windows;C:\\Windows\\System32\\Wbem;"
        "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\",
        "PATHEXT": ".COM;.EXE;.BAT;.CMD;.VBS;.VBE;.JS;.JSE;.WSF;.WSH;.MSC",
        "PROCESSOR_ARCHITECTURE": "AMD64",
        "ProgramData": "C:\\ProgramData",
        "ProgramFiles": "C:\\Program Files",
        "PROMPT": "$P$G",
        "PUBLIC": "C:\\Users\\Public",
        "SystemDrive": "C:",
        "SystemRoot": "C:\\Windows",
        "TEMP": f"{profile}\\AppData\\Local\\Temp",
        "TMP": f"{profile}\\AppData\\Local\\Temp",
        "USERDOMAIN": "DEVHOST-SIM",
        "USERNAME": user,
        "USERPROFILE": profile,
        "windir": "C:\\Windows",
    }
    env.update(request.environment)
    return env


# --- powershell.exe --------------------------------------------------------

# powershell.exe switches that take no value / one value (case-insensitive prefixes).
_PS_FLAGS = ("-noprofile", "-noninteractive", "-nologo", "-noexit", "-mta", "-sta")
_PS_VALUED = ("-executionpolicy", "-inputformat", "-outputformat", "-windowstyle", "-version")
_PS_ENCODED = ("-encodedcommand", "-enc", "-ec", "-e")


def start_powershell(args: str, request: CommandRequest) -> SimulatedProcess:
    rest = args
    while True:
        match = re.match(r"\s*(-\w*)(?=\s|$)", rest)
        if match is None:
            break
        switch = match.group(1).lower()
        after = rest[match.end() :]
        if switch == "-":
            # "powershell.exe -": the script arrives on stdin, runs when stdin ends.
            return ScriptedProcess(stdin_script=lambda data: run_powershell_script(_decode_stdin(data), request))
        if switch in _PS_FLAGS:
            rest = after
        elif switch in _PS_VALUED:
            rest = re.sub(r"^\s*\S+", "", after, count=1)
        elif switch in _PS_ENCODED:
            value = after.split()[0] if after.split() else ""
            try:
                script = base64.b64decode(value, validate=True).decode("utf-16-le")
            except (binascii.Error, UnicodeDecodeError):
                return ScriptedProcess(not_modelled(request.command_line))
            return ScriptedProcess(run_powershell_script(script, request))
        elif switch in ("-command", "-c"):
            return ScriptedProcess(run_powershell_script(after, request))
        else:
            return ScriptedProcess(not_modelled(request.command_line))
    return ScriptedProcess(run_powershell_script(rest, request))


def run_powershell_args(args: str, request: CommandRequest) -> list[Op]:
    """``powershell ...`` typed inside a cmd line: only the -Command form is modelled."""
    text = re.sub(r"(?i)^\s*(?:-\w+\s+)*?(?:-command\s+|-c\s+)?", "", args)
    return run_powershell_script(text.strip().strip('"'), request)


def _decode_stdin(data: bytes) -> str:
    for bom, codec in ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le")):
        if data.startswith(bom):
            return data[len(bom) :].decode(codec, errors="replace")
    return data.decode("utf-8", errors="replace")


def _split_statements(script: str) -> list[str]:
    """Split on ``;`` and newlines outside quotes (enough for one-liners)."""
    statements: list[str] = []
    current: list[str] = []
    quote = ""
    for ch in script:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in ";\n":
            statements.append("".join(current))
            current = []
            continue
        current.append(ch)
    statements.append("".join(current))
    return [s.strip() for s in statements if s.strip()]


def _ps_words(text: str) -> list[str]:
    """Tokenise PowerShell arguments: whitespace-separated, quotes removed."""
    return [a or b or c for a, b, c in re.findall(r'"([^"]*)"|\'([^\']*)\'|(\S+)', text)]


def run_powershell_script(script: str, request: CommandRequest) -> list[Op]:
    ops: list[Op] = []
    cwd = _working_directory(request)
    env = shell_environment(request)
    for statement in _split_statements(script):
        word, _, rest = statement.partition(" ")
        verb = word.lower()
        if verb == "write-host":
            words = _ps_words(rest)
            newline = "\n"
            if "-NoNewline" in words or "-nonewline" in words:
                newline = ""
            cleaned = [w for w in words if w.lower() != "-nonewline"]
            for flag in ("-foregroundcolor", "-backgroundcolor"):
                lowered = [w.lower() for w in cleaned]
                if flag in lowered:
                    idx = lowered.index(flag)
                    del cleaned[idx : idx + 2]
            ops.append(out(" ".join(cleaned) + newline))
        elif verb in ("write-output", "echo") or statement[:1] in "\"'":
            words = _ps_words(rest if verb in ("write-output", "echo") else statement)
            ops.append(out("".join(w + "\r\n" for w in words)))
        elif verb in ("start-sleep", "sleep"):
            match = re.fullmatch(r"(?i)(?:(-seconds|-s|-milliseconds|-m)\s+)?(\d+(?:\.\d+)?)", rest.strip())
            if match is None:
                return ops + not_modelled(statement)
            amount = float(match.group(2))
            unit = (match.group(1) or "-seconds").lower()
            ops.append(sleep(amount / 1000 if unit.startswith("-m") else amount))
        elif statement.lower() in ("(pwd).path", "(get-location).path", "$pwd.path", "pwd"):
            ops.append(out(cwd + "\r\n"))
        elif re.fullmatch(r"(?i)\$env:\w+", statement):
            name = statement.split(":", 1)[1]
            value = next((v for k, v in env.items() if k.lower() == name.lower()), None)
            if value is not None:
                ops.append(out(value + "\r\n"))
        elif verb == "exit":
            code = rest.strip()
            ops.append(exit_with(int(code) if re.fullmatch(r"-?\d+", code) else 0))
            return ops
        else:
            return ops + not_modelled(statement)
    return ops

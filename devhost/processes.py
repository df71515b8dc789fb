"""The boundary between the simulated WS-Management endpoint and the simulated
Windows processes it starts.

SIMULATOR: nothing here is Windows. The WS-Man layer (``devhost.wsman``) turns
``Command``/``Send``/``Receive``/``Signal`` messages into calls on these
objects; ``devhost.host`` decides what a command line means on the simulated
machine and answers with the same streams and exit codes Windows would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass
class ProcessOutput:
    """What one ``Receive`` collects from a process since the previous one."""

    stdout: bytes = b""
    stderr: bytes = b""
    done: bool = False
    exit_code: int | None = None


@dataclass
class CommandRequest:
    """A ``rsp:CommandLine`` as the client sent it, plus the shell's context."""

    command: str
    arguments: list[str] = field(default_factory=list)
    working_directory: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    shell_id: str = ""
    user: str = ""

    @property
    def command_line(self) -> str:
        """The command line as cmd.exe would see it (command and arguments joined by spaces)."""
        return " ".join([self.command, *self.arguments])


class SimulatedProcess(Protocol):
    def write_stdin(self, data: bytes, end: bool) -> None:
        """Data from a ``Send``; ``end`` is the stream's ``End="true"``."""

    def read(self, timeout: float) -> ProcessOutput:
        """Output produced so far; wait up to ``timeout`` seconds for some.

        Returns an empty, not-done ``ProcessOutput`` when nothing was ready in time
        (the WS-Man layer then answers with the ``w:TimedOut`` fault, as Windows does).
        """

    def signal(self, code: str) -> None:
        """A ``Signal`` (terminate or ctrl_c URI)."""


class SimulatedHostApi(Protocol):
    def start(self, request: CommandRequest) -> SimulatedProcess:
        """Start a process; raise ``CommandRejected`` for what Windows refuses up front."""


class CommandRejected(Exception):
    """Windows refuses the command before it starts (e.g. a command line over 8191 chars)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code

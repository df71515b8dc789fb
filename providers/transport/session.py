"""One WinRM session per host, reused by every operation of the provider process.

pywinrm's ``Session.run_ps`` opens a TCP connection, authenticates, creates a shell and starts a
process for every call. We use its ``Protocol`` level instead: per host one shell whose process stays
running and answers framed requests (``providers.transport.channel``), shared by every operation.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import requests
from winrm.exceptions import (
    InvalidCredentialsError,
    WinRMOperationTimeoutError,
    WinRMTransportError,
    WSManFaultError,
)
from winrm.exceptions import WinRMError as PyWinRMError
from winrm.protocol import Protocol

from providers.transport import proxy_environ
from providers.transport.channel import STDIN_CHUNK_BYTES, UTF8_CODEPAGE, Channel, Response
from providers.transport.connection import HostConnection
from providers.transport.errors import (
    AuthenticationFailed,
    CommandTimedOut,
    HostUnreachable,
    ProcessEnded,
    ShellGone,
    WinRMError,
    WinRMProtocolError,
)

_log = logging.getLogger(__name__)
proxy_environ.install()
_T = TypeVar("_T")


@dataclass(frozen=True)
class CommandResult:
    stdout: bytes
    stderr: bytes
    exit_code: int


class WinRMSession:
    """Runs operations on one host; thread-safe; retries transient failures of idempotent operations.

    Operations go through one long-lived command (a ``Channel``) that takes up to
    ``max_parallel_operations`` requests at once, so the host starts powershell.exe once per provider
    process rather than once per operation. A channel that fails is replaced; one that answered
    ``process_max_requests`` requests or grew past ``process_max_memory_mb`` is drained and replaced.
    """

    def __init__(self, conn: HostConnection) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(conn.max_parallel_operations)
        self._channel: Channel | None = None
        self._draining: list[Channel] = []
        self._closed = False
        self.channels_started = 0

    @property
    def connection(self) -> HostConnection:
        return self._conn

    def request(
        self, command: str, arguments: list[str], payload: bytes, *, preamble: bytes = b"", idempotent: bool = True
    ) -> bytes:
        """Send ``payload`` (one line, no line feed) to the long-lived ``command`` and return its answer.
        ``preamble`` is what a new process gets on stdin before its first request."""
        if b"\n" in payload:
            raise ValueError("a request is one line: encode the payload (e.g. base64) before sending it")
        attempts = 1 + (self._conn.retries if idempotent else 0)
        delay = 0.5
        reopened = False
        with self._slots:
            attempt = 0
            while attempt < attempts:
                attempt += 1
                try:
                    channel = self._channel_for(command, arguments, preamble)
                    response = channel.request(payload, self._conn.command_timeout_s)
                    self._after_response(channel, response)
                    return response.payload
                except (HostUnreachable, WinRMProtocolError, ProcessEnded) as error:
                    if isinstance(error, ShellGone) and not error.delivered and not reopened:
                        # The host deleted the idle shell before this request reached a process: it goes to a
                        # new shell once, idempotent or not, and that does not count as an attempt.
                        reopened = True
                        attempt -= 1
                        _log.info("%s; opening a new shell", error)
                        continue
                    if attempt == attempts or not _is_transient(error):
                        raise
                    _log.warning("%s (attempt %d of %d); retrying in %.1fs", error, attempt, attempts, delay)
                    time.sleep(delay)
                    delay = min(delay * 2, 8.0)
        raise AssertionError("unreachable")  # pragma: no cover

    def run(self, command: str, arguments: list[str], stdin: bytes) -> CommandResult:
        """Run one command to its end in a shell of its own (diagnostics and tests; operations use
        ``request``). Not retried."""
        protocol = self._translate(self._new_protocol)

        def run() -> CommandResult:
            shell_id = protocol.open_shell(codepage=UTF8_CODEPAGE)
            try:
                command_id = protocol.run_command(shell_id, command, arguments)
                chunks = [stdin[i : i + STDIN_CHUNK_BYTES] for i in range(0, len(stdin), STDIN_CHUNK_BYTES)]
                for index, chunk in enumerate(chunks or [b""]):
                    protocol.send_command_input(shell_id, command_id, chunk, end=index == max(len(chunks) - 1, 0))
                stdout, stderr, code = self._collect(protocol, shell_id, command_id)
                protocol.cleanup_command(shell_id, command_id)
                return CommandResult(stdout, stderr, code)
            finally:
                protocol.close_shell(shell_id)
                protocol.transport.close_session()

        return self._translate(run)

    def close(self) -> None:
        with self._lock:
            channels = [c for c in (self._channel, *self._draining) if c is not None]
            self._channel, self._draining, self._closed = None, [], True
        for channel in channels:
            channel.close()

    # -- internals -------------------------------------------------------------------------

    def _channel_for(self, command: str, arguments: list[str], preamble: bytes) -> Channel:
        with self._lock:
            if self._closed:
                raise HostUnreachable(self._conn.label, "the session was closed (the provider is exiting)")
            channel = self._channel
            if channel is not None and channel.usable:
                return channel
            self._channel = None
            # Created under the lock: requests that arrive together wait for one process, not one each.
            channel = Channel(self._conn, self._new_protocol, self._translate, command, arguments, preamble)
            self._channel = channel
            self.channels_started += 1
            _close_at_exit()
            return channel

    def _after_response(self, channel: Channel, response: Response) -> None:
        worn = channel.requests_sent >= self._conn.process_max_requests
        heavy = response.working_set > self._conn.process_max_memory_mb * 1024 * 1024
        with self._lock:
            if (worn or heavy) and channel is self._channel:
                _log.info(
                    "recycling the PowerShell process on %s (%d requests, working set %d MB)",
                    self._conn.label,
                    channel.requests_sent,
                    response.working_set // (1024 * 1024),
                )
                channel.drain()
                self._channel = None
                self._draining.append(channel)
            finished = [c for c in self._draining if c.idle]
            self._draining = [c for c in self._draining if not c.idle]
        for old in finished:
            old.close()

    def _new_protocol(self) -> Protocol:
        conn = self._conn
        protocol = Protocol(
            endpoint=conn.endpoint,
            transport="ssl" if conn.transport == "basic" else conn.transport,
            username=conn.username,
            password=conn.password,
            server_cert_validation="validate" if conn.validate_certificate else "ignore",
            ca_trust_path=conn.ca_bundle if conn.ca_bundle else "legacy_requests",
            read_timeout_sec=conn.read_timeout_s,
            operation_timeout_sec=conn.operation_timeout_s,
            message_encryption="auto",
            proxy=None,
        )
        protocol.transport.build_session()  # (authenticates: NTLM with encryption handshakes here)
        return protocol

    def _collect(self, protocol: Protocol, shell_id: str, command_id: str) -> tuple[bytes, bytes, int]:
        deadline = time.monotonic() + self._conn.command_timeout_s
        stdout: list[bytes] = []
        stderr: list[bytes] = []
        while True:
            try:
                out, err, code, done = protocol.get_command_output_raw(shell_id, command_id)
            except WinRMOperationTimeoutError:
                # The host had nothing new within OperationTimeout: normal for a long command.
                if time.monotonic() > deadline:
                    raise CommandTimedOut(
                        self._conn.label,
                        f"the command did not finish within command_timeout_s={self._conn.command_timeout_s}s",
                        "raise command_timeout_s in the connection settings if the command is expected to be slow",
                    ) from None
                continue
            stdout.append(out)
            stderr.append(err)
            if done:
                return b"".join(stdout), b"".join(stderr), code

    def _translate(self, action: Callable[[], _T]) -> _T:
        """Run ``action`` and turn pywinrm/requests exceptions into our tree, naming the host."""
        label = self._conn.label
        try:
            return action()
        except WinRMError:
            raise
        except InvalidCredentialsError:
            raise AuthenticationFailed(
                label,
                f"the host refused the credentials of {self._conn.username!r} ({self._conn.transport})",
                "check the user name and password in the stack configuration and that the account may use WinRM",
            ) from None
        except requests.exceptions.SSLError as error:
            raise HostUnreachable(
                label,
                f"the HTTPS certificate could not be verified: {error}",
                "give the issuing CA in ca_bundle, or fix the host's WinRM listener certificate",
            ) from None
        except requests.exceptions.Timeout:
            raise HostUnreachable(
                label,
                f"no answer within read_timeout_s={self._conn.read_timeout_s}s",
                "check that the host is up and that WinRM listens on this port",
            ) from None
        except requests.exceptions.ConnectionError as error:
            raise HostUnreachable(
                label,
                f"could not connect to {self._conn.endpoint}: {_root_cause(error)}",
                "check the address, port and firewall, and that WinRM is enabled (winrm quickconfig)",
            ) from None
        except WinRMTransportError as error:
            raise WinRMProtocolError(
                label, f"HTTP {error.code} from the WinRM service: {error.message}", transient=error.code >= 500
            ) from None
        except WSManFaultError as error:
            code = error.wsman_fault_code or error.code
            if code == _INVALID_SELECTORS:
                raise ShellGone(
                    label,
                    f"the host no longer has this WinRM shell or its command (WS-Management fault {code}: "
                    f"{error.reason.strip()}); WinRM deletes a shell idle longer than its IdleTimeout",
                    "nothing to do when it is rare (a new shell is opened); if it happens often, raise "
                    "winrm/config/winrs IdleTimeout on the host or look for WinRM service restarts",
                ) from None
            raise WinRMProtocolError(
                label, f"WS-Management fault {code}: {error.reason}", transient=code in _TRANSIENT_FAULTS
            ) from None
        except PyWinRMError as error:
            raise WinRMProtocolError(label, str(error)) from None


# WS-Man faults worth another try: E_FAIL (the service hiccuped) and the per-user shell/operation
# quotas (another client's shells are closing). Every other fault means the request itself is wrong.
# ERROR_WSMAN_INVALID_SELECTORS: the ShellId or CommandId of the request is not (or no longer) on the host.
_INVALID_SELECTORS = 2150858843
_TRANSIENT_FAULTS = {0x80004005, 0x803381A4, 0x803381A5, 0x803381A6}


def _is_transient(error: WinRMError) -> bool:
    if isinstance(error, ProcessEnded):
        return True
    if isinstance(error, HostUnreachable):
        return "certificate" not in str(error)
    return isinstance(error, WinRMProtocolError) and error.transient


def _root_cause(error: BaseException) -> str:
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return str(error) or type(error).__name__


_sessions: dict[str, WinRMSession] = {}
_sessions_lock = threading.Lock()


def session_for(conn: HostConnection) -> WinRMSession:
    """The process-wide session for these settings (kept at module level, never on a provider object,
    because providers are pickled by the Pulumi SDK)."""
    key = conn.fingerprint()
    with _sessions_lock:
        session = _sessions.get(key)
        if session is None:
            session = _sessions[key] = WinRMSession(conn)
        return session


def close_session(conn: HostConnection) -> None:
    """Close and forget the process-wide session for these settings (its shell is deleted)."""
    with _sessions_lock:
        session = _sessions.pop(conn.fingerprint(), None)
    if session is not None:
        session.close()


_close_registered = False
_close_registered_lock = threading.Lock()


def _close_at_exit() -> None:
    """Register ``close_all_sessions`` with atexit once a shell (and so a urllib3 connection pool) exists.

    atexit runs handlers last-registered first, and urllib3 closes its pools from weakref.finalize's exit
    hook, which is registered when the first finalizer (the first pool) is created. Registered at import,
    our handler ran after it: every Delete went out on a new connection, failed NTLM authentication (401)
    and left the shell on the host. Registered after the first pool, it runs first; ``_Shell.close``
    retries on a fresh connection in any case.
    """
    global _close_registered
    with _close_registered_lock:
        if not _close_registered:
            atexit.register(close_all_sessions)
            _close_registered = True


def close_all_sessions() -> None:
    """Delete every host's shell (the provider is exiting), the hosts in parallel."""
    with _sessions_lock:
        sessions = list(_sessions.values())
        _sessions.clear()
    threads = [threading.Thread(target=session.close, daemon=True) for session in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=4.0)

"""One authenticated WinRM session per host, reused by every operation of the provider process.

pywinrm's ``Session.run_ps`` opens a TCP connection, authenticates and creates and
deletes a shell for every call. We use its ``Protocol`` level instead and keep a small
pool of open shells per host: the Python dynamic-provider server runs up to four
operations at once, and a cmd shell runs one command at a time, so each operation
borrows a shell and returns it.
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

from providers.transport.connection import HostConnection
from providers.transport.errors import (
    AuthenticationFailed,
    CommandTimedOut,
    HostUnreachable,
    WinRMError,
    WinRMProtocolError,
)

_log = logging.getLogger(__name__)
# requests reads proxy settings by setting and deleting os.environ["no_proxy"] around the lookup
# (requests.utils.set_environ, called from Session.merge_environment_settings, which pywinrm's
# build_session calls): two sessions built at once in two threads make one of them fail with
# KeyError 'no_proxy'. pywinrm builds a session once and caches it, so building under a lock is enough.
_SESSION_BUILD = threading.Lock()
_T = TypeVar("_T")

# UTF-8 console code page, so output of any language survives the trip.
_UTF8_CODEPAGE = 65001

# Raw stdin bytes per WinRM Send. pywinrm base64-encodes them again (x4/3) into one envelope, and Windows
# refuses an envelope over MaxEnvelopeSizekb with HTTP 413 (default 500 KB; 150 KB on older hosts), so a
# large input goes in several Sends, End only on the last (as Ansible's winrm connection plugin does with
# its _wrapper_payload_stream). 96 KiB -> 128 KiB of base64, under even the old 150 KB limit.
STDIN_CHUNK_BYTES = 96 * 1024


@dataclass(frozen=True)
class CommandResult:
    stdout: bytes
    stderr: bytes
    exit_code: int


class _Shell:
    """An open cmd shell and the authenticated HTTP session it lives on."""

    def __init__(self, conn: HostConnection) -> None:
        transport = "ssl" if conn.transport == "basic" else conn.transport
        self.protocol = Protocol(
            endpoint=conn.endpoint,
            transport=transport,
            username=conn.username,
            password=conn.password,
            server_cert_validation="validate" if conn.validate_certificate else "ignore",
            ca_trust_path=conn.ca_bundle if conn.ca_bundle else "legacy_requests",
            read_timeout_sec=conn.read_timeout_s,
            operation_timeout_sec=conn.operation_timeout_s,
            message_encryption="auto",
            proxy=None,
        )
        with _SESSION_BUILD:
            self.protocol.transport.build_session()
        self.shell_id = self.protocol.open_shell(codepage=_UTF8_CODEPAGE)
        _close_at_exit()

    def close(self) -> None:
        # An undeleted shell holds one of the user's MaxShellsPerUser (30 by default) for the shell's
        # IdleTimeout (2 hours), so a failed Delete is retried once on a new, freshly authenticated
        # connection: NTLM authenticates (and encrypts for) one TCP connection, and at interpreter exit
        # urllib3 may already have closed the pooled one.
        for attempt in (1, 2):
            try:
                if attempt == 2:
                    self.protocol.transport.close_session()
                    with _SESSION_BUILD:
                        self.protocol.transport.build_session()
                self.protocol.close_shell(self.shell_id)
                return
            except Exception:  # noqa: BLE001 - closing is best effort; the host expires idle shells
                _log.debug("closing shell %s failed (attempt %d)", self.shell_id, attempt, exc_info=True)


class WinRMSession:
    """Runs commands on one host; thread-safe; retries transient failures of idempotent commands."""

    def __init__(self, conn: HostConnection) -> None:
        self._conn = conn
        self._idle: list[_Shell] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(conn.max_shells)
        self._closed = False

    @property
    def connection(self) -> HostConnection:
        return self._conn

    def run(self, command: str, arguments: list[str], stdin: bytes, *, idempotent: bool = True) -> CommandResult:
        """Run one command, send ``stdin`` (then close it) and wait for the exit code."""
        attempts = 1 + (self._conn.retries if idempotent else 0)
        delay = 0.5
        for attempt in range(1, attempts + 1):
            try:
                return self._with_shell(lambda shell: self._run_on(shell, command, arguments, stdin))
            except (HostUnreachable, WinRMProtocolError) as error:
                if attempt == attempts or not _is_transient(error):
                    raise
                _log.warning("%s (attempt %d of %d); retrying in %.1fs", error, attempt, attempts, delay)
                time.sleep(delay)
                delay = min(delay * 2, 8.0)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        with self._lock:
            shells, self._idle, self._closed = self._idle, [], True
        for shell in shells:
            shell.close()

    # -- internals -------------------------------------------------------------------------

    def _with_shell(self, action: Callable[[_Shell], _T]) -> _T:
        with self._slots:
            shell = self._borrow()
            try:
                result = action(shell)
            except BaseException:
                shell.close()  # its state is unknown after a failure; never hand it out again
                raise
            with self._lock:
                if self._closed:
                    shell.close()
                else:
                    self._idle.append(shell)
            return result

    def _borrow(self) -> _Shell:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._translate(lambda: _Shell(self._conn))

    def _run_on(self, shell: _Shell, command: str, arguments: list[str], stdin: bytes) -> CommandResult:
        def run() -> CommandResult:
            command_id = shell.protocol.run_command(shell.shell_id, command, arguments)
            chunks = [stdin[i : i + STDIN_CHUNK_BYTES] for i in range(0, len(stdin), STDIN_CHUNK_BYTES)] or [b""]
            for index, chunk in enumerate(chunks):
                shell.protocol.send_command_input(shell.shell_id, command_id, chunk, end=index == len(chunks) - 1)
            result = self._collect(shell, command_id)
            shell.protocol.cleanup_command(shell.shell_id, command_id)
            return result

        return self._translate(run)

    def _collect(self, shell: _Shell, command_id: str) -> CommandResult:
        deadline = time.monotonic() + self._conn.command_timeout_s
        stdout: list[bytes] = []
        stderr: list[bytes] = []
        while True:
            try:
                out, err, code, done = shell.protocol.get_command_output_raw(shell.shell_id, command_id)
            except WinRMOperationTimeoutError:
                # The host had nothing new within OperationTimeout: normal for a long script.
                if time.monotonic() > deadline:
                    raise CommandTimedOut(
                        self._conn.label,
                        f"the command did not finish within command_timeout_s={self._conn.command_timeout_s}s",
                        "raise command_timeout_s in the connection settings if the operation is expected to be slow",
                    ) from None
                continue
            stdout.append(out)
            stderr.append(err)
            if done:
                return CommandResult(b"".join(stdout), b"".join(stderr), code)

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
            raise WinRMProtocolError(
                label, f"WS-Management fault {code}: {error.reason}", transient=code in _TRANSIENT_FAULTS
            ) from None
        except PyWinRMError as error:
            raise WinRMProtocolError(label, str(error)) from None


# WS-Man faults worth another try: E_FAIL (the service hiccuped) and the per-user shell/operation
# quotas (another client's shells are closing). Every other fault means the request itself is wrong.
_TRANSIENT_FAULTS = {0x80004005, 0x803381A4, 0x803381A6}


def _is_transient(error: WinRMError) -> bool:
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


_close_registered = False
_close_registered_lock = threading.Lock()


def _close_at_exit() -> None:
    """Register ``_close_all`` with atexit once a shell (and so a urllib3 connection pool) exists.

    atexit runs handlers last-registered first, and urllib3 closes its pools from weakref.finalize's exit
    hook, which is registered when the first finalizer (the first pool) is created. Registered at import,
    our handler ran after it: every Delete went out on a new connection, failed NTLM authentication (401)
    and left the shell on the host. Registered after the first pool, it runs first; ``_Shell.close``
    retries on a fresh connection in any case.
    """
    global _close_registered
    with _close_registered_lock:
        if not _close_registered:
            atexit.register(_close_all)
            _close_registered = True


def _close_all() -> None:
    with _sessions_lock:
        sessions = list(_sessions.values())
        _sessions.clear()
    for session in sessions:
        session.close()

"""A long-lived command on one WinRM shell that answers framed requests: the fast path of every operation.

Starting a process on Windows costs 0.5 to several seconds, and a one-shot command costs four WS-Man
requests (Command, Send, Receive, Signal). A channel starts its command once and keeps it running: a request
is one line on its stdin (one ``Send``) and its response one line on its stdout (collected by ``Receive``),
so an operation costs about two requests, and requests in flight at once share both.

Two authenticated connections per channel, because a ``Receive`` is a long poll that holds its HTTP
connection until output comes or the OperationTimeout passes: one connection carries the shell's
Create/Command/Send/Delete, the other only the Receive loop (pywinrm's ``Protocol`` is one connection and
not safe for concurrent use).

Wire format (the command at the other end is the bootstrap, providers/scripting/ps/bootstrap.ps1):
    request   ``<id> <payload>\\n``
    response  ``\\n#usercube-response <id> <working set bytes> <base64 payload>\\n`` (lines that are not
              responses are output of something else and are kept only for error messages)
"""

from __future__ import annotations

import base64
import binascii
import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Protocol as Interface
from typing import TypeVar

from winrm.exceptions import WinRMOperationTimeoutError
from winrm.protocol import Protocol

from providers.transport.connection import HostConnection
from providers.transport.errors import CommandTimedOut, ProcessEnded, ShellGone, WinRMError

_log = logging.getLogger(__name__)

RESPONSE_MARK = b"#usercube-response "
# Raw stdin bytes per WinRM Send. pywinrm base64-encodes them again (x4/3) into one envelope, and Windows
# refuses an envelope over MaxEnvelopeSizekb with HTTP 413 (default 500 KB; 150 KB on older hosts), so a
# large input goes in several Sends (as Ansible's winrm connection plugin does with _wrapper_payload_stream).
# 96 KiB -> 128 KiB of base64, under even the old 150 KB limit.
STDIN_CHUNK_BYTES = 96 * 1024
# UTF-8 console code page, so output of any language survives the trip.
UTF8_CODEPAGE = 65001
_STRAY_KEPT = 20


class Response:
    """One answer of the command: the payload and the process's working set when it answered."""

    def __init__(self, payload: bytes, working_set: int) -> None:
        self.payload = payload
        self.working_set = working_set


ProtocolFactory = Callable[[], Protocol]
_T = TypeVar("_T")


class Translate(Interface):
    """Runs a pywinrm call and turns its exceptions into ``WinRMError`` naming the host."""

    def __call__(self, action: Callable[[], _T], /) -> _T: ...


class Channel:
    """A running command and its outstanding requests. Thread-safe; any failure retires the channel."""

    def __init__(
        self,
        conn: HostConnection,
        new_protocol: ProtocolFactory,
        translate: Translate,
        command: str,
        arguments: list[str],
        preamble: bytes = b"",
    ) -> None:
        self._conn = conn
        self._translate = translate
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        # (request id, or None for the preamble; bytes) not sent yet
        self._outbox: list[tuple[str | None, bytes]] = [(None, preamble)] if preamble else []
        self._pending: dict[str, Future[Response]] = {}
        self._ids = itertools.count(1)
        self._receiving = False
        self._failure: WinRMError | None = None
        self._draining = False
        self._stdout = bytearray()
        self._stray: deque[str] = deque(maxlen=_STRAY_KEPT)
        self._stderr = bytearray()
        self._closed = False
        self._shell_id = ""
        self.requests_sent = 0
        self.working_set = 0
        # (building a session authenticates it: NTLM with message encryption handshakes right away)
        self._control = translate(new_protocol)
        self._receiver = translate(new_protocol)
        self.command_id = ""
        self._shell_id = str(translate(lambda: self._control.open_shell(codepage=UTF8_CODEPAGE)))
        try:
            self.command_id = str(translate(lambda: self._control.run_command(self._shell_id, command, arguments)))
        except BaseException:
            self.close()
            raise

    # -- requests --------------------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        with self._lock:
            return self._failure is None and not self._draining

    @property
    def idle(self) -> bool:
        with self._lock:
            return not self._pending

    def request(self, payload: bytes, timeout_s: float) -> Response:
        """Send one request and wait for its response; raise ``WinRMError`` when the channel fails."""
        future: Future[Response] = Future()
        with self._lock:
            if self._failure is not None:
                raise self._failure
            request_id = str(next(self._ids))
            self._pending[request_id] = future
            self._outbox.append((request_id, request_id.encode("ascii") + b" " + payload + b"\n"))
            self.requests_sent += 1
            start_receiver = not self._receiving
            self._receiving = True
        # Send before the first Receive: on a shell the host deleted, the Send's fault is the one that tells that the
        # request never reached a process (a Receive failing first would hide it).
        self._flush_outbox()
        if start_receiver:
            threading.Thread(target=self._receive_loop, name=f"winrm-receive {self._conn.label}", daemon=True).start()
        try:
            return future.result(timeout=timeout_s)
        except FutureTimeout:
            error = CommandTimedOut(
                self._conn.label,
                f"the operation did not answer within command_timeout_s={self._conn.command_timeout_s}s; "
                "its PowerShell process was stopped",
                "raise command_timeout_s in the connection settings if the operation is expected to be slow",
            )
            self.fail(error)
            raise error from None

    def _flush_outbox(self) -> None:
        # Whoever holds the send lock sends every request queued meanwhile in the same Send: requests that
        # arrive together cost one request on the wire.
        with self._send_lock:
            with self._lock:
                batch, self._outbox = self._outbox, []
            data = b"".join(part for _, part in batch)
            if not data or self._failure is not None:
                return
            start = 0
            try:
                for start in range(0, len(data), STDIN_CHUNK_BYTES):
                    chunk = data[start : start + STDIN_CHUNK_BYTES]
                    self._translate(
                        lambda chunk=chunk: self._control.send_command_input(  # type: ignore[misc]
                            self._shell_id, self.command_id, chunk, end=False
                        )
                    )
            except ShellGone as error:
                # Refused at its first Send, none of this batch reached the process.
                undelivered = {rid for rid, _ in batch if rid is not None} if start == 0 else set()
                self.fail(error, undelivered=undelivered)
            except WinRMError as error:
                self.fail(error)

    # -- responses -------------------------------------------------------------------------------

    def _receive_loop(self) -> None:
        while True:
            with self._lock:
                if not self._pending or self._failure is not None:
                    self._receiving = False
                    return
            try:
                result = self._translate(lambda: self._receive_once())
            except WinRMError as error:
                self.fail(error)
                continue
            if result is not None:
                self.fail(result)

    def _receive_once(self) -> WinRMError | None:
        """One Receive; dispatch every complete response. Returns the failure when the process ended."""
        try:
            out, err, code, done = self._receiver.get_command_output_raw(self._shell_id, self.command_id)
        except WinRMOperationTimeoutError:
            return None  # nothing within OperationTimeout: the operations are still running
        self._stderr += err
        self._stdout += out
        while (newline := self._stdout.find(b"\n")) >= 0:
            line = bytes(self._stdout[:newline]).rstrip(b"\r")
            del self._stdout[: newline + 1]
            self._dispatch(line)
        if done:
            return ProcessEnded(
                self._conn.label,
                f"the PowerShell process ended with exit code {code} while operations were waiting for it"
                + self._diagnostics(),
            )
        return None

    def _dispatch(self, line: bytes) -> None:
        if not line.startswith(RESPONSE_MARK):
            if line.strip():
                self._stray.append(line.decode("utf-8", errors="replace")[:500])
            return
        try:
            request_id, working_set, encoded = line[len(RESPONSE_MARK) :].decode("ascii").split(" ")
            response = Response(base64.b64decode(encoded, validate=True), int(working_set))
        except (ValueError, UnicodeDecodeError, binascii.Error):
            self._stray.append(line.decode("utf-8", errors="replace")[:500])
            return
        with self._lock:
            future = self._pending.pop(request_id, None)
            self.working_set = response.working_set
        if future is not None:
            future.set_result(response)

    def _diagnostics(self) -> str:
        from providers.transport.clixml import decode_stderr  # here: only a failure needs it

        stderr = decode_stderr(bytes(self._stderr))
        parts = [f"; stderr: {stderr[:2000]}"] if stderr else []
        if self._stray:
            parts.append("; other output: " + " | ".join(self._stray))
        return "".join(parts)

    # -- end of life -----------------------------------------------------------------------------

    def fail(self, error: WinRMError, undelivered: set[str] | frozenset[str] = frozenset()) -> None:
        """Retire the channel: every waiting request gets ``error`` (or a retryable ProcessEnded); those in
        ``undelivered`` (their input never reached the host) get a ShellGone that says so."""
        with self._lock:
            if self._failure is None:
                self._failure = error
            pending, self._pending = self._pending, {}
        for request_id, future in pending.items():
            if future.done():
                continue
            if request_id in undelivered and isinstance(error, ShellGone):
                future.set_exception(error.undelivered())
            else:
                future.set_exception(_for_bystander(error, self._conn.label))
        self.close()

    def drain(self) -> None:
        """Take no new requests; the owner closes the channel once ``idle``."""
        with self._lock:
            self._draining = True

    def close(self) -> None:
        """Delete the shell, which ends its process (and any Receive pending on it)."""
        with self._lock:
            if self._closed or not self._shell_id:
                return
            self._closed = True
        shell_id = self._shell_id
        for attempt in (1, 2):
            # An undeleted shell holds one of the user's MaxShellsPerUser (30 by default) for its IdleTimeout
            # (2 hours). NTLM authenticates one TCP connection, and at interpreter exit urllib3 may already
            # have closed it, so a failed Delete is retried once on a freshly authenticated connection.
            try:
                if attempt == 2:
                    self._control.transport.close_session()
                    self._control.transport.build_session()
                self._control.close_shell(shell_id)
                break
            except Exception:  # noqa: BLE001 - closing is best effort; the host expires idle shells
                _log.debug("deleting shell %s failed (attempt %d)", shell_id, attempt, exc_info=True)
        for protocol in (self._control, self._receiver):
            try:
                protocol.transport.close_session()
            except Exception:  # noqa: BLE001 - the connection may be gone already
                _log.debug("closing a WinRM connection failed", exc_info=True)


def _for_bystander(error: WinRMError, label: str) -> WinRMError:
    """The error the other requests get when one request hung and its process was stopped: retryable
    (ProcessEnded), since nothing was wrong with them. Any other failure is the same for all."""
    if isinstance(error, CommandTimedOut):
        return ProcessEnded(label, "the PowerShell process was stopped because another operation on it hung")
    return error

"""One exception tree for everything that can go wrong between us and a host."""

from __future__ import annotations


class WinRMError(Exception):
    """Base of every error raised by the transport; always names the host."""

    error_id = "WinRMError"

    def __init__(self, host: str, message: str, fix: str | None = None) -> None:
        self.host = host
        self.fix = fix
        text = f"[{self.error_id}] host {host}: {message}"
        if fix:
            text += f" Fix: {fix}"
        super().__init__(text)


class HostUnreachable(WinRMError):
    """No TCP connection, or no answer before the configured time-out."""

    error_id = "HostUnreachable"


class AuthenticationFailed(WinRMError):
    """The host refused the credentials (HTTP 401)."""

    error_id = "AuthenticationFailed"


class WinRMProtocolError(WinRMError):
    """The host answered, but with a WS-Management fault or an HTTP error."""

    error_id = "WinRMProtocolError"

    def __init__(self, host: str, message: str, fix: str | None = None, *, transient: bool = False) -> None:
        super().__init__(host, message, fix)
        self.transient = transient


class CommandTimedOut(WinRMError):
    """A command did not finish within the connection's command time-out."""

    error_id = "CommandTimedOut"


class ProcessEnded(WinRMError):
    """The long-lived PowerShell process ended (or was stopped) while an operation waited for it; the
    operation may not have run, so an idempotent one is tried again on a new process."""

    error_id = "ProcessEnded"


class ShellGone(ProcessEnded):
    """The host no longer has the shell (or the command) a request went to: WinRM deleted it after its
    IdleTimeout (winrm/config/winrs IdleTimeout, 2 hours by default), or the WinRM service restarted.
    ``delivered`` is False when the request's input never reached a process, so even an operation that is not
    idempotent may go to a new shell."""

    error_id = "ShellGone"

    def __init__(self, host: str, message: str, fix: str | None = None, *, delivered: bool = True) -> None:
        super().__init__(host, message, fix)
        self.delivered = delivered
        self._message = message

    def undelivered(self) -> ShellGone:
        """The same error for a request whose input the host never received."""
        return ShellGone(self.host, self._message, self.fix, delivered=False)

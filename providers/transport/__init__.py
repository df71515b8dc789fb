"""WinRM transport: connection settings, sessions and errors. Knows nothing of PowerShell or Pulumi."""

from providers.transport.connection import HostConnection, WinRMTransportKind
from providers.transport.errors import (
    AuthenticationFailed,
    CommandTimedOut,
    HostUnreachable,
    WinRMError,
    WinRMProtocolError,
)
from providers.transport.session import CommandResult, WinRMSession, session_for

__all__ = [
    "AuthenticationFailed",
    "CommandResult",
    "CommandTimedOut",
    "HostConnection",
    "HostUnreachable",
    "WinRMError",
    "WinRMProtocolError",
    "WinRMSession",
    "WinRMTransportKind",
    "session_for",
]

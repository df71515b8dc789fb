"""WinRM transport: connection settings, sessions and errors. Knows nothing of PowerShell or Pulumi.

The session layer (pywinrm, requests, pyspnego) is imported when first used: models import the
connection settings, and a preview that reads no host never opens a session.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from providers.transport.connection import HostConnection, WinRMTransportKind
from providers.transport.errors import (
    AuthenticationFailed,
    CommandTimedOut,
    HostUnreachable,
    ProcessEnded,
    WinRMError,
    WinRMProtocolError,
)

if TYPE_CHECKING:
    from providers.transport.session import CommandResult, WinRMSession, session_for

__all__ = [
    "AuthenticationFailed",
    "CommandResult",
    "CommandTimedOut",
    "HostConnection",
    "HostUnreachable",
    "ProcessEnded",
    "WinRMError",
    "WinRMProtocolError",
    "WinRMSession",
    "WinRMTransportKind",
    "session_for",
]
_LAZY = {"CommandResult", "WinRMSession", "session_for"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from providers.transport import session

        return getattr(session, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

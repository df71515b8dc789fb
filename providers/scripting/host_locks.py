"""How long an operation script waits for a machine-wide host lock (providers/scripting/ps/_dacl_lock.ps1).

The wait travels in the script input, derived from the connection: a fixed wait in the script could outlast
the client's own deadline (command_timeout_s, which may be as low as 1 s), and the transport would then give up
before the script's clear busy error (AclBusy) arrived. Half of command_timeout_s leaves the other half for the
work done before and under the lock; 300 s is enough for a healthy queue of propagating DACL writes.
"""

from __future__ import annotations

from providers.transport.connection import HostConnection

# The script input key _dacl_lock.ps1 reads.
DACL_LOCK_WAIT_KEY = "dacl_lock_wait_ms"
DACL_LOCK_MAX_WAIT_S = 300


def dacl_lock_wait_ms(connection: HostConnection) -> int:
    """min(300 s, command_timeout_s / 2), in milliseconds (WaitOne(Int32) takes milliseconds)."""
    return min(DACL_LOCK_MAX_WAIT_S * 1000, connection.command_timeout_s * 1000 // 2)


def dacl_lock_input(connection: HostConnection) -> dict[str, int]:
    """The script input entry of a resource whose scripts take the DACL lock (FileAcl, SettingsFile)."""
    return {DACL_LOCK_WAIT_KEY: dacl_lock_wait_ms(connection)}

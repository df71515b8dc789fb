"""SIMULATOR: model of providers/scripting/ps/_dacl_lock.ps1, the machine-wide mutex FileAcl's and SettingsFile's
DACL writes take around their read-modify-write (Enter-DaclLock / Exit-DaclLock)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from devhost import named_mutex
from devhost.fs import WindowsFs
from devhost.ops import host_mutex
from devhost.ps51 import ScriptFact

DACL_MUTEX = "Global\\UsercubeIac.FileAcl.Dacl"
# Enter-DaclLock waits 300 s: a healthy queue of propagating writes can take longer than 30 s, and 300 s stays
# below the connection's command_timeout_s (600 s by default, providers/transport/connection.py).
WAIT_S = 300.0
QUEUED = "other FileAcl or SettingsFile permission changes on this host were queued, or one is hung"


def script_facts(operations: tuple[str, ...]) -> tuple[ScriptFact, ...]:
    """What the model relies on in every script that includes _dacl_lock.ps1."""
    return (
        ScriptFact(
            operations,
            r"\$DaclLockWaitMs = 300000\s+function Enter-DaclLock \{\s+return \(Enter-HostMutex -Name \$DaclMutexName "
            r"-WaitMs \$DaclLockWaitMs -What 'permissions' -DeniedId 'AclLockDenied' -BusyId 'AclBusy' "
            r"-Property 'path'",
            "SetAccessControl writes back the whole DACL GetAccessControl read (SetNamedSecurityInfoW, pDacl: the new "
            "DACL), and pushes inheritable entries to each child by a read-modify-write: every DACL writer of this "
            "project holds the named mutex from read to write, waited for 300 s at most",
        ),
        ScriptFact(
            operations,
            re.escape("$DaclMutexName = 'Global\\UsercubeIac.FileAcl.Dacl'"),
            "the model's mutex is this name in the Global\\ namespace, one object for every process and session of "
            "the host (two stacks' WinRM shells included)",
        ),
        *named_mutex.script_facts(operations),
    )


@contextlib.contextmanager
def held(fs: WindowsFs) -> Iterator[None]:
    """Enter-DaclLock ... Exit-DaclLock; AclBusy after the wait, AclLockDenied / HostLockUntrusted on a name
    another account took first."""
    with host_mutex.held(
        fs,
        DACL_MUTEX,
        WAIT_S,
        what="permissions",
        denied_id="AclLockDenied",
        busy_id="AclBusy",
        prop="path",
        queued=QUEUED,
    ):
        yield

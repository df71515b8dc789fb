"""SIMULATOR: model of providers/scripting/ps/_dacl_lock.ps1, the machine-wide mutex FileAcl's and SettingsFile's
DACL writes take around their read-modify-write (Enter-DaclLock / Exit-DaclLock)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from devhost import named_mutex
from devhost.fs import WindowsFs
from devhost.ops import host_mutex
from devhost.ps51 import ScriptFact

DACL_MUTEX = "Global\\UsercubeIac.FileAcl.Dacl"
# The input key with the wait (providers/scripting/host_locks.py: min(300 s, command_timeout_s / 2)); an input
# without it waits WAIT_S, the script's $DaclLockWaitMs = 300000.
WAIT_KEY = "dacl_lock_wait_ms"
WAIT_S = 300.0
QUEUED = "other FileAcl or SettingsFile permission changes on this host were queued, or one is hung"
FIX = "run again, or raise the connection's command_timeout_s: the wait is half of it, 300 s at most"
# At the 300 s cap (the default command_timeout_s of 600 s, or no key) raising it changes nothing (review-locks2 K5).
FIX_AT_CAP = "run again"


def script_facts(operations: tuple[str, ...]) -> tuple[ScriptFact, ...]:
    """What the model relies on in every script that includes _dacl_lock.ps1."""
    return (
        ScriptFact(
            operations,
            r"\$DaclLockWaitMs = 300000\s+if \(\$null -ne \$Spec\.PSObject\.Properties\['dacl_lock_wait_ms'\]\) "
            r"\{ \$DaclLockWaitMs = \[int\]\$Spec\.dacl_lock_wait_ms \}\s+(#[^\n]*\n\s*)*"
            r"\$DaclLockFix = '" + re.escape(FIX_AT_CAP) + r"'\s+"
            r"if \(\$DaclLockWaitMs -lt 300000\) \{ \$DaclLockFix = '" + re.escape(FIX.replace("'", "''")) + r"' \}\s+"
            r"function Enter-DaclLock \{\s+return \(Enter-HostMutex -Name \$DaclMutexName "
            r"-WaitMs \$DaclLockWaitMs -What 'permissions' -DeniedId 'AclLockDenied' -BusyId 'AclBusy' "
            r"-Property 'path' -Queued '" + re.escape(QUEUED) + r"' -Fix \$DaclLockFix\)",
            "SetAccessControl writes back the whole DACL GetAccessControl read (SetNamedSecurityInfoW, pDacl: the new "
            "DACL), and pushes inheritable entries to each child by a read-modify-write: every DACL writer of this "
            "project holds the named mutex from read to write, waited for as long as the input's dacl_lock_wait_ms "
            "says (300 s without it), so that AclBusy arrives before the client's command_timeout_s",
        ),
        ScriptFact(
            operations,
            re.escape("$DaclMutexName = 'Global\\UsercubeIac.FileAcl.Dacl'"),
            "the model's mutex is this name in the Global\\ namespace, one object for every process and session of "
            "the host (two stacks' WinRM shells included)",
        ),
        ScriptFact(
            operations,
            r"\[string\] \$Fix = 'run again'\) \{[\s\S]*\"waited \$\(\$WaitMs / 1000\) s for the \$What lock "
            r"'\$Name' \(\$Queued\); \$Fix\"",
            "AclBusy names the wait (in seconds: PowerShell expands a double with the invariant culture, 0.5) and the "
            "fix, as the model's message",
        ),
        *named_mutex.script_facts(operations),
    )


def wait_s(spec: dict[str, Any]) -> float:
    """$DaclLockWaitMs / 1000: the input's dacl_lock_wait_ms, or 300 s without it."""
    return WAIT_S if WAIT_KEY not in spec else int(spec[WAIT_KEY]) / 1000


def fix(spec: dict[str, Any]) -> str:
    """$DaclLockFix: raise command_timeout_s only while the wait is below its 300 s cap."""
    return FIX if wait_s(spec) < WAIT_S else FIX_AT_CAP


@contextlib.contextmanager
def held(fs: WindowsFs, spec: dict[str, Any]) -> Iterator[None]:
    """Enter-DaclLock ... Exit-DaclLock; AclBusy after the input's wait, AclLockDenied / HostLockUntrusted on a
    name another account took first."""
    with host_mutex.held(
        fs,
        DACL_MUTEX,
        wait_s(spec),
        what="permissions",
        denied_id="AclLockDenied",
        busy_id="AclBusy",
        prop="path",
        queued=QUEUED,
        fix=fix(spec),
    ):
        yield

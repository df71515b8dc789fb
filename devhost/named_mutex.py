"""SIMULATOR: named mutexes of the simulated host (``New-Object System.Threading.Mutex($false, '<name>')``).

A named mutex is one kernel object for every process that opens the name in its namespace, ``Global\\`` for
every session of the machine (learn.microsoft.com, "Kernel object namespaces"); ``WaitOne(timeout)`` returns
once the owner has released it, or false when the timeout passed first (learn.microsoft.com,
WaitHandle.WaitOne(Int32)). Every operation of the host runs in a thread of this process, so one lock per
name models it. A wait for a mutex another operation holds is journalled (``mutex_wait``): a test can tell
that two operations really contended.

A name may also be taken first by another account's process (``admin_squat``): creating a mutex in ``Global\\``
needs no privilege (learn.microsoft.com, "Kernel object namespaces": only file mappings need
SeCreateGlobalPrivilege), and "Object Namespaces" warns that another process can create the name first. Such a
named object is kept in ``<state>/_sim/named_objects.json`` with its kind, its owner (its creator's token
owner) and whether its DACL lets the Administrators open it, until ``admin_end_squatter`` ends its process.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from devhost.hooks import Journal, sim_dir
from devhost.ps51 import ScriptFact

_MUTEXES: dict[tuple[str, str], threading.Lock] = {}
_GUARD = threading.Lock()


class WaitTimedOut(Exception):
    """WaitOne returned false: another owner kept the mutex for the whole timeout."""


class OpenDenied(Exception):
    """The Mutex constructor's UnauthorizedAccessException: the existing mutex's DACL refuses this account."""


class Untrusted(Exception):
    """Get-HostMutexUntrustedReason (or WaitHandleCannotBeOpenedException): the name is not this project's."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Owners Get-HostMutexUntrustedReason accepts besides the script's own account: LocalSystem, BUILTIN\Administrators.
TRUSTED_OWNERS = ("S-1-5-18", "S-1-5-32-544")


def _squats_file(state_dir: Path) -> Path:
    return sim_dir(state_dir) / "named_objects.json"


def _squats(state_dir: Path) -> dict[str, dict[str, object]]:
    path = _squats_file(state_dir)
    data: dict[str, dict[str, object]] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return data


def admin_squat(
    state_dir: Path, name: str, owner_sid: str, *, kind: str = "mutex", admins_may_open: bool = True
) -> None:
    """A process of another account creates ``name`` first (a mutex, or an ``event``) and keeps it open: the
    object lives as long as a handle to it does. Its owner is that account; ``admins_may_open=False`` gives it a
    DACL that grants the Administrators nothing."""
    data = _squats(state_dir)
    data[name] = {"kind": kind, "owner": owner_sid.upper(), "admins_may_open": admins_may_open}
    path = _squats_file(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")


def admin_end_squatter(state_dir: Path, name: str) -> None:
    """The squatting process ends (as the error's fix says): its last handle closes and the name is free again."""
    data = _squats(state_dir)
    data.pop(name, None)
    _squats_file(state_dir).write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")


def _check_opened(state_dir: Path, name: str) -> None:
    """``[Mutex]::new(...)`` then Get-HostMutexUntrustedReason on a name another account created first."""
    squat = _squats(state_dir).get(name)
    if squat is None:
        return  # created by this project (SYSTEM/Administrators-owned, its own DACL): trusted
    if squat["kind"] != "mutex":
        # CreateMutex fails with ERROR_INVALID_HANDLE on a name of another object type (learn.microsoft.com
        # CreateMutexW), which .NET throws as WaitHandleCannotBeOpenedException.
        raise Untrusted("is taken by another kind of named object (not a mutex)")
    if not squat["admins_may_open"]:
        raise OpenDenied(name)
    if squat["owner"] not in TRUSTED_OWNERS:
        raise Untrusted(f"is owned by {squat['owner']}, not by SYSTEM, the Administrators or this account")


def script_facts(operations: tuple[str, ...]) -> tuple[ScriptFact, ...]:
    """What the model relies on in a script that takes a mutex through providers/scripting/ps/_mutex.ps1."""
    return (
        ScriptFact(
            operations,
            r"\[System\.Threading\.Mutex\]::new\(\$false, \$Name, \[ref\]\$created, \(New-HostMutexSecurity\)\)"
            r"[\s\S]*\$held = \$mutex\.WaitOne\(\$WaitMs\)",
            "the mutex is opened with its own DACL and waited for with a timeout (WaitOne(Int32)): the model's "
            "held() gives up after the timeout as WaitOne returns false",
        ),
        ScriptFact(
            operations,
            r"function New-HostMutexSecurity \{[\s\S]*@\('S-1-5-18', 'S-1-5-32-544'\)[\s\S]*MutexAccessRule",
            "the mutex grants SYSTEM and the Administrators whoever creates it: a kernel object's default DACL is the "
            "creator's token default (learn.microsoft.com, Synchronization Object Security and Access Rights), which "
            "may grant only the creating account; the model lets every administrator open it",
        ),
        ScriptFact(
            operations,
            r"\$untrusted = Get-HostMutexUntrustedReason \$mutex\s+\} catch \{[^}]*\$mutex\.Dispose\(\)\s+throw\s+\}\s+"
            r"if \(\$null -ne \$untrusted\) \{\s+"
            r"\$mutex\.Dispose\(\)\s+Stop-HostMutexUntrusted[\s\S]*\$held = \$mutex\.WaitOne",
            "a mutex whose owner is not SYSTEM, the Administrators or this account was created first by another "
            "account (a squat: no privilege is needed in Global\\) and is refused before any wait (HostLockUntrusted), "
            "as the model's held() refuses a squatted name; any other failure of that read disposes the mutex "
            "before it goes on to the trap (the model's open fails the same way)",
        ),
        ScriptFact(
            operations,
            r"\$owner = \$Mutex\.GetAccessControl\(\)\.GetOwner\("
            r"\[System\.Security\.Principal\.SecurityIdentifier\]\)\.Value[\s\S]*"
            r"\$identity = \[System\.Security\.Principal\.WindowsIdentity\]::GetCurrent\(\)\s+"
            r"try \{ \$self = \$identity\.User\.Value \} finally \{ \$identity\.Dispose\(\) \}\s+"
            r"if \(@\('S-1-5-18', 'S-1-5-32-544', \$self\) -contains \$owner\)",
            "the owner is read from the mutex itself (MutexSecurity.GetOwner) and compared by SID",
        ),
        ScriptFact(
            operations,
            r"function New-HostMutexSecurity \{\s+\$security = New-Object "
            r"System\.Security\.AccessControl\.MutexSecurity\s+\$security\.SetOwner\(\(New-Object "
            r"System\.Security\.Principal\.SecurityIdentifier 'S-1-5-32-544'\)\)",
            "the project's mutex is created owned by the Administrators, so that another administrator's deployment "
            "trusts it whatever the 'Default owner for objects created by members of the Administrators group' "
            "policy says: the model trusts every mutex the project itself created",
        ),
        ScriptFact(
            operations,
            r"\} catch \[System\.Threading\.WaitHandleCannotBeOpenedException\] \{\s+[^\n]*\n"
            r"\s+Stop-HostMutexUntrusted",
            "another kind of object under the name (CreateMutex's ERROR_INVALID_HANDLE, .NET's "
            "WaitHandleCannotBeOpenedException) is HostLockUntrusted, as in the model",
        ),
    )


def _mutex(state_dir: Path, name: str) -> threading.Lock:
    with _GUARD:
        return _MUTEXES.setdefault((str(state_dir.resolve()), name), threading.Lock())


@contextlib.contextmanager
def held(state_dir: Path, name: str, timeout_s: float) -> Iterator[None]:
    """Open (OpenDenied, Untrusted), WaitOne(timeout) ... ReleaseMutex() around the block; WaitTimedOut when
    WaitOne returns false."""
    _check_opened(state_dir, name)
    mutex = _mutex(state_dir, name)
    if not mutex.acquire(blocking=False):
        started = time.monotonic()
        if not mutex.acquire(timeout=timeout_s):
            raise WaitTimedOut(name)
        waited = round(time.monotonic() - started, 3)
        Journal(sim_dir(state_dir) / "journal.jsonl")({"kind": "mutex_wait", "name": name, "waited_s": waited})
    try:
        yield
    finally:
        mutex.release()

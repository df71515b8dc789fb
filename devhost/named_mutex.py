"""SIMULATOR: named mutexes of the simulated host (``New-Object System.Threading.Mutex($false, '<name>')``).

A named mutex is one kernel object for every process that opens the name in its namespace, ``Global\\`` for
every session of the machine (learn.microsoft.com, "Kernel object namespaces"); ``WaitOne(timeout)`` returns
once the owner has released it, or false when the timeout passed first (learn.microsoft.com,
WaitHandle.WaitOne(Int32)). Every operation of the host runs in a thread of this process, so one lock per
name models it. A wait for a mutex another operation holds is journalled (``mutex_wait``): a test can tell
that two operations really contended.
"""

from __future__ import annotations

import contextlib
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
    )


def _mutex(state_dir: Path, name: str) -> threading.Lock:
    with _GUARD:
        return _MUTEXES.setdefault((str(state_dir.resolve()), name), threading.Lock())


@contextlib.contextmanager
def held(state_dir: Path, name: str, timeout_s: float) -> Iterator[None]:
    """WaitOne(timeout) ... ReleaseMutex() around the block; WaitTimedOut when WaitOne returns false."""
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

"""SIMULATOR: model of providers/scripting/ps/_mutex.ps1 Enter-HostMutex / Exit-HostMutex on devhost.named_mutex:
the errors each outcome of opening and waiting for the mutex stops the script with."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from devhost import named_mutex
from devhost.fs import WindowsFs
from devhost.ops.envelope import OperationStopped, fail


@contextlib.contextmanager
def held(
    fs: WindowsFs,
    name: str,
    wait_s: float,
    *,
    what: str,
    denied_id: str,
    busy_id: str,
    prop: str | None,
    queued: str,
    fix: str = "run again",
) -> Iterator[None]:
    """Enter-HostMutex ... Exit-HostMutex around the block."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(named_mutex.held(fs.root, name, wait_s))
        except named_mutex.OpenDenied:
            raise OperationStopped(
                fail(
                    denied_id,
                    f"this account may not open the {what} lock '{name}', which another account created without "
                    "granting the Administrators (an earlier version of this project, or a process that took the name "
                    "first); run the deployment as a member of the local Administrators group, or find the process "
                    "that has it open (Sysinternals handle.exe -a UsercubeIac), end it, and run again",
                    prop=prop,
                    category="PermissionDenied",
                )
            ) from None
        except named_mutex.Untrusted as untrusted:
            raise OperationStopped(
                fail(
                    "HostLockUntrusted",
                    f"the {what} lock '{name}' {untrusted.reason}: a process of another account created that name "
                    "first and could hold it or release it at will. Find the process that has it open (Sysinternals "
                    "handle.exe -a UsercubeIac, or Process Explorer's Find Handle), end it, and run again",
                    prop=prop,
                    category="SecurityError",
                )
            ) from None
        except named_mutex.WaitTimedOut:
            raise OperationStopped(
                fail(
                    busy_id,
                    f"waited {wait_s:g} s for the {what} lock '{name}' ({queued}); {fix}",
                    prop=prop,
                    category="ResourceBusy",
                )
            ) from None
        yield

"""SIMULATOR: Python models of the project's PowerShell operation scripts, keyed by the script's
``# op: <resource>/<operation>`` header line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from devhost.fs import WindowsFs
from devhost.ops import settings_file
from devhost.ops.envelope import Envelope

Operation = Callable[[WindowsFs, dict[str, Any]], Envelope]

OPERATIONS: dict[str, Operation] = {
    **settings_file.OPERATIONS,
}

# Operations whose model handles concurrency itself (e.g. IIS configuration commits, which fail on
# a stale configuration as on Windows). All others run one at a time under the host's lock.
UNLOCKED_OPERATIONS: set[str] = set()

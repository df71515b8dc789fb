"""SIMULATOR: the test hooks of a simulated host, under ``<state>/_sim/``: the journal of events and the
knobs a test turns (see devhost/server.py for the list). Shared by the HTTP layer and the host's models."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("devhost.hooks")
# One lock per journal file, shared by every Journal object of this process that writes to it.
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(str(path.resolve()), threading.Lock())


def sim_dir(state_dir: Path) -> Path:
    return state_dir / "_sim"


def _read_knobs(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("[devhost SIMULATOR] ignoring unreadable %s: %s", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def read_knobs(state_dir: Path) -> dict[str, Any]:
    """The host's ``knobs.json`` as it is now ({} when there is none): what the models read per operation."""
    return _read_knobs(sim_dir(state_dir) / "knobs.json")


class Journal:
    """Append-only JSON-lines event log another process can tail."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = _lock_for(path)

    def __call__(self, event: dict[str, object]) -> None:
        line = json.dumps({"time": time.time(), **event}, ensure_ascii=False) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)


class Knobs:
    """``knobs.json``, re-read on every request so a test can turn knobs live."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = _lock_for(path)

    def read(self) -> dict[str, Any]:
        return _read_knobs(self.path)

    def take_fault(self, action: str, key: str = "faults") -> dict[str, Any] | None:
        """Remove and return the first injected fault of list ``key`` whose ``on`` applies to ``action``."""
        with self._lock:
            data = self.read()
            faults = data.get(key) or []
            for index, fault in enumerate(faults):
                if isinstance(fault, dict) and fault.get("on", "any") in ("any", action):
                    data[key] = faults[:index] + faults[index + 1 :]
                    tmp = self.path.with_suffix(".tmp")
                    tmp.write_text(json.dumps(data), encoding="utf-8")
                    os.replace(tmp, self.path)
                    return fault
        return None

"""What an interrupted run leaves in a local file backend, and how the next verb clears it as the CLI asks.

A `pulumi` CLI that is killed (SIGKILL, a closed CI job, a machine that went down; a Ctrl-C lets it finish
cleanly) leaves two things behind, both in pkg/backend/diy of pulumi v3.259.0:

- its **lock file** (``.pulumi/locks/<org>/<project>/<stack>/<id>.json``, lock.go): every later `up`,
  `refresh` or `destroy` refuses with "the stack is currently locked by 1 lock(s) ... delete the lock file with
  `pulumi cancel`". The lock names the process and the machine that took it. Here a lock is **stale** when it
  was taken on this machine by a process that no longer runs; only then, and only when every lock of the stack
  is stale, is it removed, with the CLI's own ``pulumi cancel --yes``. Any other lock stays and the CLI says
  why it refuses.
- its **pending operations** (``checkpoint.latest.pending_operations``): `up` warns about them and drops the
  pending updates and deletes (it does them again), but keeps every pending *create* in the state, for ever,
  because "these must require user intervention" (backend/snapshot.go); the CLI's answer for a
  non-interactive run is ``pulumi refresh --clear-pending-creates`` (cmd/pulumi/operations/refresh.go).
  Every ``create`` of this project's resources adopts an object that already exists as declared, so dropping
  a pending create is safe: the next `up` creates the resource again and finds what the interrupted run made.

- possibly an **empty metadata sidecar**: the file backend is gocloud's fileblob, which writes each file's
  attributes to ``<file>.attrs`` next to it, not atomically (gocloud.dev/blob/fileblob, ``setAttrs``: create,
  then encode); a kill in between leaves it empty, and every later command, `pulumi cancel` included, fails
  with "failed to load checkpoint: EOF". fileblob reads a *missing* sidecar as "no attributes" (``getAttrs``),
  so an empty or unreadable one of this stack is removed.

Other backends (Pulumi Cloud, object stores) are left to the CLI: `pulumi cancel` and the same refresh by hand.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PENDING_CREATE = "creating"


@dataclass(frozen=True)
class Lock:
    path: Path
    pid: int
    hostname: str

    @property
    def stale(self) -> bool:
        """Taken on this machine by a process that has ended (a lock of another machine is never stale here)."""
        return self.hostname == socket.gethostname() and not _running(self.pid)


def _running(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def backend_root(backend_url: str) -> Path | None:
    """The directory of a ``file://`` backend given as an absolute path without options (else None)."""
    if not backend_url.startswith("file://") or "?" in backend_url:
        return None
    root = Path(backend_url.removeprefix("file://")).expanduser()
    return root if root.is_absolute() else None


def locks(root: Path, project: str, stack: str) -> list[Lock]:
    """The lock files of ``stack`` (any organization: the diy backend's is ``organization``)."""
    found = []
    for path in sorted((root / ".pulumi" / "locks").glob(f"*/{project}/{stack}/*.json")):
        try:
            content = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # half-written, or removed meanwhile: the CLI judges it
        found.append(Lock(path, int(content.get("pid") or 0), str(content.get("hostname") or "")))
    return found


def checkpoint(root: Path, project: str, stack: str) -> dict[str, Any] | None:
    stacks = root / ".pulumi" / "stacks" / project
    plain, zipped = stacks / f"{stack}.json", stacks / f"{stack}.json.gz"
    try:
        if plain.is_file():
            data: dict[str, Any] = json.loads(plain.read_text(encoding="utf-8"))
        elif zipped.is_file():
            data = json.loads(gzip.decompress(zipped.read_bytes()).decode("utf-8"))
        else:
            return None
    except (OSError, ValueError):
        return None
    return data


def pending_creates(root: Path, project: str, stack: str) -> list[str]:
    """URNs of the creates an interrupted run left pending in the stack's last checkpoint."""
    data = checkpoint(root, project, stack) or {}
    latest = (data.get("checkpoint") or {}).get("latest") or {}
    return [
        str((operation.get("resource") or {}).get("urn"))
        for operation in latest.get("pending_operations") or []
        if operation.get("type") == PENDING_CREATE
    ]


def broken_sidecars(root: Path, project: str, stack: str) -> list[Path]:
    """The ``.attrs`` files of ``stack`` (checkpoint, backups, history, locks) that are empty or not JSON."""
    pulumi = root / ".pulumi"
    candidates = [
        *(pulumi / "stacks" / project).glob(f"{stack}.json*.attrs"),
        *(pulumi / "locks").glob(f"*/{project}/{stack}/*.attrs"),
        *(pulumi / "history" / project / stack).glob("*.attrs"),
        *(pulumi / "backups" / project / stack).glob("*.attrs"),
        pulumi / "meta.yaml.attrs",
    ]
    broken = []
    for path in candidates:
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except (OSError, ValueError):
            broken.append(path)
    return broken

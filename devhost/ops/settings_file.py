"""SIMULATOR: model of providers/settings_file/scripts/{get,set,remove}.ps1."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

from devhost.fs import WindowsFs
from devhost.ops.envelope import Envelope, change, fail, require_keys, succeed

_KEYS = {"path", "content", "encoding", "keep_backup"}
_BOM = {"utf-8-bom": b"\xef\xbb\xbf", "utf-16": b"\xff\xfe"}


def _encoding_of(data: bytes) -> str:
    for name, bom in _BOM.items():
        if data.startswith(bom):
            return name
    return "utf-8"


def _encode(text: str, encoding: str) -> bytes:
    if encoding == "utf-16":
        return _BOM["utf-16"] + text.encode("utf-16-le")
    return _BOM.get(encoding, b"") + text.encode("utf-8")


def _decode(data: bytes, encoding: str) -> str:
    body = data[len(_BOM.get(encoding, b"")) :]
    # .NET's decoders replace invalid sequences with U+FFFD, they do not fail.
    return body.decode("utf-16-le" if encoding == "utf-16" else "utf-8", errors="replace")


def _state(fs: WindowsFs, path: str) -> dict[str, Any] | Envelope:
    target = fs.resolve(path)
    backup = fs.resolve(path + ".bak")
    backup_path = path + ".bak" if backup.is_file() else None
    if not target.is_file():
        if target.exists():
            return fail("PathIsNotAFile", f"'{path}' exists and is not a file", prop="path")
        return {"ensure": "absent", "path": path, "backup_path": backup_path}
    data = target.read_bytes()
    encoding = _encoding_of(data)
    return {
        "ensure": "present",
        "path": path,
        "content": _decode(data, encoding),
        "encoding": encoding,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "backup_path": backup_path,
    }


def get(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    state = _state(fs, spec["path"])
    return state if isinstance(state, Envelope) else succeed(state)


def set_(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    path = spec["path"]
    before = _state(fs, path)
    if isinstance(before, Envelope):
        return before
    if spec["encoding"] not in ("utf-8", "utf-8-bom", "utf-16"):
        return fail("UnknownEncoding", f"unknown encoding '{spec['encoding']}'", prop="encoding")
    desired = _encode(spec["content"], spec["encoding"])
    if before["ensure"] == "present" and before["sha256"] == hashlib.sha256(desired).hexdigest():
        return succeed(before)
    target = fs.resolve(path)
    changes = []
    if not target.parent.is_dir():
        target.parent.mkdir(parents=True)
        changes.append(change("parent_folder", None, path.rsplit("\\", 1)[0]))
    temporary = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    temporary.write_bytes(desired)
    if before["ensure"] == "present" and spec["keep_backup"]:
        os.replace(target, fs.resolve(path + ".bak"))
    os.replace(temporary, target)
    after = _state(fs, path)
    assert isinstance(after, dict)
    changes.append(change("content", before.get("sha256"), after["sha256"]))
    return succeed(after, changes)


def remove(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    before = _state(fs, spec["path"])
    if isinstance(before, Envelope) or before["ensure"] == "absent":
        return before if isinstance(before, Envelope) else succeed(before)
    Path(fs.resolve(spec["path"])).unlink()
    after = _state(fs, spec["path"])
    assert isinstance(after, dict)
    return succeed(after, [change("ensure", "present", "absent")])


OPERATIONS = {"settings_file/get": get, "settings_file/set": set_, "settings_file/remove": remove}

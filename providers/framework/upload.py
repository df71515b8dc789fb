"""A file of the machine that runs Pulumi, sent to a host in resumable chunks: what the HostingBundle installer and
the RuntimeArchive zip share.

Locally: the file is checked to exist, hashed (SHA-256) and read in chunks; each resource adds its own checks of
what the file is (local.py of providers/hosting_bundle, providers/runtime_archive). On the host: one operation per
chunk (the resource's chunk.ps1, whose body is the shared providers/scripting/ps/_chunk.ps1), each writing at its
offset of a staging file, resumed from what the host already holds.

Every chunk travels as one request of the long-lived PowerShell process (providers/scripting/runner.py), which the
transport splits into WinRM Sends under MaxEnvelopeSizekb. A chunk is base64 in the JSON input and the request
line is base64 again, so 256 KiB of file is about 470 KB of stdin: a few Sends, and few enough requests that the
script text each one carries stays small beside the data.

This module knows no resource: the resources import it, never the reverse.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult

from providers.framework.checks import contains_unknown
from providers.framework.model import ResourceModel
from providers.framework.provider import WindowsResourceProvider, unnamed
from providers.scripting import OperationResult, ScriptRef, run_script

CHUNK_BYTES = 256 * 1024
_READ_BLOCK = 1024 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


# -- the local file ---------------------------------------------------------------------------------------


class LocalFileRefused(ValueError):
    """The local file cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class LocalFile:
    path: str  # absolute
    name: str  # the file name, what previews show
    size: int
    sha256: str  # lower-case hex


def existing_file(path: str | Path, refused: type[LocalFileRefused], what: str) -> tuple[Path, os.stat_result]:
    """The resolved path and its stat; ``refused`` (naming ``what`` to give instead) when no file is there."""
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        raise refused(f"file {str(path)!r} does not exist; give the path of {what}")
    return resolved, resolved.stat()


def hashed(resolved: Path, stat: os.stat_result) -> LocalFile:
    """The file's name, size and SHA-256 (computed once per size and modification time)."""
    return _hashed(str(resolved), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=16)
def _hashed(path: str, size: int, mtime_ns: int) -> LocalFile:
    # Keyed on size and modification time too: a file replaced in place is hashed again.
    return LocalFile(path, os.path.basename(path), size, sha256_of(path))


def sha256_of(path: str | Path, length: int | None = None) -> str:
    """SHA-256 of the file, or of its first ``length`` bytes."""
    digest = hashlib.sha256()
    remaining = length
    with open(path, "rb") as handle:
        while remaining is None or remaining > 0:
            block = handle.read(_READ_BLOCK if remaining is None else min(_READ_BLOCK, remaining))
            if not block:
                break
            digest.update(block)
            if remaining is not None:
                remaining -= len(block)
    return digest.hexdigest()


def read_chunks(path: str | Path, offset: int, chunk_bytes: int) -> Iterator[tuple[int, bytes]]:
    """(offset, data) of every chunk from ``offset`` to the end of the file."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        while block := handle.read(chunk_bytes):
            yield offset, block
            offset += len(block)


# -- validators of the model fields every uploaded file has ----------------------------------------------------


def absolute_local_path(value: str, what: str) -> str:
    if not os.path.isabs(value):
        raise ValueError(f"{value!r} is not an absolute path on this machine; give the {what}'s full path")
    return value


def sha256_hex(value: str) -> str:
    if not _SHA256.match(value.lower()):
        raise ValueError(f"{value!r} is not a SHA-256: give 64 hexadecimal digits")
    return value.lower()


# -- the upload -------------------------------------------------------------------------------------------


@runtime_checkable
class UploadedFile(Protocol):
    """What the upload needs of a resource's model."""

    @property
    def source_path(self) -> str: ...

    @property
    def size(self) -> int: ...

    @property
    def sha256(self) -> str: ...

    def chunk_input(self, offset: int, data: str) -> dict[str, Any]: ...


RunChunk = Callable[[dict[str, Any]], OperationResult]


@dataclass(frozen=True)
class UploadReport:
    resumed_from: int  # bytes the host already held, verified by their hash (0: from the start)
    sent_bytes: int
    chunks: int


def resume_offset(spec: UploadedFile, state: dict[str, Any]) -> int:
    """Where to continue: the bytes the host holds of this file when their SHA-256 is that of the same prefix of
    the local file; otherwise 0 (the host's copy is of no use and is overwritten)."""
    held = int(state.get("held_bytes") or 0)
    if held <= 0 or held > spec.size:
        return 0
    return held if sha256_of(spec.source_path, held) == state.get("held_sha256") else 0


def upload(
    spec: UploadedFile, state: dict[str, Any], run_chunk: RunChunk, chunk_bytes: int = CHUNK_BYTES
) -> UploadReport:
    """Send what the host lacks of ``spec``'s file; ``state`` is what the get script reported."""
    start = resume_offset(spec, state)
    sent = chunks = 0
    for offset, data in read_chunks(spec.source_path, start, chunk_bytes):
        held = int(run_chunk(spec.chunk_input(offset, base64.b64encode(data).decode("ascii"))).state["held_bytes"])
        if held != offset + len(data):
            raise RuntimeError(f"the host holds {held} bytes after the chunk at {offset}, not {offset + len(data)}")
        sent += len(data)
        chunks += 1
    return UploadReport(start, sent, chunks)


def local_file_problems(spec: UploadedFile, inspect: Callable[[], LocalFile]) -> list[CheckFailure]:
    """The local file is the one the inputs describe (it may have changed since the program read it)."""
    try:
        found = inspect()
    except LocalFileRefused as refused:
        return [CheckFailure("source_path", str(refused))]
    if (found.size, found.sha256) != (spec.size, spec.sha256):
        return [
            CheckFailure(
                "source_path",
                f"{spec.source_path} has {found.size} bytes and SHA-256 {found.sha256}, not the {spec.size} bytes and "
                f"{spec.sha256} declared; the file changed since the program read it: run again",
            )
        ]
    return []


class UploadingProvider(WindowsResourceProvider):
    """A provider whose resource carries a local file to the host: checks the file, sends what the host lacks."""

    def local_problems(self, spec: ResourceModel) -> list[CheckFailure]:
        raise NotImplementedError

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        result = super().check(olds, news)
        if result.failures or contains_unknown(result.inputs):
            return result
        return CheckResult(result.inputs, unnamed(self.local_problems(self._spec(result.inputs))))

    def _refuse_changed_file(self, spec: ResourceModel) -> None:
        problems = self.local_problems(spec)
        if problems:
            raise ValueError(f"{self._label(spec)}: {problems[0].reason}")

    def _send(self, spec: ResourceModel, file_name: str, state: dict[str, Any]) -> UploadReport:
        """Upload what the host lacks (``state``: what get reported), saying so when it resumed."""
        assert isinstance(spec, UploadedFile)
        report = upload(spec, state, lambda payload: self._chunk(spec, payload))
        if report.resumed_from:
            pulumi.log.info(
                f"{self._label(spec)}: resumed the upload of {file_name} at byte {report.resumed_from} of "
                f"{spec.size} (held by the host), sent {report.sent_bytes} bytes"
            )
        return report

    def _chunk(self, spec: ResourceModel, payload: dict[str, Any]) -> OperationResult:
        return run_script(spec.connection, ScriptRef(self.package, "chunk"), payload, resource=self._label(spec))

    def _label(self, spec: ResourceModel) -> str:
        return f"{spec.kind} '{spec.resource_id()}'"

    def _outputs(self, spec: ResourceModel, state: dict[str, Any]) -> dict[str, Any]:
        return {**spec.model_dump(mode="json"), **self.outputs(spec, state)}

"""The upload: one operation per chunk, each appending at its offset to the host's staging file, resumed from what
the host already holds (the approach of the runtime archive's upload, providers/runtime_archive on its branch).

Every chunk travels as one request of the long-lived PowerShell process (providers/scripting/runner.py), which the
transport splits into WinRM Sends under MaxEnvelopeSizekb. A chunk is base64 in the JSON input and the request
line is base64 again, so 256 KiB of installer is about 470 KB of stdin: a few Sends per chunk.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from providers.hosting_bundle import local
from providers.hosting_bundle.model import HostingBundleModel
from providers.scripting.refs import OperationResult

CHUNK_BYTES = 256 * 1024

RunChunk = Callable[[dict[str, Any]], OperationResult]


@dataclass(frozen=True)
class UploadReport:
    resumed_from: int  # bytes the host already held, verified by their hash (0: from the start)
    sent_bytes: int
    chunks: int


def resume_offset(spec: HostingBundleModel, state: dict[str, Any]) -> int:
    """Where to continue: the bytes the host holds of this installer when their SHA-256 is that of the same prefix
    of the local file; otherwise 0 (the host's copy is of no use and is overwritten)."""
    held = int(state.get("held_bytes") or 0)
    if held <= 0 or held > spec.size:
        return 0
    return held if local.sha256_of(spec.source_path, held) == state.get("held_sha256") else 0


def upload(
    spec: HostingBundleModel, state: dict[str, Any], run_chunk: RunChunk, chunk_bytes: int = CHUNK_BYTES
) -> UploadReport:
    """Send what the host lacks of ``spec``'s installer; ``state`` is what the get script reported."""
    start = resume_offset(spec, state)
    sent = chunks = 0
    for offset, data in local.read_chunks(spec.source_path, start, chunk_bytes):
        held = int(run_chunk(spec.chunk_input(offset, base64.b64encode(data).decode("ascii"))).state["held_bytes"])
        if held != offset + len(data):
            raise RuntimeError(f"the host holds {held} bytes after the chunk at {offset}, not {offset + len(data)}")
        sent += len(data)
        chunks += 1
    return UploadReport(start, sent, chunks)

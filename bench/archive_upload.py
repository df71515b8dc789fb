"""Upload throughput of the runtime archive: a 100 MB archive sent to the simulated host.

The same code path as the RuntimeArchive resource (providers/runtime_archive/upload.py over run_script),
against a simulated host on loopback: NTLM with message encryption over HTTP, then NTLM over HTTPS. Prints
the measured MB/s and the ceiling the envelope size and base64 set per WinRM Send, then the extraction time.
Run: `.venv/bin/python bench/archive_upload.py [size_mb]`.
"""

from __future__ import annotations

import base64
import os
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from providers.framework.upload import CHUNK_BYTES, upload
from providers.runtime_archive.local import inspect_archive
from providers.runtime_archive.model import RuntimeArchiveModel
from providers.scripting.runner import ScriptRef, encode_request, run_script
from providers.transport.channel import STDIN_CHUNK_BYTES
from providers.transport.connection import HostConnection
from tests.support.hosts import Target, start_simulator, stop_simulator

MB = 1_000_000
MAX_ENVELOPE_KB = 500  # Windows' default MaxEnvelopeSizekb
ENVELOPE_OVERHEAD = 2_000  # SOAP headers of a Send (measured from pywinrm's envelope: ~1.6 KB)


def make_archive(folder: Path, size: int) -> Path:
    """A zip of one incompressible file (the vendor's runtime is mostly compressed DLLs already)."""
    path = folder / "IdentityManager-Runtime-bench.zip"
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive,
        archive.open("identitymanager-Agent.dll", "w", force_zip64=True) as entry,
    ):
        for start in range(0, size, 1 << 20):
            entry.write(os.urandom(min(1 << 20, size - start)))
    return path


def sends_in_journal(target: Target) -> int:
    assert target.state_dir is not None
    with (target.state_dir / "_sim" / "journal.jsonl").open("rb") as journal:
        return sum(1 for line in journal if b'"action": "Send"' in line and b'"kind": "request"' in line)


def spec_for(connection: dict[str, Any], archive: Path, runtime: str) -> RuntimeArchiveModel:
    found = inspect_archive(archive)
    return RuntimeArchiveModel.model_validate(
        {
            "connection": connection,
            "source_path": found.path,
            "archive_name": found.name,
            "sha256": found.sha256,
            "size": found.size,
            "runtime_path": runtime,
        }
    )


def run(label: str, target: Target, connection: dict[str, Any], archive: Path, runtime: str) -> None:
    spec = spec_for(connection, archive, runtime)
    conn = HostConnection.model_validate(connection)

    def op(name: str, payload: dict[str, Any]) -> Any:
        return run_script(conn, ScriptRef("providers.runtime_archive", name), payload, resource="bench")

    state = op("get", spec.script_input()).state  # warm-up: the PowerShell process is started
    sends_before = sends_in_journal(target)
    started = time.perf_counter()
    report = upload(spec, state, lambda payload: op("chunk", payload))
    elapsed = time.perf_counter() - started
    sends = sends_in_journal(target) - sends_before
    extract_started = time.perf_counter()
    op("set", spec.script_input())
    extract = time.perf_counter() - extract_started

    # One chunk's request line: the data is base64 in the JSON input, the line base64 again (runner.py);
    # pywinrm base64-encodes stdin a third time inside the Send envelope.
    data = base64.b64encode(bytes(CHUNK_BYTES)).decode("ascii")
    line = len(encode_request(ScriptRef("providers.runtime_archive", "chunk"), spec.chunk_input(0, data))) + 8
    per_send = CHUNK_BYTES * STDIN_CHUNK_BYTES / line  # archive bytes in a Send as the transport fills it
    full = (MAX_ENVELOPE_KB * 1024 - ENVELOPE_OVERHEAD) * 3 / 4  # stdin bytes a Send at the limit can carry
    best = full * CHUNK_BYTES / line
    rate = report.sent_bytes / elapsed / MB
    print(
        f"| {label} | {report.sent_bytes / MB:.0f} | {report.chunks} | {sends} | {elapsed:.1f} | **{rate:.1f}** | "
        f"{line * 4 / 3 / CHUNK_BYTES:.2f} | {per_send / 1024:.0f} | {best / 1024:.0f} | "
        f"{sends / elapsed * best / MB:.1f} | {extract:.1f} |"
    )


def main() -> None:
    size = int(sys.argv[1]) * MB if len(sys.argv) > 1 else 100 * MB
    folder = Path(tempfile.mkdtemp())
    archive = make_archive(folder, size)
    target = start_simulator(folder / "devhost")
    try:
        print(
            "| transport | MB sent | chunks | WinRM Sends | s | MB/s | envelope bytes per archive byte | "
            "archive KiB per Send (96 KiB of stdin) | archive KiB per Send at MaxEnvelopeSizekb 500 | "
            "MB/s if each Send were full, at the same Send rate | extraction s |\n" + "| --- " * 11 + "|"
        )
        run("NTLM, HTTP, message encryption", target, target.connection, archive, "C:\\bench\\http\\Runtime")
        https = {
            **target.connection,
            "port": target.https_port,
            "use_https": True,
            "ca_bundle": target.ca_cert,
        }
        run("NTLM, HTTPS", target, https, archive, "C:\\bench\\https\\Runtime")
    finally:
        stop_simulator(target)
        shutil.rmtree(folder, ignore_errors=True)  # the archive, and the journal that holds it twice over


if __name__ == "__main__":
    main()

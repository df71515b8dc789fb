"""Round-trip cost of one operation over WinRM against the simulated host.

Compares the project's pooled session (one authenticated connection and shell per host, reused)
with what pywinrm's `Session.run_ps` style costs (new connection, NTLM handshake, shell create and
delete per call), sequentially and with 4 operations in parallel (the dynamic-provider server's
limit). Also reports the peak RSS of this process. Run: `.venv/bin/python bench/bench_transport.py`.
"""

from __future__ import annotations

import resource
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from providers.scripting.runner import POWERSHELL, ScriptRef, bootstrap_arguments, encode_request, run_script
from providers.transport.connection import HostConnection
from providers.transport.session import WinRMSession
from tests.support.hosts import start_simulator, stop_simulator

GET = ScriptRef("providers.settings_file", "get")
N = 60


def payload() -> dict[str, object]:
    return {
        "path": f"C:\\bench\\{uuid.uuid4().hex[:8]}.json",
        "content": "",
        "encoding": "utf-8",
        "keep_backup": True,
        "readers": None,
    }


def timed(label: str, count: int, action: object) -> float:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        action()  # type: ignore[operator]
        samples.append((time.perf_counter() - started) * 1000)
    median = statistics.median(samples)
    p95 = sorted(samples)[int(len(samples) * 0.95) - 1]
    print(f"| {label} | {count} | {median:.1f} | {p95:.1f} |")
    return median


def main() -> None:
    target = start_simulator(Path(tempfile.mkdtemp()) / "devhost")
    try:
        conn = HostConnection.model_validate(target.connection)
        print("| scenario | operations | median ms | p95 ms |\n| --- | --- | --- | --- |")
        run_script(conn, GET, payload(), resource="warm-up")
        timed("pooled session, sequential", N, lambda: run_script(conn, GET, payload(), resource="b"))

        def fresh() -> None:
            session = WinRMSession(conn)
            session.run(POWERSHELL, bootstrap_arguments(), encode_request(GET, payload()))
            session.close()

        timed("new session per call (run_ps style)", N // 3, fresh)

        def parallel_batch() -> None:
            threads = [
                threading.Thread(target=lambda: run_script(conn, GET, payload(), resource="b")) for _ in range(4)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

        parallel_batch()
        timed("pooled session, 4 in parallel (per batch)", N // 4, parallel_batch)
        # Windows pays ~0.2-0.5 s to start powershell.exe; the simulator can charge that too.
        target.set_knobs(process_start_ms=250)
        timed("sequential, 250 ms process start", 8, lambda: run_script(conn, GET, payload(), resource="b"))
        timed("4 in parallel, 250 ms process start (per batch)", 4, parallel_batch)
        target.set_knobs()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"\npeak RSS of the client process: {peak:.0f} MiB")
    finally:
        stop_simulator(target)


if __name__ == "__main__":
    main()

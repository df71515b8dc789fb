"""The speed benchmark (issue 9): every verb on 1, 5 and 20 SIMULATED hosts, one production agent each.

Latency model (the simulator's knobs): 2 ms per HTTP request, 600 ms per process start (powershell.exe on a
warm Windows Server). For each size it runs, with the real `pulumi` CLI through `python -m stackrun`:
first `up`, `preview` (nothing to change), `refresh`, a change of one setting on every agent (`up`); and
counts from the hosts' journals, per verb: operations, process starts, shells, HTTP requests (and per
operation), the span of WinRM traffic; it samples the peak memory of the provider and of the CLI.

In the same run it times the naive path (pywinrm's run_ps style: a new connection, authentication, shell and
powershell.exe per operation, 4 at once) on the operations of the refresh, and computes the limit: one
round trip per operation (the median time of one WS-Man request on an open connection, times the
operations). Writes bench/RESULTS.md's "Speed" section. Run: `.venv/bin/python bench/run.py [--sizes 1,5]`.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import datetime
import json
import os
import platform
import runpy
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from providers.scripting.runner import POWERSHELL, bootstrap_arguments, loop_preamble  # noqa: E402
from providers.transport.connection import HostConnection  # noqa: E402
from providers.transport.session import WinRMSession  # noqa: E402
from stackrun.cli import main as stackrun_main  # noqa: E402
from stackrun.workspace import LOCAL_DEV_PASSPHRASE  # noqa: E402
from tests.support.estate import AGENTS_KEY, HOSTS_KEY, SimulatedEstate, start_estate  # noqa: E402
from tests.support.hosts import Target  # noqa: E402

LATENCY_MS = 2
PROCESS_START_MS = 600
NAIVE_PARALLEL = 4
RESULTS = ROOT / "bench" / "RESULTS.md"
SECTION = "## Speed: bench/run.py"


# -- the project under test ------------------------------------------------------------------------


@dataclass
class Project:
    root: Path
    estate: SimulatedEstate
    document: dict[str, Any] = field(default_factory=dict)
    runs: int = 0

    @classmethod
    def create(cls, root: Path, estate: SimulatedEstate) -> Project:
        """A copy of the project whose stack has one production agent (the local stack's zone-a) per host."""
        project = cls(root, estate)
        (root / "project" / "stacks").mkdir(parents=True)
        (root / "backend").mkdir()
        shutil.copy(ROOT / "__main__.py", root / "project" / "__main__.py")
        project_file = yaml.safe_load((ROOT / "Pulumi.yaml").read_text(encoding="utf-8"))
        for plugin in project_file.get("plugins", {}).get("providers", []):
            plugin["path"] = str(ROOT / plugin["path"])  # (relative to the repository, not to the copy)
        (root / "project" / "Pulumi.yaml").write_text(yaml.safe_dump(project_file, sort_keys=False), encoding="utf-8")
        local = yaml.safe_load((ROOT / "stacks" / "Pulumi.local.yaml").read_text(encoding="utf-8"))
        template_host = local["config"][HOSTS_KEY]["zone-a"]
        template_agent = next(a for a in local["config"][AGENTS_KEY] if a["name"] == "zone-a")
        hosts, agents = {}, []
        for name, target in estate.hosts.items():
            hosts[name] = {**template_host, "address": target.connection["host"], "port": target.connection["port"]}
            agent = copy.deepcopy(template_agent)
            agent.update(name=name, host=name, hostName=f"{name}.contoso.example")
            agent["settings"]["agentIdentifier"] = f"Contoso-{name}"
            agents.append(agent)
        project.document = {**local, "config": {HOSTS_KEY: hosts, AGENTS_KEY: agents}}
        project.write()
        return project

    def write(self) -> None:
        path = self.root / "project" / "stacks" / "Pulumi.bench.yaml"
        path.write_text(yaml.safe_dump(self.document, sort_keys=False), encoding="utf-8")

    def change_every_agent(self) -> None:
        for agent in self.document["config"][AGENTS_KEY]:
            agent["settings"]["connections"]["ADExport"]["Filter"] = "(objectClass=person)"
        self.write()

    def run(self, *argv: str) -> None:
        self.runs += 1
        log = self.root / f"run{self.runs}.txt"
        project = self.root / "project"
        with log.open("w", encoding="utf-8") as out:
            code = stackrun_main(
                [*argv, "--stack", "bench"],
                program=lambda: runpy.run_path(str(project / "__main__.py"), run_name="__main__"),
                work_dir=project,
                extra_env={
                    "PULUMI_BACKEND_URL": f"file://{self.root / 'backend'}",
                    "PULUMI_CONFIG_PASSPHRASE": LOCAL_DEV_PASSPHRASE,
                },
                stdout=out,
                stderr=out,
            )
        if code != 0:
            raise RuntimeError(f"stackrun {' '.join(argv)} exited {code}:\n{log.read_text(encoding='utf-8')[-3000:]}")


# -- measuring -------------------------------------------------------------------------------------


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ProcessSampler:
    """Samples, while a verb runs, the peak resident set (VmHWM) of the provider and CLI processes and the CPU
    time (user + system) of every process by role: the CLI, the provider, the simulated hosts, and this
    process (the program runs inline here, less the sampler's own CPU). On a machine whose cores also run the
    simulated hosts, the CPU seconds tell whether a verb waited on the network or on the processor. A process's
    role is read from its command line once; the sampler's own work is kept small because it shares the cores
    with what it measures."""

    ROLES = ("cli", "provider", "simulators", "program")

    def __init__(self, simulator_pids: set[int]) -> None:
        self.simulator_pids = simulator_pids  # this estate's hosts only (other runs may share the machine)
        self.provider_mb = 0.0
        self.cli_mb = 0.0
        self._first: dict[int, float] = {}  # CPU seconds of processes already running at the start
        self._last: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._self_cpu = 0.0
        self._sampler_cpu = 0.0  # CPU seconds of the sampling itself, taken out of the program's figure
        self._roles: dict[int, str | None] = {}

    def __enter__(self) -> ProcessSampler:
        for pid, (_role, cpu) in self._snapshot().items():
            self._first[pid] = cpu
        self._self_cpu = time.process_time()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        started = time.thread_time()
        self._record(self._snapshot())
        self._sampler_cpu += time.thread_time() - started
        self._self_cpu = time.process_time() - self._self_cpu - self._sampler_cpu

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds spent during the verb, by role."""
        totals = dict.fromkeys(self.ROLES, 0.0)
        for pid, (role, cpu) in self._last.items():
            totals[role] += cpu - self._first.get(pid, 0.0)
        totals["program"] = self._self_cpu
        return totals

    def _snapshot(self) -> dict[int, tuple[str, float]]:
        seen: dict[int, tuple[str, float]] = {}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            with contextlib.suppress(OSError, IndexError, ValueError):
                role = self._role_of(int(pid))
                if role is None:
                    continue
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (proc(5))
                seen[int(pid)] = (role, cpu)
                if role in ("provider", "cli"):
                    status = Path(f"/proc/{pid}/status").read_text()
                    peak = next((int(x.split()[1]) for x in status.splitlines() if x.startswith("VmHWM")), 0)
                    if role == "provider":
                        self.provider_mb = max(self.provider_mb, peak / 1024)
                    else:
                        self.cli_mb = max(self.cli_mb, peak / 1024)
        return seen

    def _role_of(self, pid: int) -> str | None:
        if pid not in self._roles:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            self._roles[pid] = "simulators" if pid in self.simulator_pids else self._role(argv)
        return self._roles[pid]

    @staticmethod
    def _role(argv: list[bytes]) -> str | None:
        if any(b"pulumi.dynamic" in a or b"providers.dynamic_server" in a for a in argv):
            return "provider"
        if argv and argv[0].endswith(b"/pulumi"):
            return "cli"
        return None

    def _record(self, seen: dict[int, tuple[str, float]]) -> None:
        self._last.update(seen)

    def _sample(self) -> None:
        started = time.thread_time()
        while not self._stop.wait(0.1):
            self._record(self._snapshot())
        self._sampler_cpu += time.thread_time() - started


def measure(project: Project, label: str, *argv: str) -> dict[str, Any]:
    estate = project.estate
    marks = {name: target.journal_mark() for name, target in estate.hosts.items()}
    started = time.perf_counter()
    simulators = {t.process.pid for t in estate.hosts.values() if t.process is not None}
    with ProcessSampler(simulators) as memory:
        project.run(*argv)
    wall = time.perf_counter() - started
    per_host: dict[str, dict[str, int]] = {}
    times: list[float] = []
    operations: list[dict[str, Any]] = []
    for name, target in estate.hosts.items():
        events = target.journal_since(marks[name])
        kinds = [e["kind"] for e in events]
        starts = sum(1 for e in events if e["kind"] == "command" and e["command_line"].startswith(POWERSHELL))
        per_host[name] = {"starts": starts, "shells": kinds.count("create"), "requests": kinds.count("request")}
        times += [float(e["time"]) for e in events if e["kind"] == "request"]
        operations += [e for e in events if e["kind"] == "operation"]
    ops = len(operations)
    requests = sum(h["requests"] for h in per_host.values())
    return {
        "verb": label,
        "wall_s": wall,
        "operations": ops,
        "process_starts": sum(h["starts"] for h in per_host.values()),
        "starts_within_shells": all(h["starts"] <= h["shells"] for h in per_host.values()),
        "shells": sum(h["shells"] for h in per_host.values()),
        "http_requests": requests,
        "requests_per_operation": requests / ops if ops else 0.0,
        "winrm_span_s": (max(times) - min(times)) if times else 0.0,
        "provider_mb": memory.provider_mb,
        "cli_mb": memory.cli_mb,
        "cpu_s": memory.cpu_s(),
        # (kept for the naive replay of the refresh; dropped from the results)
        "requests": [(name, r) for name, t in estate.hosts.items() for r in t.requests_since(marks[name])],
    }


def round_trip_s(target: Target) -> float:
    """Median time of one WS-Man request on an open, authenticated connection (a Send to a running
    command): the floor of what one operation can cost on the wire."""
    conn = HostConnection.model_validate(target.connection)
    session = WinRMSession(conn)
    protocol = session._new_protocol()  # the bench measures the wire itself, below the session
    shell = protocol.open_shell()
    command = protocol.run_command(shell, "cmd.exe", ["/c", "more"])
    samples = []
    for _ in range(30):
        started = time.perf_counter()
        protocol.send_command_input(shell, command, b"x\n", end=False)
        samples.append(time.perf_counter() - started)
    protocol.close_shell(shell)
    return statistics.median(samples)


def naive_s(estate: SimulatedEstate, requests: list[tuple[str, dict[str, Any]]]) -> float:
    """The refresh's operations the run_ps way: per operation a new connection, NTLM handshake, shell and
    powershell.exe (stdin closed after the one request), 4 at once."""

    def one(item: tuple[str, dict[str, Any]]) -> None:
        host, request = item
        conn = HostConnection.model_validate(estate.hosts[host].connection)
        line = b"1 " + base64.b64encode(json.dumps(request).encode("utf-8")) + b"\n"
        result = WinRMSession(conn).run(POWERSHELL, bootstrap_arguments(), loop_preamble() + line)
        if b"#usercube-response 1 " not in result.stdout:
            raise RuntimeError(f"naive run on {host} gave no response: {result.stderr[:500]!r}")

    started = time.perf_counter()
    with ThreadPoolExecutor(NAIVE_PARALLEL) as pool:
        list(pool.map(one, requests))
    return time.perf_counter() - started


@contextlib.contextmanager
def estate_of(size: int, root: Path) -> Iterator[SimulatedEstate]:
    names = [f"host-{i:02d}" for i in range(1, size + 1)]
    with contextlib.contextmanager(start_estate)(root / "hosts", names, first_address=40) as estate:
        for target in estate.hosts.values():
            target.set_knobs(latency_ms=LATENCY_MS, process_start_ms=PROCESS_START_MS)
        yield estate


def bench_size(size: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix=f"bench-{size}-"))
    with estate_of(size, root) as estate:
        project = Project.create(root / "stack", estate)
        verbs = [measure(project, "first up", "up")]
        verbs.append(measure(project, "preview (no change)", "preview"))
        refresh = measure(project, "refresh", "refresh")
        verbs.append(refresh)
        project.change_every_agent()
        verbs.append(measure(project, "change one setting per agent (up)", "up"))
        rtt = round_trip_s(next(iter(estate.hosts.values())))
        naive = naive_s(estate, refresh["requests"])
    shutil.rmtree(root, ignore_errors=True)
    for verb in verbs:
        verb.pop("requests")
    return {"size": size, "verbs": verbs, "rtt_s": rtt, "naive_refresh_s": naive, "refresh_ops": refresh["operations"]}


# -- the report ------------------------------------------------------------------------------------


def render(results: list[dict[str, Any]]) -> str:
    lines = [
        SECTION,
        "",
        f"{datetime.date.today().isoformat()}, {platform.node() or 'build machine'}: {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, pulumi CLI v3.259.0, simulated hosts on loopback (NTLM over HTTP with "
        f"message encryption). Latency model: {LATENCY_MS} ms per HTTP request, {PROCESS_START_MS} ms per process "
        "start. One production agent (17 resources) per host. Reproduce: `.venv/bin/python bench/run.py`.",
        "",
        "| hosts | verb | wall s | operations | process starts | shells | HTTP requests | per operation "
        "| WinRM span s | provider MB | CLI MB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for result in results:
        for v in result["verbs"]:
            lines.append(
                f"| {result['size']} | {v['verb']} | {v['wall_s']:.2f} | {v['operations']} | {v['process_starts']} "
                f"| {v['shells']} | {v['http_requests']} | {v['requests_per_operation']:.2f} | "
                f"{v['winrm_span_s']:.2f} | {v['provider_mb']:.0f} | {v['cli_mb']:.0f} |"
            )
    lines += [
        "",
        "CPU seconds (user + system) spent during each verb, by process: on this machine the simulated hosts share "
        "the cores with the CLI, the provider and the program (which runs inline in the bench's process).",
        "",
        "| hosts | verb | wall s | CLI | provider | simulated hosts | program | total CPU s | CPU / (wall × cores) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    cores = os.cpu_count() or 1
    for result in results:
        for v in result["verbs"]:
            cpu = v["cpu_s"]
            total = sum(cpu.values())
            lines.append(
                f"| {result['size']} | {v['verb']} | {v['wall_s']:.2f} | {cpu['cli']:.2f} | {cpu['provider']:.2f} | "
                f"{cpu['simulators']:.2f} | {cpu['program']:.2f} | {total:.2f} | {total / (v['wall_s'] * cores):.0%} |"
            )
    lines += [
        "",
        "| hosts | refresh s | naive refresh s | limit s (1 round trip per operation) | "
        "WinRM span / limit | limit + one powershell.exe start s | WinRM span / that | refresh / refresh of 1 host |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    one = next((r for r in results if r["size"] == 1), None)
    for result in results:
        refresh = next(v for v in result["verbs"] if v["verb"] == "refresh")
        limit = result["rtt_s"] * result["refresh_ops"]
        base = next(v for v in one["verbs"] if v["verb"] == "refresh")["wall_s"] if one else float("nan")
        # The issue's own goal: "one request and one response per operation over an open shell, with
        # powershell.exe started once" -- the start once per host, the hosts starting theirs in parallel.
        started_once = limit + PROCESS_START_MS / 1000
        lines.append(
            f"| {result['size']} | {refresh['wall_s']:.2f} | {result['naive_refresh_s']:.2f} | {limit:.3f} | "
            f"{refresh['winrm_span_s'] / limit:.1f} | {started_once:.3f} | "
            f"{refresh['winrm_span_s'] / started_once:.1f} | {refresh['wall_s'] / base:.2f} |"
        )
    return "\n".join(lines) + "\n"


def write_results(section: str) -> None:
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    if SECTION in text:
        start = text.index(SECTION)
        rest = text[start + len(SECTION) :]
        end = rest.find("\n## ")
        text = text[:start] + section + (rest[end + 1 :] if end >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,5,20", help="host counts, comma-separated")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave RESULTS.md alone")
    options = parser.parse_args(argv)
    results = [bench_size(int(size)) for size in options.sizes.split(",")]
    section = render(results)
    print(section)
    (ROOT / "bench" / "last-run.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    if not options.no_write:
        write_results(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

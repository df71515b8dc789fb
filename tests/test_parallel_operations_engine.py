"""No four-operation ceiling: a refresh across SIMULATED hosts has more than four operations in flight at once.

The simulated hosts answer every HTTP request ``latency_ms`` late (knobs.json). A provider thread that runs
an operation waits from before the WinRM Send carrying its request started (at the latest the request's
arrival, journal ``stdin``, less the latency) until a Receive brought the answer back (at the earliest the
first Receive the host completed after the operation ended, journal ``operation`` and ``request``). Two
such intervals that overlap belong to two threads; the most that overlap, all hosts together, is a lower
bound of the operations in flight. The SDK's own provider server has four threads; ours has
``USERCUBE_PROVIDER_WORKERS`` (default 64), and stackrun asks the engine for 64 operations at once. The
control run with four workers shows the measure never exceeds four there, so the first assertion can fail.

HTTPS with Basic authentication: an NTLM connection's handshake is three round trips, which the transport
makes one host at a time (``providers/transport`` builds sessions under one lock); this test is about the
provider server's threads, not that.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pulumi
import pytest

from providers.directory import Directory
from providers.dynamic_server import WORKERS_SETTING
from stackrun.cli import main
from tests.support.engine import TEST_PASSPHRASE, project_file
from tests.support.hosts import Target, start_simulator, stop_simulator

pytestmark = pytest.mark.engine

HOSTS = 4
FOLDERS_PER_HOST = 3
LATENCY_S = 0.5
MARGIN_S = 0.03  # the journal is written just after the answer left: each interval is shrunk by that much
SDK_WORKERS = 4


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Target]]:
    root = tmp_path_factory.mktemp("parallel-hosts")
    with ThreadPoolExecutor(HOSTS) as starting:
        targets = list(starting.map(lambda i: start_simulator(root / f"host{i}"), range(HOSTS)))
    try:
        yield targets
    finally:
        for target in targets:
            stop_simulator(target)


def in_flight_intervals(target: Target, mark: int) -> list[tuple[float, float]]:
    """(from, to) for each operation request since ``mark``: a time its thread surely waited (module doc)."""
    shell_of: dict[str, str] = {}
    buffers: dict[str, bytes] = {}
    arrived: dict[tuple[str, str], float] = {}
    ended: dict[tuple[str, str], float] = {}
    receives: list[float] = []
    for entry in target.journal_since(mark):
        kind = entry.get("kind")
        if kind == "command":
            shell_of[str(entry["command_id"])] = str(entry["shell_id"])
        elif kind == "stdin":  # request lines are `<id> <payload>`; a process's first line (its loop) is not one
            command = str(entry["command_id"])
            data = buffers.get(command, b"") + base64.b64decode(entry["data"])
            *lines, buffers[command] = data.split(b"\n")
            for line in lines:
                request_id = line.partition(b" ")[0]
                if request_id.isdigit():
                    arrived[(shell_of[command], request_id.decode())] = float(entry["time"])
        elif kind == "operation":
            ended[(str(entry["shell_id"]), str(entry["request_id"]))] = float(entry["ended"])
        elif kind == "request" and entry.get("action") == "Receive":
            receives.append(float(entry["time"]))
    intervals = []
    for key, arrival in arrived.items():
        answered = min(time for time in receives if time > ended[key])
        intervals.append((arrival - LATENCY_S + MARGIN_S, answered - MARGIN_S))
    return intervals


def most_overlapping(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = current = 0
    for _, step in edges:  # at equal times an end (-1) sorts first: intervals that touch do not overlap
        current += step
        most = max(most, current)
    return most


class Project:
    """A throw-away project with ``FOLDERS_PER_HOST`` folders on each host, driven through stackrun."""

    def __init__(self, root: Path, hosts: list[Target]) -> None:
        self.root = root
        self.project = root / "project"
        self.project.mkdir(parents=True)
        (self.project / "Pulumi.yaml").write_text(project_file(), encoding="utf-8")
        self.backend = root / "backend"
        self.stack = f"par{uuid.uuid4().hex[:8]}"
        self.hosts = hosts
        self.folder = f"C:\\UsercubeIacTests\\par-{uuid.uuid4().hex[:8]}"

    def program(self) -> None:
        for index, target in enumerate(self.hosts):
            connection = {
                **target.connection,
                "password": pulumi.Output.secret(target.connection["password"]),
                **{"transport": "basic", "use_https": True, "port": target.https_port, "ca_bundle": target.ca_cert},
            }
            for folder in range(FOLDERS_PER_HOST):
                Directory(f"h{index}-f{folder}", connection=connection, path=f"{self.folder}\\f{folder}")

    def run(self, *argv: str, workers: str | None = None) -> int:
        env = {"PULUMI_BACKEND_URL": f"file://{self.backend}", "PULUMI_CONFIG_PASSPHRASE": TEST_PASSPHRASE}
        if workers is not None:
            env[WORKERS_SETTING] = workers
        with (self.root / "out.txt").open("a", encoding="utf-8") as out:
            argv = (*argv, "--stack", self.stack)
            return main(argv, program=self.program, work_dir=self.project, extra_env=env, stdout=out, stderr=out)

    def output(self) -> str:
        return (self.root / "out.txt").read_text(encoding="utf-8")

    def refresh_in_flight(self, workers: str | None = None) -> int:
        """The most operations in flight at once during a refresh with every host ``LATENCY_S`` away."""
        for target in self.hosts:
            target.set_knobs(latency_ms=LATENCY_S * 1000)
        marks = [target.journal_mark() for target in self.hosts]
        try:
            assert self.run("refresh", "--expect-no-changes", workers=workers) == 0, self.output()
        finally:
            for target in self.hosts:
                target.set_knobs()
        intervals = [
            i for target, mark in zip(self.hosts, marks, strict=True) for i in in_flight_intervals(target, mark)
        ]
        assert len(intervals) == HOSTS * FOLDERS_PER_HOST, intervals  # one read per folder
        return most_overlapping(intervals)


def test_refresh_across_hosts_has_more_than_four_operations_in_flight(tmp_path: Path, hosts: list[Target]) -> None:
    project = Project(tmp_path, hosts)
    assert project.run("up") == 0, project.output()
    try:
        ours = project.refresh_in_flight()
        sdk = project.refresh_in_flight(workers=str(SDK_WORKERS))
        assert ours > SDK_WORKERS, f"at most {ours} operations in flight with our server"
        assert sdk <= SDK_WORKERS, f"{sdk} in flight with {SDK_WORKERS} workers: the measure is unsound"
    finally:
        assert project.run("destroy") == 0, project.output()

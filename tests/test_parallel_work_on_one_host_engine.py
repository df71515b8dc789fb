"""Two stacks changing IIS and NTFS on one SIMULATED host at the same time (issue 11 §7).

Each round gives both stacks a new random desired state (seeded; the seed is printed and can be set with
``USERCUBE_PARALLEL_SEED``) and runs their `up`s at once, through two engines, two provider processes and two
WinRM sessions to the same host. Per stack and slot: an IisAppPool with a random idle timeout, an IisSite in
it, and a FileAcl granting the pool's account random rights on one folder both stacks share. A slot may come,
change or go in any round, so the host sees pool and site creations, updates and removals and ACL grants,
changes and removals from both stacks interleaved.

After every round: both runs succeeded (a failure here is never one a re-run would give again: the inputs
are valid, so any failure is a concurrency loss); every pool, site and ACL entry either stack wants is on the
host with its values, and none of a removed slot is left. At the end: a refresh of each stack finds no drift.
And the stale-commit path was really taken: the simulator journals every CommitChanges that found
applicationHost.config changed since its load (``iis_commit_conflict``), with whether the script retried;
there must be some, each retried. The FileAcl scripts' named mutex journals its waits (``mutex_wait``):
there must be some too, or the ACL writers never overlapped and the test proved nothing about them.

The simulator keeps a script's read-to-commit window as long as on Windows (devhost.iis.SCRIPT_WORK_S, 100 ms
by default); the FileAcl script's between GetAccessControl and SetAccessControl (devhost.ops.file_acl.SCRIPT_WORK_S)
is widened here to ``ACL_WORK_MS`` so that the ACL writers overlap in most rounds.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pulumi
import pytest

from devhost import accounts, iis, ntfs
from providers.file_acl import FileAcl
from providers.file_acl.rights import mask_of
from providers.iis_app_pool import IisAppPool
from providers.iis_site import IisSite
from tests.support.engine import EngineStack, Run
from tests.support.hosts import Target, start_simulator, stop_simulator

pytestmark = pytest.mark.engine

STACKS = ("a", "b")
SLOTS = 3
ROUNDS_PER_CASE = 10
CASES = 2  # 20 rounds in all
SHARED = "C:\\UsercubeIacTests\\parallel-shared"
RIGHTS = (["ReadAndExecute"], ["Modify"], ["Read"], ["ReadAndExecute", "Write"])
IDLE_MINUTES = (0, 5, 10, 20)
BUNDLE = "8.0.11"
ACL_WORK_MS = 200
SEED = int(os.environ.get("USERCUBE_PARALLEL_SEED") or random.SystemRandom().randrange(1, 10**6))
# figures of the whole run, printed at the end of each case (for the README)
FIGURES: dict[str, int] = {"rounds": 0, "runs": 0, "failed_runs": 0, "conflicts": 0, "mutex_waits": 0}


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """A simulated host of its own (its journal and knobs are this test's), with IIS, the hosting bundle and
    the shared folder."""
    target = start_simulator(tmp_path_factory.mktemp("parallel-work") / "host")
    assert target.state_dir is not None
    iis.ensure_installed(target.state_dir)
    iis.install_hosting_bundle(target.state_dir, BUNDLE)
    target.windows_file(SHARED).mkdir(parents=True)
    # The FileAcl script's work between GetAccessControl and SetAccessControl, widened from its default (tens of
    # milliseconds) so that the two stacks' ACL changes, which wait for their pools, overlap in most rounds.
    target.set_knobs(acl_script_work_ms=ACL_WORK_MS)
    try:
        yield target
    finally:
        stop_simulator(target)


Desired = dict[int, dict[str, Any]]  # slot -> {"idle": minutes, "rights": [...]}


def random_desired(rng: random.Random) -> Desired:
    """Each slot present three times in four, with a random idle timeout and random rights."""
    return {
        slot: {"idle": rng.choice(IDLE_MINUTES), "rights": rng.choice(RIGHTS)}
        for slot in range(SLOTS)
        if rng.random() < 0.75
    }


class StackUnderTest:
    """One of the two stacks: its desired state is replaced each round, and read by its program."""

    def __init__(self, root: Path, backend: Path, host: Target, label: str, suffix: str) -> None:
        self.host = host
        self.label = label
        self.suffix = suffix
        self.desired: Desired = {}
        self.engine = EngineStack(root / f"project-{label}", backend, self.program)

    def name(self, slot: int) -> str:
        return f"UcPar{self.label}{slot}{self.suffix}"

    def port(self, slot: int) -> int:
        return 31000 + STACKS.index(self.label) * 10 + slot

    def program(self) -> None:
        connection = {**self.host.connection, "password": pulumi.Output.secret(self.host.connection["password"])}
        for slot, want in self.desired.items():
            name = self.name(slot)
            pool = IisAppPool(f"pool{slot}", connection=connection, name=name, idle_timeout_minutes=want["idle"])
            after_pool = pulumi.ResourceOptions(depends_on=[pool])
            IisSite(
                f"site{slot}",
                connection=connection,
                name=name,
                app_pool=name,
                physical_path=f"C:\\UsercubeIacTests\\parallel\\{name}",
                bindings=[{"protocol": "http", "port": self.port(slot), "host_header": f"{name.lower()}.contoso.com"}],
                opts=after_pool,
            )
            FileAcl(
                f"acl{slot}",
                connection=connection,
                path=SHARED,
                principal=f"IIS AppPool\\{name}",
                rights=want["rights"],
                opts=after_pool,
            )


def on_host(host: Target, stack: StackUnderTest) -> list[str]:
    """What differs between the host and the stack's desired state (empty: everything is there, and only
    that)."""
    assert host.state_dir is not None
    manager = iis.ServerManager(host.state_dir)
    dacl = ntfs.NtfsStore(host.state_dir).descriptor(SHARED).explicit
    problems = []
    for slot in range(SLOTS):
        name = stack.name(slot)
        sid = accounts.virtual_sid(82, name)
        pool, site = manager.find_pool(name), manager.find_site(name)
        entries = [ace for ace in dacl if ace.sid == sid and ace.allow]
        want = stack.desired.get(slot)
        if want is None:
            if pool is not None or site is not None or entries:
                problems.append(f"{name}: removed, but pool {pool is not None}, site {site is not None}, {entries}")
            continue
        if pool is None:
            problems.append(f"{name}: pool missing")
        elif manager.pool_value(pool, "processModel/idleTimeout") != f"00:{want['idle']:02d}:00":
            problems.append(f"{name}: idle timeout {manager.pool_value(pool, 'processModel/idleTimeout')}")
        if site is None:
            problems.append(f"{name}: site missing")
        elif manager.application_pool_of(site) != name:
            problems.append(f"{name}: site runs in {manager.application_pool_of(site)}")
        masks = [ace.mask & ~ntfs.SYNCHRONIZE for ace in entries]
        if masks != [mask_of(want["rights"])]:
            problems.append(f"{name}: ACL entries {[hex(m) for m in masks]}, want {hex(mask_of(want['rights']))}")
    return problems


def up_together(stacks: list[StackUnderTest], rng: random.Random) -> list[Run]:
    """Both `up`s at once, the second started up to 300 ms after the first (a random stagger)."""
    stagger = rng.uniform(0, 0.3)

    def up(index: int) -> Run:
        if index:
            time.sleep(stagger)
        return stacks[index].engine.up()

    with ThreadPoolExecutor(len(stacks)) as pool:
        return list(pool.map(up, range(len(stacks))))


def count(host: Target, mark: int, kind: str, where: Callable[[dict[str, Any]], bool] = lambda _: True) -> int:
    return sum(1 for e in host.journal_since(mark) if e.get("kind") == kind and where(e))


@pytest.mark.parametrize("case", range(CASES))
def test_two_stacks_change_iis_and_acls_on_one_host_at_once(
    case: int, host: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = SEED + case
    print(f"seed {seed} (USERCUBE_PARALLEL_SEED={SEED})")
    rng = random.Random(seed)
    suffix = uuid.uuid4().hex[:6]
    stacks = [StackUnderTest(tmp_path, tmp_path / "backend", host, label, suffix) for label in STACKS]
    mark = host.journal_mark()
    try:
        for round_number in range(ROUNDS_PER_CASE):
            for stack in stacks:
                stack.desired = random_desired(rng)
            runs = up_together(stacks, rng)
            FIGURES["rounds"] += 1
            FIGURES["runs"] += len(runs)
            FIGURES["failed_runs"] += sum(1 for run in runs if not run.ok)
            for stack, run in zip(stacks, runs, strict=True):
                assert run.ok, f"seed {seed}, round {round_number}, stack {stack.label}:\n{run.output}"
            for stack in stacks:
                assert on_host(host, stack) == [], f"seed {seed}, round {round_number}, stack {stack.label}"
        for stack in stacks:
            refreshed = stack.engine.refresh(expect_no_changes=True)
            assert refreshed.ok, f"seed {seed}: drift after the rounds, stack {stack.label}:\n{refreshed.output}"
    finally:
        for stack in stacks:
            destroyed = stack.engine.destroy()
            assert destroyed.ok, destroyed.output
    for stack in stacks:
        stack.desired = {}
        assert on_host(host, stack) == [], "destroy left something of the stack on the host"

    conflicts = count(host, mark, "iis_commit_conflict")
    gave_up = count(host, mark, "iis_commit_conflict", lambda e: not e["retried"])
    waits = count(host, mark, "mutex_wait")
    attempts = [int(e["attempt"]) for e in host.journal_since(mark) if e.get("kind") == "iis_commit_conflict"]
    FIGURES["conflicts"] += conflicts
    FIGURES["mutex_waits"] += waits
    with capsys.disabled():
        print(
            f"\n[parallel work, seed {seed}] {ROUNDS_PER_CASE} rounds: {conflicts} stale commits retried, "
            f"{gave_up} given up (at most {max(attempts, default=0)} stale in a row), {waits} waits for the DACL "
            f"mutex; so far {FIGURES}"
        )
    assert conflicts > 0, f"seed {seed}: no commit found applicationHost.config changed; nothing was exercised"
    assert gave_up == 0, f"seed {seed}: {gave_up} commits ran out of attempts"
    assert waits > 0, f"seed {seed}: no FileAcl change waited for another; the ACL writers never overlapped"

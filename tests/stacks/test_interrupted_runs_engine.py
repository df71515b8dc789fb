"""Issue 11, §3: interrupted runs of the local estate (stacks/Pulumi.local.yaml, three SIMULATED hosts).

The kill matrix: an `up` from nothing, its `pulumi` CLI sent SIGINT after the N-th WinRM request the hosts
journaled and SIGKILL ``grace`` seconds later if it still runs (tests/support/interrupt.py). A full `up` of the
estate is 105 to 109 requests (operations travel batched, several to a Send; the count varies with how they
batch), so the points 2, 5, ..., 101 (34) spread over the whole run, the last one within its last eight requests
(a point closer to the end races the run's own end: at 104 of 108 the `up` had finished before SIGINT arrived).
Each `make test` run covers KILL_CASES of them, one per quarter of the run, chosen by USERCUBE_KILL_SEED
(default: the day number, so that consecutive nightly runs rotate through every point of each quarter);
USERCUBE_KILL_POINTS=all runs all 34, USERCUBE_KILL_POINTS=20,35 those two. After each kill:

- every JSON and XML file on every host parses, and each agent settings file (a SettingsFile resource's) holds
  its old or its new content;
- a plain re-run (`python -m stackrun up`) converges: stackrun removes the stale lock and clears the pending
  creates as the CLI asks (stackrun/interrupted.py), every create adopts what the interrupted run made;
- no temporary file is left on any host, no process of the run outlives it (the provider plugin ends);
- `refresh --preview-only --expect-no-changes` exits 0.
"""

from __future__ import annotations

import datetime
import os
import random
from pathlib import Path

import pytest

from stackrun import interrupted
from tests.support.estate import EstateProject, SimulatedEstate
from tests.support.interrupt import broken_settings_files, interrupt_up, settings_files, temporary_files

pytestmark = pytest.mark.engine

POINTS = list(range(2, 102, 3))  # requests after which SIGINT is sent: 34 points over a 105-109-request `up`
# SIGKILL this long after SIGINT unless the CLI has ended: a short grace kills it with operations in flight
# (pending in the state, the lock left); the long one lets it cancel cleanly (exit 8 or 255, no pending).
GRACES_S = (0.2, 1.0, 15.0)
KILL_CASES = 4  # points per `make test` run: one per quarter of the run


def _seed() -> int:
    raw = os.environ.get("USERCUBE_KILL_SEED", "").strip()
    return int(raw) if raw else datetime.date.today().toordinal()


def kill_points() -> list[tuple[int, float]]:
    """(point, grace) of this run: one per quarter of POINTS, rotating with the seed; or all of them."""
    graces = {point: GRACES_S[index % len(GRACES_S)] for index, point in enumerate(POINTS)}
    wanted = os.environ.get("USERCUBE_KILL_POINTS", "").strip()
    if wanted == "all":
        return [(point, graces[point]) for point in POINTS]
    if wanted:  # e.g. "20,35": those points of POINTS
        return [(point, graces[point]) for point in POINTS if str(point) in wanted.split(",")]
    seed = _seed()
    size = -(-len(POINTS) // KILL_CASES)
    quarters = [POINTS[i : i + size] for i in range(0, len(POINTS), size)]
    chosen = [
        quarter[(seed + random.Random(index).randrange(len(quarter))) % len(quarter)]
        for index, quarter in enumerate(quarters)
    ]
    return [(point, graces[point]) for point in chosen]


def is_settings_file_resource(key: str) -> bool:
    """An agent's settings file (a SettingsFile resource's: appsettings*.json, web.config in Runtime)."""
    path = Path(key.split(":", 1)[1])
    return path.parent.name == "Runtime" and (path.name.startswith("appsettings") or path.name == "web.config")


@pytest.mark.parametrize(("point", "grace_s"), kill_points(), ids=lambda value: str(value))
def test_an_up_killed_at_any_point_converges_on_a_plain_rerun(
    tmp_path: Path, fresh_estate: SimulatedEstate, point: int, grace_s: float
) -> None:
    local = EstateProject(tmp_path, fresh_estate)
    before = settings_files(fresh_estate)
    where = f"point {point} (SIGINT after request {point}, SIGKILL {grace_s}s later; USERCUBE_KILL_SEED={_seed()})"

    cut = interrupt_up(local, point, grace_s)
    assert cut.exit_code != 0, f"{where}: the run was not interrupted:\n{cut.output}"
    assert cut.leftovers == 0, f"{where}: {cut.leftovers} process(es) of the run outlived the CLI"
    after_kill = settings_files(fresh_estate)
    assert broken_settings_files(after_kill) == [], where

    code, text = local.run("up")
    assert code == 0, f"{where}: the re-run failed:\n{text}"
    root, project = local.backend, "usercube-agents"
    assert interrupted.locks(root, project, "local") == [], f"{where}: a lock outlived the re-run"
    assert interrupted.pending_creates(root, project, "local") == [], f"{where}: pending creates remain"
    converged = settings_files(fresh_estate)
    assert broken_settings_files(converged) == [], where
    for key, content in after_kill.items():
        if is_settings_file_resource(key):  # one resource writes it whole; IIS's config and owners files grow by parts
            assert content in (before.get(key), converged.get(key)), f"{where}: {key} is neither old nor new"
    assert temporary_files(fresh_estate) == [], where

    code, text = local.run("refresh", "--preview-only", "--expect-no-changes")
    assert code == 0, f"{where}: drift after the re-run:\n{text}"

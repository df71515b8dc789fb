from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.estate import EstateProject, SimulatedEstate, start_estate
from tests.support.hosts import Target

LOCAL_HOSTS = ["server", "zone-a", "zone-b"]


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory, target: Target) -> Iterator[SimulatedEstate]:
    """Three simulated hosts named as the local stack's, on 127.0.0.2-4 (free ports)."""
    if not target.simulated:
        pytest.skip("an estate of three hosts runs on simulated hosts; a real-host run covers one host")
    yield from start_estate(tmp_path_factory.mktemp("estate"), LOCAL_HOSTS)


@pytest.fixture
def local(tmp_path: Path, estate: SimulatedEstate) -> EstateProject:
    """A copy of the project whose `local` stack points at the simulated estate."""
    return EstateProject(tmp_path, estate)


@pytest.fixture
def fresh_estate(tmp_path: Path, target: Target) -> Iterator[SimulatedEstate]:
    """Three simulated hosts of the test's own, as the manual's prerequisites leave them (nothing deployed), on
    127.0.0.20-22."""
    if not target.simulated:
        pytest.skip("an estate of three hosts runs on simulated hosts; a real-host run covers one host")
    yield from start_estate(tmp_path / "estate", LOCAL_HOSTS, first_address=20)

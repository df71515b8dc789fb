from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.engine import EngineStack
from tests.support.hosts import Target, target_session


@pytest.fixture(scope="session")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """The host under test: the simulated host, or a real one named by USERCUBE_TEST_WINRM_*."""
    yield from target_session(tmp_path_factory.mktemp("hosts"))


@pytest.fixture
def simulated(target: Target) -> Target:
    """For tests that look inside the host; skipped (reported as such) against a real host."""
    if not target.simulated:
        pytest.skip("inspects the simulated host's internals; not applicable to a real host")
    return target


@pytest.fixture(scope="session")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pulumi-backend")


@pytest.fixture
def engine(tmp_path: Path, backend: Path) -> Callable[[Callable[[], None]], EngineStack]:
    def make(program: Callable[[], None]) -> EngineStack:
        return EngineStack(tmp_path / "project", backend, program)

    return make

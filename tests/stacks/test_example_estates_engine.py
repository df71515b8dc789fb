"""The staging and prod example stacks preview cleanly through the real CLI (SIMULATED hosts).

Their secrets are encrypted with the documented example passphrase; a preview of a new stack
declares every resource and contacts no host.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.estate import EXAMPLE_PASSPHRASE, EstateProject, SimulatedEstate, start_estate
from tests.support.hosts import Target

pytestmark = pytest.mark.engine

EXAMPLE_HOSTS = ["server", "paris", "london", "dmz", "sap"]


@pytest.fixture(scope="module")
def example_estate(tmp_path_factory: pytest.TempPathFactory, target: Target) -> Iterator[SimulatedEstate]:
    if not target.simulated:
        pytest.skip("the example estates run on simulated hosts")
    yield from start_estate(tmp_path_factory.mktemp("examples"), EXAMPLE_HOSTS, first_address=10)


@pytest.mark.parametrize(("stack", "agents"), [("staging", 3), ("prod", 5)])
def test_example_stack_previews_cleanly(
    tmp_path: Path, example_estate: SimulatedEstate, stack: str, agents: int
) -> None:
    project = EstateProject(tmp_path, example_estate, source=stack, stack=stack, passphrase=EXAMPLE_PASSPHRASE)
    marks = example_estate.marks()
    steps = project.preview_steps()
    components = [s for s in steps if s["urn"].split("::")[-2].rsplit("$", 1)[-1].endswith("Agent")]
    assert len(components) == agents, [s["urn"] for s in components]
    assert {s["op"] for s in steps} == {"create"}
    code, text = project.run("preview", "--diff")
    assert code == 0, text
    assert "error" not in text.lower()
    assert set(example_estate.commands_since(marks).values()) == {0}

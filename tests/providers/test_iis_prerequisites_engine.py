"""IisPrerequisites through the real Pulumi CLI against the host under test (simulated unless configured)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi
import pytest

from devhost import iis
from providers.iis_prerequisites import IisPrerequisites
from tests.providers.test_iis_app_pool_engine import BUNDLE, Engine, install_iis, secret_connection
from tests.support.hosts import Target

pytestmark = pytest.mark.engine

REMEDY = "repair the .NET Hosting Bundle (it was installed before IIS, so the AspNetCore module is missing)"


@pytest.fixture(autouse=True)
def _iis(target: Target) -> None:
    install_iis(target)


def check_program(target: Target, desired: dict[str, Any]) -> Callable[[], None]:
    def program() -> None:
        check = IisPrerequisites("prereq", connection=secret_connection(target), **desired)
        pulumi.export("iis_version", check.iis_version)
        pulumi.export("bundle", check.hosting_bundle_version)
        pulumi.export("module", check.aspnetcore_module_present)

    return program


def test_a_ready_host_passes_and_destroy_touches_nothing(target: Target, engine: Engine) -> None:
    stack = engine(check_program(target, {}))
    run = stack.up()
    assert run.ok, run.output
    outputs = stack.outputs()
    assert int(outputs["iis_version"].split(".")[0]) >= 10 and outputs["module"] is True
    if target.simulated:
        assert outputs["bundle"] == BUNDLE
    assert stack.up().summary == {"same": 2}
    mark = target.journal_mark() if target.simulated else 0
    assert stack.destroy().ok
    if target.simulated:
        assert target.operations_since(mark) == [], "destroying a check runs nothing on the host"


def test_missing_module_fails_with_the_manuals_remedy(simulated: Target, engine: Engine) -> None:
    assert simulated.state_dir is not None
    stack = engine(check_program(simulated, {"minimum_hosting_bundle": "8.0"}))
    assert stack.up().ok
    iis.remove_global_module(simulated.state_dir, iis.ASPNETCORE_MODULE)
    try:
        refreshed = stack.refresh()
        assert not refreshed.ok and "[PrerequisitesNotMet]" in refreshed.output and REMEDY in refreshed.output
        fresh = engine(check_program(simulated, {}))
        failed = fresh.up()
        assert not failed.ok and REMEDY in failed.output
    finally:
        iis.install_hosting_bundle(simulated.state_dir, BUNDLE)  # the repair
    assert stack.refresh(expect_no_changes=True).ok

    too_new = engine(check_program(simulated, {"minimum_hosting_bundle": "99.0"})).up()
    assert not too_new.ok and "minimum_hosting_bundle" in too_new.output and "older than 99.0" in too_new.output


def test_bad_minimum_is_refused_before_any_host_call(simulated: Target, engine: Engine) -> None:
    mark = simulated.journal_mark()
    run = engine(check_program(simulated, {"minimum_hosting_bundle": "eight"})).up()
    assert not run.ok and "minimum_hosting_bundle" in run.output and "not a version like 8.0" in run.output
    assert simulated.journal_since(mark) == []

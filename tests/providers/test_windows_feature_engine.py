"""WindowsFeature through the real Pulumi CLI against the host under test (simulated unless configured)."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from typing import Any

import pulumi
import pytest

from providers.scripting.runner import ScriptRef, run_script
from providers.transport.connection import HostConnection
from providers.windows_feature import WindowsFeature
from providers.windows_feature.model import WindowsFeatureModel
from tests.support.engine import EngineStack
from tests.support.hosts import Target

pytestmark = pytest.mark.engine

Engine = Callable[[Callable[[], None]], EngineStack]


def feature_program(target: Target, desired: dict[str, Any]) -> Callable[[], None]:
    def program() -> None:
        conn = {**target.connection, "password": pulumi.Output.secret(target.connection["password"])}
        features = WindowsFeature("features", connection=conn, **desired)
        pulumi.export("installed", features.installed)
        pulumi.export("restart_pending", features.restart_pending)

    return program


def host_features(target: Target, names: list[str]) -> dict[str, Any]:
    payload = {"names": names, "include_management_tools": False, "uninstall_on_delete": False}
    conn = HostConnection.model_validate(target.connection)
    return run_script(conn, ScriptRef("providers.windows_feature", "get"), payload, resource="t").state


def test_install_no_op_update_drift_and_uninstall_on_delete(target: Target, engine: Engine) -> None:
    before = set(host_features(target, ["Telnet-Client", "RSAT-ADDS-Tools"])["installed"])
    desired: dict[str, Any] = {"names": ["Telnet-Client"], "uninstall_on_delete": True}
    stack = engine(feature_program(target, desired))
    first = stack.up()
    assert first.ok and first.summary.get("create") == 2, first.output
    assert "Telnet-Client" in stack.outputs()["installed"]
    mark = target.journal_mark() if target.simulated else 0
    assert stack.up().summary == {"same": 2}
    if target.simulated:
        assert target.operations_since(mark) == []

    # A name added to the list: an update in place that installs it (and the parents it needs).
    desired["names"] = ["Telnet-Client", "RSAT-ADDS-Tools"]
    preview = stack.preview(diff=True)
    assert preview.ok and re.search(r"~ names\s*:", preview.stdout), preview.stdout
    assert stack.up().summary.get("update") == 1
    installed = stack.outputs()["installed"]
    assert "RSAT-ADDS-Tools" in installed and "Telnet-Client" in installed

    if target.simulated:
        from devhost import features

        assert target.state_dir is not None
        features.admin_remove_feature(target.state_dir, "Telnet-Client")
        drift = stack.refresh(expect_no_changes=True)
        assert not drift.ok and "features" in drift.output
        repaired = stack.up()
        assert repaired.ok and repaired.summary.get("update") == 1, repaired.output
        assert "telnet-client" in features.installed(target.state_dir)

    assert stack.destroy().ok
    after = set(host_features(target, ["Telnet-Client", "RSAT-ADDS-Tools"])["installed"])
    assert "Telnet-Client" not in after and "RSAT-ADDS-Tools" not in after
    # The parents Install-WindowsFeature added for RSAT-ADDS-Tools stay, as on Windows.
    assert before <= after | {"Telnet-Client", "RSAT-ADDS-Tools"}


def test_delete_keeps_features_by_default_and_restart_is_reported(simulated: Target, engine: Engine) -> None:
    from devhost import features

    assert simulated.state_dir is not None
    stack = engine(feature_program(simulated, {"names": ["Containers"]}))
    assert stack.up().ok
    assert stack.outputs()["restart_pending"] is True
    assert stack.destroy().ok
    assert "containers" in features.installed(simulated.state_dir), "delete does not uninstall unless asked"
    features.uninstall(simulated.state_dir, ["Containers"])
    features.admin_restart(simulated.state_dir)


def test_iis_with_application_initialization(simulated: Target, engine: Engine) -> None:
    if importlib.util.find_spec("devhost.iis") is None:
        pytest.skip("the IIS model devhost/iis.py is not there yet; installing Web-Server refuses without it")
    from devhost import features, scm

    assert simulated.state_dir is not None
    desired = {"names": ["Web-Server", "Web-AppInit"], "include_management_tools": True}
    stack = engine(feature_program(simulated, desired))
    run = stack.up()
    assert run.ok, run.output
    installed = stack.outputs()["installed"]
    assert {"Web-Server", "Web-WebServer", "Web-AppInit", "Web-Mgmt-Console"} <= set(installed)
    assert scm.get(simulated.state_dir, "W3SVC") is not None and scm.get(simulated.state_dir, "WAS") is not None
    assert stack.destroy().ok
    assert "web-server" in features.installed(simulated.state_dir)


def test_unknown_feature_gets_the_windows_error(target: Target, engine: Engine) -> None:
    run = engine(feature_program(target, {"names": ["Web-Server", "Web-Srever"]})).up()
    assert not run.ok
    assert "[FeatureNameNotValid]" in run.output and "property 'names'" in run.output
    assert "ArgumentNotValid: The role, role service, or feature name is not valid: 'Web-Srever'" in run.output


def test_client_os_is_refused_clearly(simulated: Target, engine: Engine) -> None:
    from devhost import features

    assert simulated.state_dir is not None
    features.admin_set_os(simulated.state_dir, "Microsoft Windows 11 Enterprise (SIMULATED)", 1)
    try:
        run = engine(feature_program(simulated, {"names": ["Telnet-Client"]})).up()
    finally:
        features.admin_set_os(simulated.state_dir, str(features.SERVER_OS["caption"]), 3)
    assert not run.ok
    assert "[ServerManagerUnavailable]" in run.output and "needs Windows Server" in run.output


BAD_INPUTS: list[tuple[str, dict[str, Any], str]] = [
    ("empty list", {"names": []}, "at least one feature name"),
    ("display name", {"names": ["Web Server (IIS)"]}, "not a feature name"),
    ("wildcard", {"names": ["Web-*"]}, "no wildcards"),
    ("listed twice", {"names": ["Web-Server", "web-server"]}, "listed twice"),
]


@pytest.mark.parametrize(("case", "desired", "fragment"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_refused_before_any_host_call(
    simulated: Target, engine: Engine, case: str, desired: dict[str, Any], fragment: str
) -> None:
    mark = simulated.journal_mark()
    run = engine(feature_program(simulated, desired)).preview()
    assert not run.ok, case
    assert "names" in run.output and fragment in run.output, run.output
    assert simulated.journal_since(mark) == []


def test_model_names_keep_their_spelling() -> None:
    spec = WindowsFeatureModel.model_validate(
        {"connection": {"host": "h", "username": "u", "password": "p"}, "names": ["web-server"]}
    )
    assert spec.actual_from({"installed_names": ["Web-Server"]}) == {"names": ["web-server"]}

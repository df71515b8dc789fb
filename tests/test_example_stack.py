"""The example stack (what `make up` deploys), run from a copy of the project against the host under test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pulumi import automation as auto

from stackrun.workspace import LOCAL_DEV_PASSPHRASE, PROJECT, ROOT, main_program, open_stack
from tests.providers.test_iis_app_pool_engine import install_iis
from tests.support.hosts import Target

pytestmark = pytest.mark.engine


def example_stack(tmp_path: Path, backend: Path, target: Target, **overrides: str) -> auto.Stack:
    project = tmp_path / "project"
    (project / "stacks").mkdir(parents=True)
    shutil.copy(ROOT / "Pulumi.yaml", project / "Pulumi.yaml")
    # Same secrets (encrypted with the dev-only passphrase), another stack name and host.
    shutil.copy(ROOT / "stacks" / "Pulumi.local.yaml", project / "stacks" / "Pulumi.example.yaml")
    stack = open_stack(
        "example",
        main_program,
        work_dir=project,
        extra_env={"PULUMI_BACKEND_URL": f"file://{backend}", "PULUMI_CONFIG_PASSPHRASE": LOCAL_DEV_PASSPHRASE},
    )
    values = {
        "windowsHost": target.connection["host"],
        "winrmPort": str(target.connection.get("port") or 0),
        "winrmUseHttps": str(target.connection["use_https"]).lower(),
        "winrmUser": target.connection["username"],
        **overrides,
    }
    for key, value in values.items():
        stack.set_config(f"{PROJECT}:{key}", auto.ConfigValue(value))
    stack.set_config(f"{PROJECT}:winrmPassword", auto.ConfigValue(target.connection["password"], secret=True))
    return stack


def test_example_stack_deploys_converges_and_destroys(
    simulated: Target, tmp_path: Path, backend: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    install_iis(simulated)
    stack = example_stack(tmp_path, backend, simulated, workingDirectory="C:\\UsercubeIacTests\\example")
    up = stack.up(color="never")
    assert up.summary.result == "succeeded"
    assert up.outputs["identityAccount"].value == "IIS APPPOOL\\IdentityManagerAgentContoso"
    again = stack.up(color="never")
    assert again.summary.resource_changes == {"same": 17}  # stack, component, 15 Windows resources
    stack.destroy(color="never")
    assert not simulated.windows_file("C:\\UsercubeIacTests\\example\\Runtime\\appsettings.agent.json").exists()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("agentIdentifier", "Local", "usercube-agents:agentIdentifier 'Local' is reserved"),
        ("hostName", "Agent01.Contoso.Example", "lower case"),
        ("applicationUri", "http://identitymanager", "usercube-agents:applicationUri"),
        ("workingDirectory", "C:/identitymanager", "backslashes"),
        ("identityKind", "User", "identityPassword"),
    ],
)
def test_bad_configuration_names_the_key_before_any_host_call(
    simulated: Target, tmp_path: Path, backend: Path, key: str, value: str, message: str
) -> None:
    stack = example_stack(tmp_path, backend, simulated, **{key: value})
    mark = simulated.journal_mark()
    with pytest.raises(auto.CommandError) as raised:
        stack.preview(color="never")
    assert message in str(raised.value)
    assert simulated.journal_since(mark) == []

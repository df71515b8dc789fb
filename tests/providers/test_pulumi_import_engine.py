"""`pulumi import` of one of our resources through the real CLI: refused with what to do, nothing changed.

`pulumi import` needs the project's language plugin, `pulumi-language-python`: the engine loads it for every
import (installPlugins in pkg/engine/deployment.go, pulumi v3.259.0), even though the program is never run, and
the Automation API has no inline-program path (`--client`) for import. The CLI that tools/ensure-pulumi.sh
builds has no language plugin (and the Go module proxy does not serve its module), so there this test is
skipped, and says so; tests/test_dynamic_server.py and tests/test_import_refusal.py drive the provider plugin's
answer without the CLI. With a `pulumi-language-python` v3.259.0 on PATH (beside a copy of
pulumi-language-python-exec) it runs; without the plugin's import check it fails on the SDK's bare
"Exception calling application: '__provider'".
"""

from __future__ import annotations

import json
import os
import shutil
import uuid

import pytest
from pulumi import automation as auto
from pulumi.automation._stack import ImportResource  # the import file's entry; not re-exported

from providers.framework.adoption import pulumi_import_refusal
from stackrun.workspace import pulumi_bin_dir
from tests.providers.test_directory_engine import Engine
from tests.support.hosts import Target

LANGUAGE_PLUGIN = "pulumi-language-python"


def language_plugin_found() -> bool:
    """Whether the CLI will find the Python language plugin (it looks in its own folder and on PATH)."""
    return shutil.which(LANGUAGE_PLUGIN, path=f"{pulumi_bin_dir()}{os.pathsep}{os.environ.get('PATH', '')}") is not None


@pytest.mark.engine
def test_pulumi_import_of_an_existing_folder_is_refused_and_changes_nothing(simulated: Target, engine: Engine) -> None:
    if not language_plugin_found():
        pytest.skip(f"`pulumi import` needs {LANGUAGE_PLUGIN}, which this Pulumi CLI has not (see the module's doc)")
    root = f"C:\\UsercubeIacTests\\import-{uuid.uuid4().hex[:8]}"
    simulated.windows_file(root).mkdir(parents=True)  # the folder an administrator made by hand
    stack = engine(lambda: None)  # `pulumi import` never runs the program
    mark = simulated.journal_mark()

    resource = ImportResource(type="pulumi-python:dynamic/windows:Directory", name="adopted", id=root)
    with pytest.raises(auto.CommandError) as failed:
        stack.stack.import_resources(resources=[resource], generate_code=False)

    output = str(failed.value)
    assert "code: 1" in output, output  # the CLI's exit status, as CommandError words it
    assert " ".join(pulumi_import_refusal("Directory", "adopted", root).split()) in " ".join(output.split()), output
    assert "'__provider'" not in output and "Exception calling application" not in output, output
    # The engine records the stack and its default provider of dynamic resources before any import step; the
    # folder is not taken into the state.
    deployment = json.loads(stack.export())["deployment"]
    recorded = {r["type"] for r in deployment.get("resources", [])}
    assert recorded <= {"pulumi:pulumi:Stack", "pulumi:providers:pulumi-python"}, deployment
    assert simulated.journal_since(mark) == [], "nothing was asked of the host"
    assert simulated.windows_file(root).is_dir()

"""Runs Pulumi programs written in a test under the real Pulumi engine (CLI v3.259.0)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulumi import automation as auto

from providers.dynamic_server import PLUGIN_DIR
from stackrun.workspace import open_stack

TEST_PASSPHRASE = "test-only-passphrase"
_counter = itertools.count()


def project_file(name: str = "usercube-test") -> str:
    """Pulumi.yaml of a throw-away test project: a Python program whose dynamic providers run under our
    plugin (the SDK's server with more workers), as the repository's own Pulumi.yaml declares it."""
    plugin = {"name": "pulumi-python", "path": str(PLUGIN_DIR)}
    return f"name: {name}\nruntime: python\nplugins:\n  providers:\n    - {json.dumps(plugin)}\n"


@dataclass
class Run:
    """What one CLI run printed, and whether it succeeded."""

    ok: bool
    stdout: str
    stderr: str
    summary: dict[str, int] = field(default_factory=dict)

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class EngineStack:
    """One stack of a throw-away project; ``program`` may be replaced between runs."""

    def __init__(self, project_dir: Path, backend: Path, program: Callable[[], None]) -> None:
        project_dir.mkdir(parents=True, exist_ok=True)
        self.backend = backend
        (project_dir / "Pulumi.yaml").write_text(project_file(), encoding="utf-8")
        self.name = f"t{next(_counter)}"
        self.stack = open_stack(
            self.name,
            lambda: self.program(),
            work_dir=project_dir,
            extra_env={"PULUMI_BACKEND_URL": f"file://{backend}", "PULUMI_CONFIG_PASSPHRASE": TEST_PASSPHRASE},
        )
        self.program = program

    def _run(self, verb: Callable[..., Any], **kwargs: Any) -> Run:
        out: list[str] = []
        err: list[str] = []
        try:
            result = verb(on_output=out.append, on_error=err.append, color="never", **kwargs)
        except auto.CommandError as error:
            return Run(False, "".join(out), "".join(err) + str(error))
        summary = {}
        if hasattr(result, "summary") and getattr(result.summary, "resource_changes", None):
            summary = dict(result.summary.resource_changes)
        elif hasattr(result, "change_summary"):
            summary = {str(k): v for k, v in result.change_summary.items()}
        return Run(True, "".join(out), "".join(err), summary)

    def up(self, **kwargs: Any) -> Run:
        return self._run(self.stack.up, **kwargs)

    def preview(self, **kwargs: Any) -> Run:
        return self._run(self.stack.preview, **kwargs)

    def refresh(self, **kwargs: Any) -> Run:
        return self._run(self.stack.refresh, **kwargs)

    def destroy(self, **kwargs: Any) -> Run:
        return self._run(self.stack.destroy, **kwargs)

    def export(self) -> str:
        """`pulumi stack export` as a user runs it (the Automation API's export adds --show-secrets)."""
        workspace = self.stack.workspace
        result = workspace.pulumi_command.run(
            ["stack", "export", "--stack", self.name], workspace.work_dir, workspace.env_vars
        )
        return result.stdout

    def raw_state(self) -> str:
        """Every file the backend holds for this stack (checkpoints, history, backups)."""
        return "\n".join(p.read_text(errors="replace") for p in self.backend.rglob("*") if p.is_file())

    def outputs(self) -> dict[str, Any]:
        return {k: v.value for k, v in self.stack.outputs().items()}

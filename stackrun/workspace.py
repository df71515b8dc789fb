"""The Pulumi workspace of this repository: CLI location, backend, secrets passphrase, stacks."""

from __future__ import annotations

import os
import runpy
import subprocess
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path

from pulumi import automation as auto

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "usercube-agents"
LOCAL_STACK = "local"
# Dev-only: encrypts the secrets of the `local` stack, which targets the simulated host
# on loopback. Real stacks must set PULUMI_CONFIG_PASSPHRASE (or use a cloud secrets provider).
LOCAL_DEV_PASSPHRASE = "usercube-local-dev-only"
DEFAULT_BACKEND = f"file://{ROOT / '.pulumi-state'}"


class WorkspaceError(Exception):
    pass


@cache
def pulumi_bin_dir() -> Path:
    """Directory of the pinned `pulumi` CLI and its Python plugin scripts (built once if needed)."""
    script = ROOT / "tools" / "ensure-pulumi.sh"
    done = subprocess.run([str(script)], check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise WorkspaceError(f"could not provide the Pulumi CLI:\n{done.stderr.strip()}")
    return Path(done.stdout.strip().splitlines()[-1])


def engine_env(stack: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for the CLI and the dynamic-provider plugin it starts."""
    env = {
        "PULUMI_BACKEND_URL": os.environ.get("PULUMI_BACKEND_URL", DEFAULT_BACKEND),
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        # The dynamic-provider plugin script runs `python -m pulumi.dynamic` from this venv.
        "PULUMI_RUNTIME_VIRTUALENV": os.environ.get("PULUMI_RUNTIME_VIRTUALENV", str(ROOT / ".venv")),
        "PULUMI_PYTHON_CMD": str(ROOT / ".venv" / "bin" / "python"),
    }
    passphrase = (extra or {}).get("PULUMI_CONFIG_PASSPHRASE") or os.environ.get("PULUMI_CONFIG_PASSPHRASE")
    if passphrase is None and stack == LOCAL_STACK:
        passphrase = LOCAL_DEV_PASSPHRASE
    if passphrase is None and "PULUMI_CONFIG_PASSPHRASE_FILE" not in os.environ:
        raise WorkspaceError(
            f"stack '{stack}' needs PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE) to decrypt its "
            "secrets; only the 'local' stack has a built-in dev-only passphrase"
        )
    if passphrase is not None:
        env["PULUMI_CONFIG_PASSPHRASE"] = passphrase
    if extra:
        env.update(extra)
    return env


def main_program() -> None:
    """The inline program: exactly the repository's __main__.py."""
    runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")


def open_stack(
    stack: str,
    program: Callable[[], None] = main_program,
    *,
    work_dir: Path = ROOT,
    extra_env: Mapping[str, str] | None = None,
    create: bool = True,
) -> auto.Stack:
    """Select (or create) ``stack`` of the project in ``work_dir`` with the real CLI."""
    bin_dir = pulumi_bin_dir()
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    env = engine_env(stack, extra_env)
    if env["PULUMI_BACKEND_URL"].startswith("file://"):
        Path(env["PULUMI_BACKEND_URL"].removeprefix("file://")).mkdir(parents=True, exist_ok=True)
    options = auto.LocalWorkspaceOptions(
        work_dir=str(work_dir),
        env_vars=env,
        secrets_provider="passphrase",
        pulumi_command=auto.PulumiCommand(root=None),
    )
    if create:
        return auto.create_or_select_stack(stack, project_name=PROJECT, program=program, opts=options)
    return auto.select_stack(stack, project_name=PROJECT, program=program, opts=options)

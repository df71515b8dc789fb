"""The Pulumi workspace of this repository: CLI location, backend, secrets passphrase, stacks."""

from __future__ import annotations

import os
import re
import runpy
import subprocess
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path

from pulumi import automation as auto
from pulumi.runtime import _grpc_settings
from semver import VersionInfo

from providers.dynamic_server import WorkersSettingError, worker_count

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "usercube-agents"
LOCAL_STACK = "local"
# Dev-only: encrypts the secrets of the `local` stack, which targets the simulated host
# on loopback. Real stacks must set PULUMI_CONFIG_PASSPHRASE (or use a cloud secrets provider).
LOCAL_DEV_PASSPHRASE = "usercube-local-dev-only"
DEFAULT_BACKEND = f"file://{ROOT / '.pulumi-state'}"
ENSURE_PULUMI = ROOT / "tools" / "ensure-pulumi.sh"


class WorkspaceError(Exception):
    pass


# An inline program runs in this process once per verb, and the SDK opens a new gRPC channel to each
# CLI's engine and resource monitor without ever closing the old one. gRPC shares one connection
# ("subchannel") among all channels of a process with the same address and options; the leaked
# channel's connection to a CLI that has exited sits in reconnect back-off (up to 120 s), so when a
# later CLI is given the same loopback port by the kernel, the new channel inherits that failure and
# the program's first call fails at once: "failed to connect to all addresses ... Connection refused"
# (seen in CI: 2 of 1082 tests; https://github.com/pulumiverse/pulumi-scaleway/issues/321 shows the
# same trace). A local subchannel pool per channel ends the sharing (grpc_types.h,
# GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL); tests/test_stackrun_grpc_channels.py shows both sides.
# The SDK reads this list each time it opens a channel.
_LOCAL_SUBCHANNEL_POOL = ("grpc.use_local_subchannel_pool", 1)
if _LOCAL_SUBCHANNEL_POOL not in _grpc_settings._GRPC_CHANNEL_OPTIONS:
    _grpc_settings._GRPC_CHANNEL_OPTIONS.append(_LOCAL_SUBCHANNEL_POOL)


@cache
def pulumi_bin_dir() -> Path:
    """Directory of the pinned `pulumi` CLI and its Python plugin scripts (built once if needed)."""
    done = subprocess.run([str(ENSURE_PULUMI)], check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise WorkspaceError(f"could not provide the Pulumi CLI:\n{done.stderr.strip()}")
    return Path(done.stdout.strip().splitlines()[-1])


def pinned_cli_version() -> str:
    """The version tools/ensure-pulumi.sh pins (``VERSION="v3.259.0"``), without the ``v``."""
    found = re.search(r'^VERSION="v([^"]+)"$', ENSURE_PULUMI.read_text(encoding="utf-8"), re.MULTILINE)
    if found is None:
        raise WorkspaceError(f'{ENSURE_PULUMI} does not pin a VERSION="v..." line')
    return found.group(1)


class LocatedCli(auto.PulumiCommand):
    """The CLI that tools/ensure-pulumi.sh located, with the version that script has just checked.

    ``auto.PulumiCommand`` runs ``pulumi version`` in its constructor to learn the version: after the
    script's own check, a second CLI start (about 0.2 s) on every verb for an answer already known.
    """

    def __init__(self, bin_dir: Path, version: str) -> None:  # no super().__init__(): that is the call saved
        self.command = str(bin_dir / "pulumi")
        self.version = VersionInfo.parse(version)


def file_backend_holds(backend_url: str, project: str, stack: str) -> bool:
    """Whether a local file backend already holds ``stack`` of ``project`` (False when it cannot tell).

    The layout is the CLI's project-scoped one (``.pulumi/stacks/<project>/<stack>.json``, or
    ``.json.gz`` when the backend gzips checkpoints): pkg/backend/diy in pulumi v3.259.0. A backend in
    another layout, a URL with options, or a qualified stack name answer False, and the caller asks the CLI.
    """
    if not backend_url.startswith("file://") or "?" in backend_url or "/" in stack:
        return False
    root = Path(backend_url.removeprefix("file://")).expanduser()
    if not root.is_absolute():
        return False
    stacks = root / ".pulumi" / "stacks" / project
    return any((stacks / f"{stack}{suffix}").is_file() for suffix in (".json", ".json.gz"))


class RepositoryWorkspace(auto.LocalWorkspace):
    """A LocalWorkspace whose ``select_stack`` costs no CLI start when the stack is known to exist.

    ``pulumi stack select`` checks that the stack exists and records it as the current one for later
    commands run without ``--stack``. Every command we run names its stack (``run_cli`` and the
    Automation API's ``Stack`` methods pass ``--stack``), so only the existence check matters, and a
    local file backend answers it with a file lookup. Anything else is asked of the CLI as before.
    """

    def select_stack(self, stack_name: str) -> None:
        backend = self.env_vars.get("PULUMI_BACKEND_URL", "")
        if file_backend_holds(backend, self.project_settings().name, stack_name):
            return
        super().select_stack(stack_name)


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
    try:  # the provider plugin would refuse it too, but only once the engine has started
        worker_count({**os.environ, **env})
    except WorkersSettingError as error:
        raise WorkspaceError(str(error)) from None
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
    # What auto.create_or_select_stack does for an inline program, with our workspace and CLI.
    has_project_file = any((work_dir / f"Pulumi{ext}").exists() for ext in (".yaml", ".yml", ".json"))
    default_project = auto.ProjectSettings(name=PROJECT, runtime="python", main=os.getcwd())
    workspace = RepositoryWorkspace(
        work_dir=str(work_dir),
        program=program,
        env_vars=env,
        secrets_provider="passphrase",
        project_settings=None if has_project_file else default_project,
        pulumi_command=LocatedCli(bin_dir, pinned_cli_version()),
    )
    if create:
        return auto.Stack.create_or_select(stack, workspace)
    return auto.Stack.select(stack, workspace)

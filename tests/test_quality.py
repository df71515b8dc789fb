"""Lint, format and strict type checks run as part of the suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)


def test_ruff_lint() -> None:
    result = run(str(BIN / "ruff"), "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = run(str(BIN / "ruff"), "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    result = run(str(BIN / "mypy"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_provider_starts_without_the_winrm_client() -> None:
    # A preview that reads no host never opens a session: the provider process (and the program) must not
    # pay for importing pywinrm, requests, pyspnego and jinja2 at start (issue 9: the fixed cost of a verb).
    import subprocess
    import sys

    probe = (
        "import sys, importlib, pkgutil, providers\n"
        "for m in pkgutil.iter_modules(providers.__path__):\n"
        "    if m.ispkg and m.name not in ('transport', 'scripting', 'framework'):\n"
        "        importlib.import_module(f'providers.{m.name}.provider')\n"
        "import components.environment\n"
        "print(sorted(n for n in ('winrm', 'jinja2', 'requests', 'spnego') if n in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

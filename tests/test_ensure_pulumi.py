"""tools/ensure-pulumi.sh asks a CLI its version once per build of the binary, not on every verb."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from stackrun.workspace import ENSURE_PULUMI, pinned_cli_version

FAKE_CLI = """#!/usr/bin/env bash
echo asked >>"{calls}"
echo v{version}
"""


def _fake_cli(bin_dir: Path, calls: Path, version: str) -> Path:
    """A `pulumi` on PATH that reports ``version`` and counts how often it is asked, with the
    Python plugin script beside it (what the script requires of a CLI on PATH)."""
    cli = bin_dir / "pulumi"
    cli.write_text(FAKE_CLI.format(calls=calls, version=version))
    cli.chmod(0o755)
    plugin = bin_dir / "pulumi-resource-pulumi-python"
    plugin.write_text("#!/bin/sh\n")
    plugin.chmod(0o755)
    return cli


def _ensure(bin_dir: Path, cache: Path) -> str:
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "USERCUBE_IAC_CACHE": str(cache)}
    done = subprocess.run([str(ENSURE_PULUMI)], env=env, capture_output=True, text=True, check=True, timeout=60)
    return done.stdout.strip()


def _asked(calls: Path) -> int:
    return len(calls.read_text().splitlines()) if calls.exists() else 0


def test_the_version_is_asked_once_per_build_of_the_cli(tmp_path: Path) -> None:
    bin_dir, cache, calls = tmp_path / "bin", tmp_path / "cache", tmp_path / "calls"
    bin_dir.mkdir()
    cli = _fake_cli(bin_dir, calls, pinned_cli_version())

    assert _ensure(bin_dir, cache) == str(bin_dir)
    assert _asked(calls) == 1
    assert _ensure(bin_dir, cache) == str(bin_dir)
    assert _asked(calls) == 1, "a CLI checked before was asked its version again"

    # Another build at the same path (an upgrade in place): asked again.
    cli.write_text(cli.read_text() + "# rebuilt\n")
    os.utime(cli, (1_700_000_000, 1_700_000_000))
    assert _ensure(bin_dir, cache) == str(bin_dir)
    assert _asked(calls) == 2


def test_a_cli_of_another_version_is_never_stamped(tmp_path: Path) -> None:
    """Its answer is not remembered: a wrong version must not become a right one from the stamp."""
    bin_dir, cache, calls = tmp_path / "bin", tmp_path / "cache", tmp_path / "calls"
    bin_dir.mkdir()
    _fake_cli(bin_dir, calls, "3.0.0")
    stamp = cache / f"verified-pulumi-v{pinned_cli_version()}"
    # The pinned build in the cache is missing, so the script would build it: stop it before Go
    # runs by leaving no `go` on PATH, and check only what it wrote.
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin", "USERCUBE_IAC_CACHE": str(cache)}
    done = subprocess.run([str(ENSURE_PULUMI)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "Go >= " in done.stderr
    assert _asked(calls) == 1
    assert not stamp.exists() or str(bin_dir) not in stamp.read_text()

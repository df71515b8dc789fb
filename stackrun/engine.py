"""Runs one `pulumi` CLI verb with an inline program, and nothing else.

The Automation API's ``Stack.up/preview/refresh/destroy`` do two jobs: they serve the inline
program's language runtime (what ``pulumi-language-python`` would do, and which is missing on our
build machines), and they wrap the CLI in a Python API. The wrapper is what we cannot use here:

- it hides the CLI's exit code behind ``CommandError``, so an ``--expect-no-changes`` failure
  (exit 7) looked like any other failure (exit 1);
- after the verb it runs more commands whose results we never used: ``stack output`` (up),
  ``stack history`` through ``info()`` (up, refresh, destroy), each a full CLI start, ~0.25 s;
- it reads the CLI's output line by line and strips it, which is not "the CLI's output".

So we keep only the first job, exactly as ``pulumi/automation/_stack.py`` does it: a gRPC
``LanguageRuntime`` server in this process running the program, whose address the CLI gets as
``--client=127.0.0.1:PORT`` (the engine then asks that server, instead of a language-host
plugin, to run the program), plus ``--exec-kind auto.inline`` for the update's metadata. The CLI
itself runs with the user's flags and this process's stdout/stderr, so its output (``--json``
included) reaches the caller byte for byte, and its exit code is returned as it is.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from concurrent import futures
from typing import IO

import grpc  # type: ignore[import-untyped]  # no stubs in the pinned dev dependencies
from pulumi import automation as auto

# Private modules of the pinned SDK (pulumi==3.259.0, the same version as the CLI): the very
# server and channel options the Automation API uses for inline programs.
from pulumi.automation._server import LanguageServer
from pulumi.runtime._grpc_settings import _GRPC_CHANNEL_OPTIONS
from pulumi.runtime.proto import language_pb2_grpc

# What the Automation API passes for an inline program (``ExecKind.INLINE``); recorded in the
# update's metadata, it does not change what the engine does.
EXEC_KIND_INLINE = "auto.inline"


def run_cli(
    stack: auto.Stack,
    args: Sequence[str],
    *,
    stdout: IO[str] | int | None = None,
    stderr: IO[str] | int | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> int:
    """Run ``pulumi <args> --stack NAME`` for ``stack``'s inline program; return the CLI's exit code.

    ``args`` is the verb and its flags, as a user would type them after ``pulumi``. ``stdout`` and
    ``stderr`` default to this process's own (inherited file descriptors, nothing re-encoded).
    """
    workspace = stack.workspace
    program = workspace.program
    if program is None:
        raise ValueError("run_cli needs a workspace with an inline program")

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=_GRPC_CHANNEL_OPTIONS)
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(LanguageServer(program), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        pulumi = workspace.pulumi_command.command
        command = [
            pulumi,
            # Nothing may wait for an answer: the CLI fails instead of prompting (as the
            # Automation API runs it), and its stdin is closed.
            "--non-interactive",
            *args,
            f"--client=127.0.0.1:{port}",
            "--exec-kind",
            EXEC_KIND_INLINE,
            "--stack",
            stack.name,
        ]
        env = {**os.environ, **workspace.env_vars, **(extra_env or {})}
        if workspace.pulumi_home is not None:
            env["PULUMI_HOME"] = workspace.pulumi_home
        # The engine finds its plugins (pulumi-resource-pulumi-python for dynamic providers) next to
        # the CLI binary or on PATH.
        env["PATH"] = os.pathsep.join([os.path.dirname(pulumi), env.get("PATH", "")])
        # Whatever this process printed so far comes before the CLI's output.
        sys.stdout.flush()
        sys.stderr.flush()
        process = subprocess.Popen(
            command, cwd=workspace.work_dir, env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr
        )
        try:
            returncode = process.wait()
        except KeyboardInterrupt:
            # Ctrl-C reached the CLI too (same process group): it cancels the operation cleanly
            # and exits with its own code (8, cancelled). Wait for that instead of leaving it behind.
            returncode = process.wait()
    finally:
        server.stop(0)
    # Killed by a signal: report it as a shell does (128 + signal number).
    return 128 - returncode if returncode < 0 else returncode

"""`python -m stackrun VERB [flags]`: the Pulumi CLI's verbs, flags and exit codes, with an inline program.

Exit codes are the CLI's own (pkg/cmd/pulumi/cmd/exit_codes.go in pulumi v3.259.0): 0 success,
1 error, 2 invalid flags or configuration, 7 `--expect-no-changes` found changes, 8 cancelled.
Workspace errors found before the CLI starts (a stack without a passphrase) exit 2 as well.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

from pulumi import automation as auto

from stackrun import failures, interrupted
from stackrun.engine import run_cli
from stackrun.workspace import LOCAL_STACK, PROJECT, ROOT, WorkspaceError, main_program, open_stack

# `pulumi ... --expect-no-changes` exits with ExitNoChanges when the operation has (or proposes)
# changes: pkg/v3@v3.259.0/cmd/pulumi/cmd/exit_codes.go, `ExitNoChanges = 7`, returned by
# ExitCodeFor for backenderr.NoChangesExpectedError (raised by operations/{up,preview,refresh}.go).
EXIT_CHANGES_FOUND = 7
# ExitConfigurationError in the same file: what the CLI returns for invalid flags or configuration.
EXIT_CONFIGURATION = 2
# Resource operations at once when neither --parallel nor PULUMI_PARALLEL says otherwise. The CLI's own
# default is 4 per CPU (defaultParallel in pkg/v3@v3.259.0/cmd/pulumi/operations/up.go: 8 on a two-CPU
# build machine), sized for CPU-bound providers; ours wait on remote hosts. The provider's worker
# threads (providers/dynamic_server.py, 64) and each host's max_parallel_operations bound it further.
DEFAULT_PARALLEL = 64

VERB_HELP = {
    "up": "create or update the stack's resources (never asks for confirmation)",
    "preview": "show what `up` would change",
    "refresh": "read the resources' real state; with --preview-only, only show the drift, never save it",
    "destroy": "delete the stack's resources (never asks for confirmation)",
    "report": "markdown report of a preview (--kind preview) or of the drift (--kind drift); exit 0, 7 or 1",
}


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--stack", "-s", default=LOCAL_STACK, help=f"stack name (default: {LOCAL_STACK})")
    common.add_argument("--diff", action="store_true", help="display the operation as a rich diff")
    common.add_argument("--json", "-j", action="store_true", help="the CLI's JSON output on stdout, unchanged")
    common.add_argument(
        "--target",
        "-t",
        action="append",
        default=[],
        metavar="URN",
        help="only this resource URN (repeatable; the CLI's URN wildcards apply)",
    )
    common.add_argument(
        "--parallel",
        "-p",
        type=int,
        metavar="N",
        help=f"at most N resource operations at once (default: PULUMI_PARALLEL, else {DEFAULT_PARALLEL})",
    )
    common.add_argument("--yes", "-y", action="store_true", help="accepted for CLI compatibility; nothing prompts")
    common.add_argument(
        "--color",
        choices=["always", "never", "raw", "auto"],
        help="colorize output (default: auto on a terminal, never otherwise)",
    )
    expect = argparse.ArgumentParser(add_help=False)
    expect.add_argument(
        "--expect-no-changes",
        action="store_true",
        help=f"exit {EXIT_CHANGES_FOUND} if anything changes (up, refresh: after applying; preview: if proposed)",
    )
    refresh_first = argparse.ArgumentParser(add_help=False)
    refresh_first.add_argument("--refresh", "-r", action="store_true", help="refresh the state before the operation")

    parser = argparse.ArgumentParser(prog="python -m stackrun", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="{up,preview,refresh,destroy,report}")
    fail_fast = argparse.ArgumentParser(add_help=False)
    fail_fast.add_argument(
        "--fail-fast",
        action="store_true",
        help="stop at the first failed resource (default with two or more hosts: go on with what does not depend "
        "on it, so one host down does not stop the others: the CLI's --continue-on-error)",
    )
    verbs.add_parser("up", parents=[common, expect, refresh_first, fail_fast], help=VERB_HELP["up"])
    verbs.add_parser("preview", parents=[common, expect, refresh_first], help=VERB_HELP["preview"])
    refresh = verbs.add_parser("refresh", parents=[common, expect], help=VERB_HELP["refresh"])
    refresh.add_argument(
        "--preview-only",
        action="store_true",
        help="only show what the refresh would change; the state is never written",
    )
    verbs.add_parser("destroy", parents=[common, fail_fast], help=VERB_HELP["destroy"])
    report = verbs.add_parser("report", help=VERB_HELP["report"])
    report.add_argument("--stack", "-s", default=LOCAL_STACK, help=f"stack name (default: {LOCAL_STACK})")
    report.add_argument("--kind", choices=["preview", "drift"], default="preview", help="what to report")
    report.add_argument("--output", "-o", metavar="FILE", help="write the markdown to FILE (default: stdout)")
    return parser


def cli_args(
    options: argparse.Namespace, *, terminal: bool, environ: Mapping[str, str] = os.environ, hosts: int = 1
) -> list[str]:
    """The `pulumi` command line (verb and flags, without --stack) for parsed ``options`` on a stack of ``hosts``
    hosts."""
    args = [options.verb]
    if options.verb in ("up", "destroy") or (options.verb == "refresh" and not options.preview_only):
        # Apply without asking, in one pass (as the Automation API runs them): `--yes` alone would
        # run a preview first (the program twice), and without it the non-interactive CLI refuses.
        args += ["--yes", "--skip-preview"]
    if getattr(options, "preview_only", False):
        # Never with --yes: the CLI rejects that combination. A preview-only refresh is a dry run:
        # no snapshot manager, no history, no backup (backend/diy/backend.go, Refresh and apply).
        args.append("--preview-only")
    if getattr(options, "refresh", False):
        args.append("--refresh")
    if getattr(options, "expect_no_changes", False):
        args.append("--expect-no-changes")
    if options.diff:
        args.append("--diff")
    if options.json:
        args.append("--json")
    for urn in options.target:
        args += ["--target", urn]
    parallel = options.parallel
    if parallel is None and not environ.get("PULUMI_PARALLEL"):  # the CLI reads that variable itself
        parallel = DEFAULT_PARALLEL
    if parallel is not None:
        args += ["--parallel", str(parallel)]
    if continues_on_error(options, environ=environ, hosts=hosts):
        args.append("--continue-on-error")
    args += ["--color", options.color or ("auto" if terminal else "never")]
    return args


def continues_on_error(options: argparse.Namespace, *, environ: Mapping[str, str], hosts: int) -> bool:
    """Whether `up`/`destroy` go on past a failed resource: by default on a stack of two or more hosts.

    Hosts are independent: one that is down (or restarting) must not leave the others half deployed. The
    engine still skips everything that depends on a failed resource (pkg/resource/deploy/deployment_executor.go,
    "Exclude the steps that depend on errored steps if ContinueOnError is set") and the verb still exits 1.
    With one host there is nothing independent to go on with. PULUMI_CONTINUE_ON_ERROR, which the CLI reads
    itself, and --fail-fast say otherwise.
    """
    if options.verb not in ("up", "destroy") or getattr(options, "fail_fast", False):
        return False
    return hosts >= 2 and not environ.get("PULUMI_CONTINUE_ON_ERROR")


def _is_terminal(stream: IO[str] | int | None) -> bool:
    if stream is None:
        stream = sys.stdout
    if isinstance(stream, int):
        return os.isatty(stream)
    return stream.isatty()


def main(
    argv: Sequence[str] | None = None,
    *,
    program: Callable[[], None] = main_program,
    work_dir: Path = ROOT,
    extra_env: Mapping[str, str] | None = None,
    stdout: IO[str] | int | None = None,
    stderr: IO[str] | int | None = None,
) -> int:
    """Run one verb; return the exit code. ``program``, ``work_dir``, ``extra_env`` default to this project."""
    try:
        options = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, or argparse's own exit 2 for invalid flags
        return exit_.code if isinstance(exit_.code, int) else EXIT_CONFIGURATION
    err = stderr if stderr is not None and not isinstance(stderr, int) else sys.stderr
    if options.verb == "report":
        from stackrun.report import run_report

        def runner(args: Sequence[str], out: IO[str], errors: IO[str]) -> int:
            return main(args, program=program, work_dir=work_dir, extra_env=extra_env, stdout=out, stderr=errors)

        console = stdout if stdout is not None and not isinstance(stdout, int) else None
        return run_report(options.stack, options.kind, options.output, runner, stdout=console)
    try:
        stack = open_stack(options.stack, program, work_dir=work_dir, extra_env=extra_env)
    except WorkspaceError as error:
        print(f"error: {error}", file=err, flush=True)
        return EXIT_CONFIGURATION
    except auto.CommandError as error:  # selecting or creating the stack failed; the CLI said why
        print(f"error: {error}", file=err, flush=True)
        return 1
    environ = {**os.environ, **(extra_env or {})}
    hosts = len(failures.host_names(failures.stack_file(work_dir, options.stack), PROJECT))
    args = cli_args(options, terminal=_is_terminal(stdout), environ=environ, hosts=hosts)
    code = clear_interrupted_run(stack, options, args, environ=environ, stdout=stdout, stderr=stderr)
    if code != 0:
        return code
    return run_and_name_failed_hosts(stack, args, stdout=stdout, stderr=stderr)


def run_and_name_failed_hosts(
    stack: auto.Stack, args: list[str], *, stdout: IO[str] | int | None, stderr: IO[str] | int | None
) -> int:
    """``run_cli``; when the verb failed, one line per failed host after the CLI's output (stackrun/failures.py)."""
    with tempfile.TemporaryDirectory(prefix="stackrun-") as folder:  # 0700: the event log is this user's only
        event_log = Path(folder) / "events.jsonl"
        # The CLI offers --event-log only with PULUMI_DEBUG_COMMANDS set, as the Automation API sets it for its
        # own event stream (pulumi/automation/_stack.py); it changes nothing else of the verb.
        code = run_cli(
            stack,
            [*args, "--event-log", str(event_log)],
            stdout=stdout,
            stderr=stderr,
            extra_env={"PULUMI_DEBUG_COMMANDS": "true"},
        )
        if code in (0, EXIT_CHANGES_FOUND):
            return code
        workspace = stack.workspace
        names = failures.host_names(failures.stack_file(Path(workspace.work_dir), stack.name), PROJECT)
        failed = failures.host_failures(event_log, names)
    err = stderr if stderr is not None and not isinstance(stderr, int) else sys.stderr
    for failure in failed:
        print(failure.line(), file=err, flush=True)
    return code


def clear_interrupted_run(
    stack: auto.Stack,
    options: argparse.Namespace,
    args: list[str],
    *,
    environ: Mapping[str, str],
    stdout: IO[str] | int | None,
    stderr: IO[str] | int | None,
) -> int:
    """Before a verb: remove the empty metadata files a killed run left in a local file backend; before a verb
    that writes the state, also its stale lock and its pending creates, as the CLI asks (stackrun/interrupted.py).
    Appends ``--clear-pending-creates`` to a refresh's ``args``; returns 0, or the exit code of the CLI step that
    failed."""
    root = interrupted.backend_root(stack.workspace.env_vars.get("PULUMI_BACKEND_URL", ""))
    if root is None:
        return 0
    err = stderr if stderr is not None and not isinstance(stderr, int) else sys.stderr
    workspace = stack.workspace
    project = workspace.project_settings().name
    for sidecar in interrupted.broken_sidecars(root, project, stack.name):
        print(
            f"stackrun: removing {sidecar}, the empty metadata file an interrupted run left in the backend "
            "(the CLI reads a missing one as no metadata, an empty one not at all)",
            file=err,
            flush=True,
        )
        sidecar.unlink(missing_ok=True)
    if options.verb not in ("up", "destroy", "refresh") or getattr(options, "preview_only", False):
        return 0  # a preview takes no lock and writes no state
    locks = interrupted.locks(root, project, stack.name)
    if locks and all(lock.stale for lock in locks):
        pids = ", ".join(str(lock.pid) for lock in locks)
        print(
            f"stackrun: stack '{stack.name}' is still locked by an interrupted run (pulumi pid {pids} on this "
            "machine, no longer running); removing the lock with `pulumi cancel --yes`",
            file=err,
            flush=True,
        )
        try:
            workspace.pulumi_command.run(
                ["cancel", "--yes", "--stack", stack.name], workspace.work_dir, workspace.env_vars
            )
        except auto.CommandError as error:
            print(f"error: `pulumi cancel` failed: {error}", file=err, flush=True)
            return 1
    pending = interrupted.pending_creates(root, project, stack.name)
    if not pending:
        return 0
    names = ", ".join(urn.rsplit("::", 1)[-1] for urn in pending)
    print(
        f"stackrun: the last run of stack '{stack.name}' was interrupted while creating {len(pending)} "
        f"resource(s) ({names}); clearing them from the state (`pulumi refresh --clear-pending-creates`): "
        "this project's creates adopt what the interrupted run made, so the next up creates them again",
        file=err,
        flush=True,
    )
    if options.verb == "refresh":
        args.append("--clear-pending-creates")
        return 0
    clearing = copy.copy(options)
    clearing.verb, clearing.preview_only, clearing.expect_no_changes = "refresh", False, False
    clearing.diff, clearing.json, clearing.target = False, False, []
    refresh = [*cli_args(clearing, terminal=_is_terminal(stdout), environ=environ), "--clear-pending-creates"]
    # With --json, stdout is the verb's JSON document alone: the clearing refresh prints to stderr.
    return run_cli(stack, refresh, stdout=stderr if options.json else stdout, stderr=stderr)

"""`python -m stackrun` speaks like the Pulumi CLI: its flags, its output, its exit codes (real CLI, simulated host)."""

from __future__ import annotations

import json
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pytest

from providers.settings_file import SettingsFile
from stackrun.cli import DEFAULT_PARALLEL, EXIT_CHANGES_FOUND, build_parser, cli_args, main
from stackrun.workspace import file_backend_holds, pulumi_bin_dir
from tests.support.engine import TEST_PASSPHRASE, project_file
from tests.support.hosts import Target

pytestmark = pytest.mark.engine


@dataclass
class Exit:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class CliProject:
    """A throw-away project with two SettingsFile resources, driven through ``stackrun.cli.main``."""

    def __init__(self, root: Path, target: Target) -> None:
        self.root = root
        self.project = root / "project"
        self.project.mkdir(parents=True)
        (self.project / "Pulumi.yaml").write_text(project_file(), encoding="utf-8")
        # A backend of its own: every byte in it belongs to this test's stack.
        self.backend = root / "backend"
        self.stack = f"cli{uuid.uuid4().hex[:8]}"
        folder = f"C:\\UsercubeIacTests\\{uuid.uuid4().hex[:8]}"
        self.paths = {"a": f"{folder}\\a.json", "b": f"{folder}\\b.json"}
        self.content = {"a": '{"A": 1}\n', "b": '{"B": 1}\n'}
        self.target = target
        self._runs = 0

    def program(self) -> None:
        connection = {**self.target.connection, "password": pulumi.Output.secret(self.target.connection["password"])}
        for key in ("a", "b"):
            SettingsFile(f"settings-{key}", connection=connection, path=self.paths[key], content=self.content[key])

    def run(self, *argv: str) -> Exit:
        self._runs += 1
        out_path, err_path = self.root / f"out{self._runs}.txt", self.root / f"err{self._runs}.txt"
        with out_path.open("w", encoding="utf-8") as out, err_path.open("w", encoding="utf-8") as err:
            code = main(
                [*argv, "--stack", self.stack],
                program=self.program,
                work_dir=self.project,
                extra_env={"PULUMI_BACKEND_URL": f"file://{self.backend}", "PULUMI_CONFIG_PASSPHRASE": TEST_PASSPHRASE},
                stdout=out,
                stderr=err,
            )
        return Exit(code, out_path.read_text(encoding="utf-8"), err_path.read_text(encoding="utf-8"))

    def backend_bytes(self) -> dict[str, bytes]:
        """Every file of the backend (checkpoint, history, backups, locks), by path."""
        return {str(p.relative_to(self.backend)): p.read_bytes() for p in self.backend.rglob("*") if p.is_file()}

    def checkpoint(self) -> bytes:
        return (self.backend / ".pulumi" / "stacks" / "usercube-test" / f"{self.stack}.json").read_bytes()


@pytest.fixture
def project(tmp_path: Path, simulated: Target) -> CliProject:
    return CliProject(tmp_path, simulated)


def drift_lines(output: str) -> list[str]:
    """The lines of a refresh display that name a resource or a property (no timings)."""
    return [line.strip() for line in output.splitlines() if "settings-" in line or "content" in line]


def test_drift_check_exits_7_names_the_drift_and_never_writes_state(project: CliProject, simulated: Target) -> None:
    assert project.run("up").code == 0
    clean = project.run("refresh", "--preview-only", "--expect-no-changes")
    assert clean.code == 0, clean.output

    simulated.windows_file(project.paths["a"]).write_text('{"A": "edited by hand"}\n', encoding="utf-8")
    before = project.backend_bytes()
    checkpoint = project.checkpoint()
    first = project.run("refresh", "--preview-only", "--expect-no-changes", "--diff")
    second = project.run("refresh", "--preview-only", "--expect-no-changes", "--diff")
    for drift in (first, second):
        assert drift.code == EXIT_CHANGES_FOUND == 7, drift.output
        assert "settings-a" in drift.stdout, drift.stdout
        assert "content" in drift.stdout, drift.stdout  # the drifted property
        assert "edited by hand" in drift.stdout, drift.stdout
        assert "settings-b" not in " ".join(line for line in drift_lines(drift.stdout) if "~" in line)
        assert "no changes were expected for refresh" in drift.stderr, drift.stderr
    assert drift_lines(first.stdout) == drift_lines(second.stdout), "the same drift, both times"
    assert project.checkpoint() == checkpoint, "a preview-only refresh must not write the checkpoint"
    assert project.backend_bytes() == before, "...nor anything else in the backend"

    # A plain `up` compares the program with the state, which never learnt of the drift: the
    # file stays edited and the check keeps reporting it (the drift is not forgotten).
    assert project.run("up").code == 0
    assert project.run("refresh", "--preview-only", "--expect-no-changes").code == EXIT_CHANGES_FOUND
    # `up --refresh` reads the host first, then puts the file back.
    repaired = project.run("up", "--refresh")
    assert repaired.code == 0, repaired.output
    assert simulated.windows_file(project.paths["a"]).read_text(encoding="utf-8") == '{"A": 1}\n'
    after = project.run("refresh", "--preview-only", "--expect-no-changes")
    assert after.code == 0, after.output


def test_refresh_expect_no_changes_applies_then_exits_7_as_the_cli_does(project: CliProject, simulated: Target) -> None:
    assert project.run("up").code == 0
    simulated.windows_file(project.paths["b"]).write_text("{}\n", encoding="utf-8")
    checkpoint = project.checkpoint()
    drift = project.run("refresh", "--expect-no-changes")
    assert drift.code == EXIT_CHANGES_FOUND, drift.output
    assert project.checkpoint() != checkpoint, "without --preview-only the CLI saves the refreshed state"


def test_preview_expect_no_changes_exits_7_on_a_change_and_0_without(project: CliProject) -> None:
    assert project.run("up").code == 0
    same = project.run("preview", "--expect-no-changes")
    assert same.code == 0, same.output

    project.content["b"] = '{"B": 2}\n'
    changed = project.run("preview", "--expect-no-changes", "--diff")
    assert changed.code == EXIT_CHANGES_FOUND, changed.output
    assert "settings-b" in changed.stdout and "~ B: 1 => 2" in changed.stdout, changed.stdout
    assert "no changes were expected for preview" in changed.stderr


def test_preview_json_is_the_cli_json_document(project: CliProject) -> None:
    assert project.run("up").code == 0
    project.content["a"] = '{"A": 2}\n'
    preview = project.run("preview", "--json")
    assert preview.code == 0, preview.output
    document = json.loads(preview.stdout)  # stdout is nothing but the CLI's JSON
    steps = {step["urn"].rsplit("::", 1)[-1]: step["op"] for step in document["steps"]}
    assert steps["settings-a"] == "update"
    assert "settings-b" not in steps  # unchanged: no step unless --show-sames
    assert document["changeSummary"] == {"same": 2, "update": 1}


def test_target_limits_an_up_to_one_of_two_resources(project: CliProject, simulated: Target) -> None:
    planned = project.run("preview", "--json")
    assert planned.code == 0, planned.output
    urns = {step["urn"].rsplit("::", 1)[-1]: step["urn"] for step in json.loads(planned.stdout)["steps"]}

    up = project.run("up", "--target", urns["settings-a"], "--parallel", "1")
    assert up.code == 0, up.output
    assert simulated.windows_file(project.paths["a"]).read_text(encoding="utf-8") == '{"A": 1}\n'
    assert not simulated.windows_file(project.paths["b"]).exists()
    remaining = project.run("preview", "--json")
    assert json.loads(remaining.stdout)["changeSummary"] == {"create": 1, "same": 2}


def test_no_cli_call_after_the_verb(project: CliProject, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every process started from this process is recorded; the verb must be the last `pulumi` one."""
    started: list[list[str]] = []
    real_popen = subprocess.Popen

    class RecordingPopen(real_popen):  # type: ignore[valid-type,misc]
        def __init__(self, args: Any, *rest: Any, **kwargs: Any) -> None:
            started.append([str(a) for a in args] if isinstance(args, list | tuple) else [str(args)])
            super().__init__(args, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", RecordingPopen)
    for verb in (["up"], ["preview"], ["refresh", "--preview-only"], ["refresh"], ["destroy"]):
        started.clear()
        pulumi_bin_dir.cache_clear()  # as in a new process: the CLI is located again
        assert project.run(*verb).code == 0, verb
        calls = [argv[1:] for argv in started if Path(argv[0]).name == "pulumi"]
        assert calls, "the CLI must have been run"
        assert calls[-1][:2] == ["--non-interactive", verb[0]], calls
        assert sum(verb[0] in call for call in calls) == 1, calls
        for call in calls:
            assert "output" not in call and "history" not in call and "export" not in call, calls
        # Located once: tools/ensure-pulumi.sh checks the version; nobody asks `pulumi version` again.
        assert [Path(argv[0]).name for argv in started].count("ensure-pulumi.sh") == 1, started
        assert all(call != ["version"] for call in calls), calls
        if verb != ["up"]:  # the stack exists: its file in the backend says so, no `stack select`
            assert len(calls) == 1, calls
        else:  # a new stack: the CLI is asked (select fails), then creates it
            assert [call[1:3] for call in calls[:-1]] == [["stack", "select"], ["stack", "init"]], calls


def test_file_backend_lookup_answers_only_what_it_knows(tmp_path: Path) -> None:
    stacks = tmp_path / ".pulumi" / "stacks" / "proj"
    stacks.mkdir(parents=True)
    (stacks / "dev.json").write_text("{}", encoding="utf-8")
    (stacks / "zipped.json.gz").write_bytes(b"")
    url = f"file://{tmp_path}"
    assert file_backend_holds(url, "proj", "dev")
    assert file_backend_holds(url, "proj", "zipped")
    assert not file_backend_holds(url, "proj", "prod")  # unknown here: the CLI is asked (and creates it)
    assert not file_backend_holds(url, "other", "dev")
    assert not file_backend_holds(f"{url}?no_tmp_dir=true", "proj", "dev")
    assert not file_backend_holds("file://relative/state", "proj", "dev")
    assert not file_backend_holds(url, "proj", "organization/proj/dev")
    assert not file_backend_holds("s3://bucket", "proj", "dev")


def test_parallel_defaults_to_many_operations_unless_given() -> None:
    """The CLI's own default is 4 per CPU (8 here); stackrun asks for more unless told otherwise."""
    parse = build_parser().parse_args
    assert DEFAULT_PARALLEL >= 16
    default = cli_args(parse(["refresh"]), terminal=False, environ={})
    assert default[default.index("--parallel") + 1] == str(DEFAULT_PARALLEL)
    given = cli_args(parse(["up", "-p", "3"]), terminal=False, environ={"PULUMI_PARALLEL": "5"})
    assert given[given.index("--parallel") + 1] == "3" and given.count("--parallel") == 1
    # PULUMI_PARALLEL is read by the CLI itself (env.Parallel); stackrun then passes no flag.
    assert "--parallel" not in cli_args(parse(["preview"]), terminal=False, environ={"PULUMI_PARALLEL": "5"})


def test_a_stack_without_passphrase_exits_2_before_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)
    assert main(["preview", "--stack", "prod"], work_dir=tmp_path) == 2
    assert "stack 'prod' needs PULUMI_CONFIG_PASSPHRASE" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["up"], ["up", "--yes", "--skip-preview", "--color", "never"]),
        (["up", "-y", "--refresh", "-p", "2"], ["up", "--yes", "--skip-preview", "--refresh", "--parallel", "2"]),
        (["preview", "--diff", "-j"], ["preview", "--diff", "--json"]),
        (["refresh"], ["refresh", "--yes", "--skip-preview"]),
        (["refresh", "--preview-only", "--expect-no-changes"], ["refresh", "--preview-only", "--expect-no-changes"]),
        (["destroy", "-t", "urn:a", "-t", "urn:b"], ["destroy", "--yes", "--skip-preview", "--target", "urn:a"]),
    ],
)
def test_flags_translate_to_the_cli_without_prompts(argv: list[str], expected: list[str]) -> None:
    args = cli_args(build_parser().parse_args(argv), terminal=False)
    position = 0
    for flag in expected:  # in this order, possibly with others between
        position = args.index(flag, position) + 1
    if "--preview-only" in args:
        assert "--yes" not in args and "--skip-preview" not in args  # the CLI refuses them together
    assert args[-2:] == ["--color", "never"]


@pytest.mark.parametrize(
    "argv",
    [["preview", "--preview-only"], ["destroy", "--expect-no-changes"], ["refresh", "--refresh"], ["apply"]],
)
def test_flags_the_cli_does_not_have_for_a_verb_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "error:" in capsys.readouterr().err

"""`python -m stackrun report`: the markdown rendered from the CLI's `--json` steps (no engine here).

The documents below have the shape `preview --json` prints in pulumi v3.259.0 for this project's
dynamic providers: `oldState`/`newState` with `inputs`, no `detailedDiff`, secrets as `[secret]`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import pytest

from stackrun import report
from stackrun.cli import build_parser

STACK_URN = "urn:pulumi:prod::usercube-agents::pulumi:pulumi:Stack::usercube-agents-prod"


def urn(resource_type: str, name: str, parent: str = "usercube:agents:ProductionAgent") -> str:
    return f"urn:pulumi:prod::usercube-agents::{parent}$pulumi-python:dynamic/windows:{resource_type}::{name}"


def state(name: str, inputs: dict[str, Any], parent_name: str) -> dict[str, Any]:
    return {
        "inputs": {"__provider": "[secret]", **inputs},
        "parent": f"urn:pulumi:prod::usercube-agents::usercube:agents:ProductionAgent::{parent_name}",
    }


def step(op: str, resource_type: str, name: str, agent: str, old: Any = None, new: Any = None, **extra: Any) -> Any:
    out: dict[str, Any] = {"op": op, "urn": urn(resource_type, name), **extra}
    if old is not None:
        out["oldState"] = state(name, old, agent)
    if new is not None:
        out["newState"] = state(name, new, agent)
    return out


CONNECTION = {"host": "paris.contoso.com", "password": "[secret]", "port": 5986}


def document(*steps: Any) -> dict[str, Any]:
    return {"steps": [{"op": "same", "urn": STACK_URN}, *steps], "changeSummary": {}, "duration": 123456}


def test_an_update_shows_each_changed_property_recorded_then_desired() -> None:
    doc = document(
        step(
            "update",
            "IisAppPool",
            "paris-pool",
            "paris",
            old={"connection": CONNECTION, "idle_timeout_minutes": 20, "name": "Pool"},
            new={"connection": CONNECTION, "idle_timeout_minutes": 0, "name": "Pool"},
        )
    )
    parsed = report.from_document("prod", "preview", doc)
    assert parsed.exit_code == report.EXIT_CHANGES
    (resource,) = parsed.resources
    assert resource.agent == "paris" and resource.type == "windows:IisAppPool"
    assert resource.changes == [report.Change("idle_timeout_minutes", 20, 0)]
    text = report.render(parsed)
    assert "| `idle_timeout_minutes` | <code>20</code> | <code>0</code> |" in text
    assert "| property | recorded | desired |" in text
    assert "__provider" not in text and "duration" not in text and "123456" not in text


def test_a_secret_is_never_shown_and_is_marked_changed_when_it_is_the_only_possible_change() -> None:
    rotated = step(
        "update", "Directory", "paris-dir", "paris", old={"connection": CONNECTION}, new={"connection": CONNECTION}
    )
    several = step(
        "update",
        "SettingsFile",
        "paris-settings",
        "paris",
        old={"connection": CONNECTION, "json_content": {"Job": "[secret]"}},
        new={"connection": CONNECTION, "json_content": {"Job": "[secret]"}},
    )
    text = report.render(report.from_document("prod", "preview", document(rotated, several)))
    assert "| `connection.password` | <code>[secret]</code> | <code>[secret]</code> (changed) |" in text
    assert "| `json_content.Job` | <code>[secret]</code> | <code>[secret]</code> (one of these changed) |" in text


def test_a_secret_object_with_the_signature_is_a_secret_too() -> None:
    signed = {report.SECRET_SIG_KEY: report.SECRET_SIG, "value": "plain-text-should-never-print"}
    doc = document(step("create", "Certificate", "paris-cert", "paris", new={"pfx": signed, "store": "My"}))
    text = report.render(report.from_document("prod", "preview", doc))
    assert "plain-text-should-never-print" not in text
    assert "| `pfx` | — | <code>[secret]</code> |" in text


def test_unknown_values_are_known_after_apply() -> None:
    doc = document(
        step(
            "update",
            "IisSite",
            "paris-site",
            "paris",
            old={"thumbprint": "AA11"},
            new={"thumbprint": report.UNKNOWN},
        )
    )
    text = report.render(report.from_document("prod", "preview", doc))
    assert '| `thumbprint` | <code>"AA11"</code> | <i>known after apply</i> |' in text
    assert report.UNKNOWN not in text


def test_a_replacement_says_why_and_resources_are_sorted_by_agent() -> None:
    doc = document(
        step("create", "Directory", "zurich-dir", "zurich", new={"path": "C:\\x"}),
        step(
            "replace",
            "Certificate",
            "paris-cert",
            "paris",
            old={"pfx": "[secret]", "connection": CONNECTION},
            new={"pfx": "[secret]", "connection": {**CONNECTION, "host": "paris2.contoso.com"}},
            replaceReasons=["connection"],
        ),
        step("delete", "Directory", "london-dir", "london", old={"path": "C:\\y"}),
    )
    parsed = report.from_document("prod", "preview", doc)
    assert [(r.agent, r.op) for r in parsed.resources] == [
        ("london", "delete"),
        ("paris", "replace"),
        ("zurich", "create"),
    ]
    text = report.render(parsed)
    assert "Replaced because of: `connection`." in text
    assert '| `connection.host` | <code>"paris.contoso.com"</code> | <code>"paris2.contoso.com"</code> |' in text
    assert "**3 resources change** (1 to create, 1 to replace, 1 to delete)." in text
    assert text.index("#### `london`") < text.index("#### `paris`") < text.index("#### `zurich`")


def test_no_change_and_the_stack_itself_are_not_reported() -> None:
    doc = {"steps": [{"op": "create", "urn": STACK_URN}, {"op": "same", "urn": urn("IisSite", "s")}]}
    parsed = report.from_document("prod", "preview", doc)
    assert parsed.exit_code == report.EXIT_NO_CHANGES
    assert report.render(parsed) == "### Preview of stack `prod`\n\nNo changes.\n"
    drift = report.from_document("prod", "drift", {"steps": [{"op": "refresh", "urn": urn("IisSite", "s")}]})
    assert report.render(drift) == "### Drift of stack `prod`\n\nNo drift: every resource matches the hosts.\n"


def test_the_report_stays_under_githubs_comment_limit() -> None:
    big = "x" * 150
    steps = [
        step("create", "SettingsFile", f"agent{i:03}-file", f"agent{i:03}", new={f"key{k}": big for k in range(40)})
        for i in range(200)
    ]
    text = report.render(report.from_document("prod", "preview", document(*steps)))
    assert len(text) < report.GITHUB_LIMIT - 1_000
    shown = text.count("<details>")
    assert 0 < shown < 200
    assert text.rstrip().endswith(f"… and {200 - shown} more resources (see the run log).")


def runner_printing(stdout: str, stderr: str, code: int) -> report.Runner:
    def run(args: Sequence[str], out: IO[str], err: IO[str]) -> int:
        assert "--json" in args
        out.write(stdout)
        err.write(stderr)
        return code

    return run


def test_a_failed_preview_carries_the_error_without_the_passphrase(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "correct-horse-battery")
    failed = {
        "steps": [],
        "diagnostics": [
            {
                "severity": "error",
                "message": "\x1b[31minvalid stack configuration: hostNme\x1b[0m correct-horse-battery",
            }
        ],
    }
    output = tmp_path / "report.md"
    code = report.run_report("prod", "preview", str(output), runner_printing(json.dumps(failed), "", 1))
    assert code == report.EXIT_FAILED
    text = output.read_text()
    assert "**The preview failed.** Nothing was changed." in text
    assert "invalid stack configuration: hostNme [redacted]" in text
    assert "correct-horse-battery" not in text and "\x1b" not in text
    # No JSON at all (the CLI died before): its stderr is the error.
    out = io.StringIO()
    code = report.run_report("prod", "drift", None, runner_printing("", "error: no such stack", 255), stdout=out)
    assert code == report.EXIT_FAILED
    assert "**The drift check failed.**" in out.getvalue() and "error: no such stack" in out.getvalue()


def test_the_json_is_found_after_other_output_and_drift_runs_preview_refresh() -> None:
    seen: list[list[str]] = []

    def run(args: Sequence[str], out: IO[str], err: IO[str]) -> int:
        seen.append(list(args))
        out.write("warning: something first\n" + json.dumps(document()))
        return 0

    out = io.StringIO()
    assert report.run_report("prod", "drift", "-", run, stdout=out) == report.EXIT_NO_CHANGES
    assert seen == [["preview", "--refresh", "--json", "--stack", "prod"]]
    assert report.cli_args("preview", "prod") == ["preview", "--json", "--stack", "prod"]


def test_the_report_verb_parses() -> None:
    options = build_parser().parse_args(["report", "--stack", "prod", "--kind", "drift", "--output", "r.md"])
    assert (options.verb, options.stack, options.kind, options.output) == ("report", "prod", "drift", "r.md")

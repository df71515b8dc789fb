"""`python -m stackrun report`: one markdown report for a pull request (preview) or the nightly drift check.

What the CLI gives (pulumi v3.259.0, ``--json`` without ``--show-secrets``):

- ``preview --json`` prints one document whose ``steps`` carry ``oldState`` (the recorded state)
  and ``newState`` (what the program declares). Python dynamic providers return no
  ``detailedDiff``, so the changed properties are computed here from the two states' ``inputs``.
- ``refresh --preview-only --json`` prints a ``refresh`` step per resource whose ``oldState`` and
  ``newState`` are both the *recorded* state, and a ``changeSummary`` that counts the drift
  without naming it: nothing to render. The drift report therefore runs ``preview --refresh
  --json``: the state is read from the hosts first (never saved: it is a preview), then each
  drifted resource is an ``update``/``replace`` step from the actual state (``oldState``) to the
  desired one (``newState``), exactly what ``up --refresh`` would repair. After ``up`` of the
  same commit nothing else can differ; a commit not yet deployed shows in it too.
- Secrets are the string ``[secret]`` (or an object with the secret signature): both sides are
  masked, so a changed secret is visible only as an update whose visible inputs are all equal.
  When one secret is the only masked input, that secret is the change: ``[secret] (changed)``;
  with several, each is ``[secret] (one of these changed)``. Otherwise a secret shows as
  ``[secret]``, changed or not: the plaintext never reaches this process.
- Unknown values (computed during the update) are the string
  ``04da6b54-80e4-46f7-96ec-b56ff0331ba9``: shown as "known after apply".

Exit codes: 0 no changes, 7 changes (as ``--expect-no-changes``), 1 the preview failed (the report
then carries the error). The report holds no timestamp or duration: two runs on the same state
give the same text.
"""

from __future__ import annotations

import html
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
MASKED = "[secret]"
# GitHub refuses an issue or comment body longer than 65,536 characters; keep room for the
# scripts' hidden marker and footer.
GITHUB_LIMIT = 65_536
BUDGET = GITHUB_LIMIT - 2_048
VALUE_WIDTH = 160
EXIT_NO_CHANGES = 0
EXIT_CHANGES = 7
EXIT_FAILED = 1
# Inputs of the engine's own, not of the resource: the serialized dynamic provider.
INTERNAL_KEYS = frozenset({"__provider"})
CHANGE_OPS = ("create", "update", "replace", "delete")
OP_ORDER = {"replace": 0, "create-replacement": 0, "update": 1, "create": 2, "delete": 3, "delete-replaced": 3}
# Environment variables whose values must never appear in a report, even inside an error message.
SENSITIVE_ENV = (
    "PULUMI_CONFIG_PASSPHRASE",
    "PULUMI_ACCESS_TOKEN",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "SYSTEM_ACCESSTOKEN",
    "AZURE_CLIENT_SECRET",
    "AWS_SECRET_ACCESS_KEY",
)
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

Runner = Callable[[Sequence[str], IO[str], IO[str]], int]


class _Secret:
    def __repr__(self) -> str:
        return MASKED


SECRET = _Secret()


@dataclass(frozen=True)
class Change:
    path: str
    old: Any
    new: Any


@dataclass
class ResourceChange:
    op: str
    urn: str
    agent: str
    name: str
    type: str
    changes: list[Change] = field(default_factory=list)
    replace_reasons: list[str] = field(default_factory=list)


@dataclass
class Report:
    stack: str
    kind: str
    resources: list[ResourceChange]
    counts: dict[str, int]
    error: str | None = None

    @property
    def exit_code(self) -> int:
        if self.error is not None:
            return EXIT_FAILED
        return EXIT_CHANGES if self.resources else EXIT_NO_CHANGES


# -- the CLI's JSON ----------------------------------------------------------------------------


def parse_document(text: str) -> dict[str, Any] | None:
    """The CLI's JSON document in ``text`` (anything printed before it is skipped), or None."""
    for match in re.finditer(r"^\{", text, flags=re.MULTILINE):
        try:
            document, _ = json.JSONDecoder().raw_decode(text[match.start() :])
        except ValueError:
            continue
        if isinstance(document, dict):
            return document
    return None


def _is_secret(value: Any) -> bool:
    return value == MASKED or (isinstance(value, dict) and value.get(SECRET_SIG_KEY) == SECRET_SIG)


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b[0].c": leaf}``; a secret (masked string or signed object) is one leaf, ``SECRET``."""
    if _is_secret(value):
        return {prefix: SECRET}
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key in sorted(value):
            if not prefix and key in INTERNAL_KEYS:
                continue
            out.update(flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and value:
        out = {}
        for index, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{index}]"))
        return out
    return {prefix: value}


_ABSENT = object()


def diff_inputs(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, op: str) -> list[Change]:
    before = flatten(dict(old or {})) if old is not None else {}
    after = flatten(dict(new or {})) if new is not None else {}
    if op == "create":
        return [Change(path, _ABSENT, value) for path, value in after.items()]
    if op == "delete":
        return [Change(path, value, _ABSENT) for path, value in before.items()]
    changes = [
        Change(path, before.get(path, _ABSENT), after.get(path, _ABSENT))
        for path in sorted(set(before) | set(after))
        if before.get(path, _ABSENT) != after.get(path, _ABSENT)
    ]
    if changes:
        return changes
    # Nothing visible differs, yet the engine proposes a change: a masked input changed.
    secrets = [path for path in sorted(set(before) & set(after)) if after[path] is SECRET]
    label = "changed" if len(secrets) == 1 else "one of these changed"
    return [Change(path, SECRET, f"{MASKED} ({label})") for path in secrets]


def agent_of(step: Mapping[str, Any]) -> tuple[str, str]:
    """(group, resource name): the parent component's name (an agent or a host baseline)."""
    urn = str(step["urn"])
    name = urn.rsplit("::", 1)[-1]
    state = step.get("newState") or step.get("oldState") or {}
    parent = str(state.get("parent") or "")
    own_type = urn.split("::")[2] if urn.count("::") >= 3 else ""
    if "$" not in own_type and not own_type.startswith("pulumi:"):
        return name, name  # a component itself: its own group
    if parent and "pulumi:pulumi:Stack" not in parent:
        return parent.rsplit("::", 1)[-1], name
    return "(stack)", name


def _short_type(urn: str) -> str:
    full = urn.split("::")[2] if urn.count("::") >= 3 else urn
    last = full.rsplit("$", 1)[-1]
    return last.removeprefix("pulumi-python:dynamic/")


def from_document(stack: str, kind: str, document: Mapping[str, Any]) -> Report:
    resources: list[ResourceChange] = []
    for step in document.get("steps") or []:
        op = str(step.get("op"))
        if op not in CHANGE_OPS:
            continue
        if str(step.get("urn", "")).split("::")[2:3] == ["pulumi:pulumi:Stack"]:
            continue  # the stack itself: its outputs follow from the resources
        old = (step.get("oldState") or {}).get("inputs")
        new = (step.get("newState") or {}).get("inputs")
        group, name = agent_of(step)
        resources.append(
            ResourceChange(
                op=op,
                urn=str(step["urn"]),
                agent=group,
                name=name,
                type=_short_type(str(step["urn"])),
                changes=diff_inputs(old, new, op),
                replace_reasons=sorted(str(key) for key in step.get("replaceReasons") or []),
            )
        )
    resources.sort(key=lambda r: (r.agent, OP_ORDER.get(r.op, 9), r.name))
    counts = {op: sum(1 for r in resources if r.op == op) for op in CHANGE_OPS}
    return Report(stack, kind, resources, counts)


# -- markdown ----------------------------------------------------------------------------------


def _value(value: Any) -> str:
    if value is _ABSENT:
        return "—"
    if value is SECRET:
        return f"<code>{MASKED}</code>"
    if value == UNKNOWN:
        return "<i>known after apply</i>"
    if isinstance(value, str) and value.startswith(f"{MASKED} ("):
        return f"<code>{MASKED}</code> {value.removeprefix(MASKED + ' ')}"
    text = json.dumps(value, ensure_ascii=False)
    if len(text) > VALUE_WIDTH:
        text = text[: VALUE_WIDTH - 1] + "…"
    return "<code>" + html.escape(text, quote=False).replace("|", "&#124;") + "</code>"


def _columns(kind: str) -> tuple[str, str]:
    return ("on the host", "desired") if kind == "drift" else ("recorded", "desired")


def _title(report: Report) -> str:
    what = "Drift" if report.kind == "drift" else "Preview"
    return f"### {what} of stack `{report.stack}`"


def _summary(report: Report) -> str:
    counts = ", ".join(f"{report.counts[op]} to {op}" for op in CHANGE_OPS if report.counts[op])
    n = len(report.resources)
    if report.kind == "drift":
        drifted = "1 resource drifted" if n == 1 else f"{n} resources drifted"
        return f"**{drifted}** ({counts}): `up --refresh` would make these changes."
    return f"**{'1 resource changes' if n == 1 else f'{n} resources change'}** ({counts})."


def render_resource(resource: ResourceChange, kind: str) -> str:
    title = f"{resource.op} <code>{html.escape(resource.name)}</code> ({html.escape(resource.type)})"
    lines = ["<details>", f"<summary>{title}</summary>", ""]
    if resource.op == "replace":
        reasons = ", ".join(f"`{key}`" for key in resource.replace_reasons) or "not given by the provider"
        lines += [f"Replaced because of: {reasons}.", ""]
    if resource.changes:
        old_label, new_label = _columns(kind)
        lines += [f"| property | {old_label} | {new_label} |", "|---|---|---|"]
        lines += [f"| `{c.path}` | {_value(c.old)} | {_value(c.new)} |" for c in resource.changes]
    else:
        lines.append("No input differs.")
    lines += ["", "</details>", "", ""]
    return "\n".join(lines)


def render(report: Report, budget: int = BUDGET) -> str:
    lines = [_title(report), ""]
    if report.error is not None:
        what = "drift check" if report.kind == "drift" else "preview"
        lines += [f"**The {what} failed.** Nothing was changed. The error:", "", "```text", report.error, "```", ""]
        return "\n".join(lines)
    if not report.resources:
        nothing = "No drift: every resource matches the hosts." if report.kind == "drift" else "No changes."
        return "\n".join([*lines, nothing, ""])
    lines += [_summary(report), ""]
    text = "\n".join(lines) + "\n"
    agent = None
    for index, resource in enumerate(report.resources):
        part = ""
        if resource.agent != agent:
            part += f"#### `{resource.agent}`\n\n"
        part += render_resource(resource, report.kind)
        rest = len(report.resources) - index
        if len(text) + len(part) > budget - 200:
            text += f"\n… and {rest} more resources (see the run log).\n"
            break
        text += part
        agent = resource.agent
    return text


# -- running the CLI ---------------------------------------------------------------------------


def redact(text: str, environ: Mapping[str, str] | None = None) -> str:
    """``text`` without ANSI colours, without any sensitive environment variable's value."""
    text = ANSI.sub("", text)
    env = os.environ if environ is None else environ
    for name in SENSITIVE_ENV:
        value = env.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "[redacted]")
    return text


def _error_text(document: Mapping[str, Any] | None, stdout: str, stderr: str, limit: int = 20_000) -> str:
    messages: list[str] = []
    for diagnostic in (document or {}).get("diagnostics") or []:
        if diagnostic.get("severity") == "error" and diagnostic.get("message"):
            messages.append(str(diagnostic["message"]).strip())
    text = "\n".join(messages) or "\n".join(part.strip() for part in (stderr, stdout) if part.strip())
    text = redact(text.strip() or "the CLI failed without a message")
    if len(text) > limit:
        text = text[:limit] + "\n… (truncated; see the run log)"
    return text.replace("```", "'''")


def cli_args(kind: str, stack: str) -> list[str]:
    if kind == "drift":
        return ["preview", "--refresh", "--json", "--stack", stack]
    return ["preview", "--json", "--stack", stack]


def collect(stack: str, kind: str, runner: Runner) -> Report:
    with tempfile.TemporaryFile("w+", encoding="utf-8") as out, tempfile.TemporaryFile("w+", encoding="utf-8") as err:
        code = runner(cli_args(kind, stack), out, err)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    document = parse_document(stdout)
    if code != 0 or document is None:
        return Report(stack, kind, [], dict.fromkeys(CHANGE_OPS, 0), error=_error_text(document, stdout, stderr))
    return from_document(stack, kind, document)


def run_report(stack: str, kind: str, output: str | None, runner: Runner, stdout: IO[str] | None = None) -> int:
    report = collect(stack, kind, runner)
    text = render(report)
    if output is None or output == "-":
        (stdout or sys.stdout).write(text)
    else:
        Path(output).write_text(text, encoding="utf-8")
    return report.exit_code

"""Every operation script parses with a PowerShell grammar and is the text the simulator was reviewed against."""

from __future__ import annotations

import json

import pytest
import tree_sitter
import tree_sitter_powershell

from devhost.host import modelled_scripts
from providers.scripting.runner import render_script
from tools.bless_scripts import current_hashes, operation_scripts

PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))


def error_lines(text: str) -> list[int]:
    tree = PARSER.parse(text.encode("utf-8"))
    lines: list[int] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            lines.append(node.start_point[0] + 1)
        stack.extend(node.children)
    return sorted(lines)


@pytest.mark.parametrize("ref", operation_scripts(), ids=lambda ref: ref.operation)
def test_script_parses(ref: object) -> None:
    text = render_script(ref)  # type: ignore[arg-type]
    assert error_lines(text) == [], f"syntax errors at lines {error_lines(text)}"


def test_the_grammar_catches_syntax_errors() -> None:
    assert error_lines("function Broken { if ($a -eq 1 { }\n") != []


def test_every_script_has_a_reviewed_model() -> None:
    stale = {op for op, digests in current_hashes().items() if digests[0] not in modelled_scripts().get(op, [])}
    assert not stale, (
        f"scripts changed without review of their simulator model: {sorted(stale)}; run `make bless-scripts`"
    )


def test_modelled_scripts_file_is_sorted_json() -> None:
    data = modelled_scripts()
    assert json.dumps(data, sort_keys=True) == json.dumps(data)

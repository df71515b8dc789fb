"""SIMULATOR: the model of _accounts.ps1 holds the script's own table, and the script keeps what the model assumes."""

from __future__ import annotations

import re

import pytest

from devhost import ps51
from devhost.ops import SCRIPT_FACTS
from devhost.ops.script_accounts import WELL_KNOWN_ENGLISH
from providers.scripting.runner import ScriptRef, render_script


def script(package: str, operation: str) -> str:
    return render_script(ScriptRef(package, operation))


def test_the_model_knows_exactly_the_scripts_names() -> None:
    text = script("providers.file_acl", "set")
    table = text[text.index("$WellKnownAccountSids = ") :]
    table = table[: table.index("OrdinalIgnoreCase)")]
    names = {name.lower(): sid for name, sid in re.findall(r"'([^']+)' = '(S-1-[0-9-]+)'", table)}
    assert names == WELL_KNOWN_ENGLISH
    assert len(names) == len(re.findall(r"' = 'S-1-", table)), "no name twice, whatever its case"


@pytest.mark.parametrize("package", ["providers.file_acl", "providers.settings_file"])
def test_a_culture_compared_table_is_refused(package: str) -> None:
    operation = package.split(".")[1] + "/get"
    text = script(package, "get")
    assert ps51.check_script(SCRIPT_FACTS, operation, text) == []
    literal = text.replace("[hashtable]::new(@{", "@{").replace("}, [System.StringComparer]::OrdinalIgnoreCase)", "}")
    assert literal != text
    assert any("tr-TR" in problem for problem in ps51.check_script(SCRIPT_FACTS, operation, literal))

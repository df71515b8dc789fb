"""Bad SettingsFile and connection inputs are refused by `check`, naming the property, before any host call."""

from __future__ import annotations

from typing import Any

import pytest

from providers.framework.checks import UNKNOWN
from providers.settings_file.provider import SettingsFileProvider

CONNECTION = {"host": "agent01.contoso.com", "username": "CONTOSO\\deploy", "password": "x"}
GOOD = {"connection": CONNECTION, "path": "C:\\identitymanagerContoso\\Runtime\\appsettings.json", "content": "{}"}

CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("relative path", {"path": "Runtime\\appsettings.json"}, "path", "not an absolute Windows path"),
    ("forward slashes", {"path": "C:/identitymanager/Runtime/a.json"}, "path", "backslashes"),
    ("drive root", {"path": "C:\\"}, "path", "drive root"),
    ("dot-dot segment", {"path": "C:\\identitymanager\\..\\Windows\\a.json"}, "path", "'..'"),
    ("forbidden character", {"path": "C:\\identitymanager\\a?.json"}, "path", "forbids"),
    ("reserved device name", {"path": "C:\\identitymanager\\CON.json"}, "path", "reserved device name"),
    ("trailing dot", {"path": "C:\\identitymanager\\a.json."}, "path", "space or dot"),
    ("backup name", {"path": "C:\\identitymanager\\a.json.bak"}, "path", ".bak"),
    # The temporary file next to it adds 14 characters, and 5.1 stops at 259: 245 at most.
    (
        "path too long",
        {"path": "C:\\im\\" + "a" * 235 + ".json"},
        "path",
        "is 246 characters long; a settings file's path can have at most 245",
    ),
    ("path far too long", {"path": "C:\\im\\" + "a" * 300 + ".json"}, "path", "at most 245"),
    ("unknown encoding", {"encoding": "latin-1"}, "encoding", "utf-8"),
    ("both contents", {"json_content": {"A": 1}}, "(resource)", "exactly one"),
    ("misspelt property", {"contents": "{}"}, "contents", "not a property"),
    ("empty reader", {"readers": [" "]}, "readers", "empty name"),
    ("reader twice", {"readers": ["IIS AppPool\\A", "iis apppool\\a"]}, "readers", "more than once"),
    ("reader not an account", {"readers": ["a\\b\\c"]}, "readers", "not an account name"),
    ("reader bad SID", {"readers": ["S-1-x"]}, "readers", "not a valid SID"),
    (
        "basic over http",
        {"connection": {**CONNECTION, "transport": "basic", "use_https": False}},
        "connection",
        "use_https=true",
    ),
    (
        "host with scheme",
        {"connection": {**CONNECTION, "host": "https://agent01"}},
        "connection.host",
        "without 'http://'",
    ),
    ("port out of range", {"connection": {**CONNECTION, "port": 70000}}, "connection.port", "less than or equal"),
    ("unknown transport", {"connection": {**CONNECTION, "transport": "digest"}}, "connection.transport", "ntlm"),
    (
        "timeouts inverted",
        {"connection": {**CONNECTION, "read_timeout_s": 10, "operation_timeout_s": 20}},
        "connection",
        "must be greater than operation_timeout_s",
    ),
    (
        "no password",
        {"connection": {k: v for k, v in CONNECTION.items() if k != "password"}},
        "connection.password",
        "required",
    ),
]


@pytest.mark.parametrize(("name", "change", "prop", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_names_the_property(name: str, change: dict[str, Any], prop: str, fragment: str) -> None:
    result = SettingsFileProvider().check({}, {**GOOD, **change})
    assert result.failures, f"{name}: accepted"
    assert any(f.reason.startswith(f"{prop}: ") and fragment in f.reason for f in result.failures), [
        f.reason for f in result.failures
    ]


def test_good_input_passes_and_is_normalised() -> None:
    result = SettingsFileProvider().check({}, {**GOOD, "path": "C:\\identitymanagerContoso\\Runtime\\a.json"})
    assert result.failures == []
    assert result.inputs["encoding"] == "utf-8"
    assert result.inputs["keep_backup"] is True


def test_unknown_values_in_preview_are_not_failures() -> None:
    result = SettingsFileProvider().check({}, {**GOOD, "content": UNKNOWN, "path": "Runtime\\x"})
    assert [f.reason.split(":")[0] for f in result.failures] == ["path"], "known values are still checked"


def test_the_longest_path_allowed_is_accepted() -> None:
    path = "C:\\im\\" + "a" * 234 + ".json"
    assert len(path) == 245
    assert SettingsFileProvider().check({}, {**GOOD, "path": path}).failures == []

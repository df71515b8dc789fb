"""Every operation script parses with a PowerShell grammar and is the text the simulator was reviewed against."""

from __future__ import annotations

import json
import re

import jinja2
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


# --- Windows PowerShell 5.1 compatibility ---------------------------------------------------------
# Windows Server 2019/2022 run the scripts in powershell.exe 5.1, never pwsh 7. Syntax and parameters
# that came with PowerShell 6+ fail there only at run time (a parse error or "A parameter cannot be
# found"), which the simulator, running Python models, would never show. Each rule names the 5.1 way.
# Sources: about_Operators / about_Pipeline_Chain_Operators / about_Functions_Advanced_Methods (clean,
# 7.3) and the 5.1 cmdlet reference on learn.microsoft.com.

_PS7_PARAMETERS: dict[tuple[str, str], str] = {
    ("convertfrom-json", "-ashashtable"): "5.1 has no -AsHashtable: read the PSCustomObject's properties, or "
    "[System.Web.Script.Serialization.JavaScriptSerializer]::new().DeserializeObject($text) for a dictionary",
    ("convertfrom-json", "-depth"): "5.1's ConvertFrom-Json has no -Depth (it parses any depth): drop it",
    ("convertto-json", "-asarray"): "5.1 has no -AsArray: pass @(...) with ConvertTo-Json -InputObject",
    ("convertto-json", "-enumsasstrings"): "5.1 has no -EnumsAsStrings: cast the enum values to [string] first",
    ("foreach-object", "-parallel"): "5.1 has no ForEach-Object -Parallel: use a plain foreach, or Start-Job / "
    "a RunspacePool",
    ("get-content", "-asbytestream"): "5.1 has no -AsByteStream: use -Encoding Byte, or [IO.File]::ReadAllBytes()",
    ("set-content", "-asbytestream"): "5.1 has no -AsByteStream: use -Encoding Byte, or [IO.File]::WriteAllBytes()",
    ("add-content", "-asbytestream"): "5.1 has no -AsByteStream: use -Encoding Byte",
    ("join-path", "-additionalchildpath"): "5.1's Join-Path takes one -ChildPath: nest the calls, "
    "Join-Path (Join-Path $a $b) $c, or use [IO.Path]::Combine($a, $b, $c)",
    ("split-path", "-extension"): "5.1 has no Split-Path -Extension: use [IO.Path]::GetExtension()",
    ("split-path", "-leafbase"): "5.1 has no Split-Path -LeafBase: use [IO.Path]::GetFileNameWithoutExtension()",
    ("invoke-webrequest", "-skipcertificatecheck"): "5.1 has no -SkipCertificateCheck: set "
    "[Net.ServicePointManager]::ServerCertificateValidationCallback",
    ("invoke-restmethod", "-skipcertificatecheck"): "5.1 has no -SkipCertificateCheck: set "
    "[Net.ServicePointManager]::ServerCertificateValidationCallback",
    ("test-connection", "-targetname"): "5.1's Test-Connection takes -ComputerName",
}
_PS7_ENCODINGS = {"utf8nobom", "utf8bom"}
_PS7_VARIABLES = {
    "$iswindows": "$IsWindows is PowerShell 6+ (on 5.1 it is $null): 5.1 runs only on Windows, drop the test, "
    "or use $env:OS -eq 'Windows_NT'",
    "$islinux": "$IsLinux is PowerShell 6+: 5.1 runs only on Windows",
    "$ismacos": "$IsMacOS is PowerShell 6+: 5.1 runs only on Windows",
    "$iscoreclr": "$IsCoreCLR is PowerShell 6+: 5.1 is always .NET Framework ($PSVersionTable.PSEdition -eq 'Desktop')",
}
_PS7_COMMANDS = {
    "test-json": "Test-Json is PowerShell 6.1+: parse with ConvertFrom-Json inside try/catch",
    "get-error": "Get-Error is PowerShell 7: read $Error[0] / $_.Exception",
}


_CLEAN_BLOCK = "a 'clean { }' block is PowerShell 7.3: put the clean-up in try { } finally { }"


def _text(source: bytes, node: tree_sitter.Node) -> str:
    return source[node.start_byte : node.end_byte].decode("utf-8", errors="replace")


def ps51_violations(text: str) -> list[str]:
    """Constructs of PowerShell 6+ in ``text``, each as 'line N: what, and the 5.1 way'."""
    source = text.encode("utf-8")
    lines = text.splitlines()
    found: list[tuple[int, str]] = []
    stack = [PARSER.parse(source).root_node]
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        line = node.start_point[0] + 1
        if node.type == "ERROR":
            # The grammar knows only 5.1 syntax: the 7.x operators are parse errors; name them.
            code = lines[node.start_point[0]] if node.start_point[0] < len(lines) else ""
            if re.search(r"\bclean\s*\{", code, re.IGNORECASE):
                found.append((line, _CLEAN_BLOCK))
            elif "??" in code:
                found.append(
                    (line, "'??'/'??=' (null-coalescing) is PowerShell 7: write if ($null -eq $a) { $b } else { $a }")
                )
            elif "?." in code or "?[" in code:
                found.append((line, "'?.'/'?[]' (null-conditional) is PowerShell 7: test $null -ne $a first"))
            elif " ? " in code and " : " in code:
                found.append((line, "'$c ? $a : $b' (ternary) is PowerShell 7: write if ($c) { $a } else { $b }"))
        elif node.type == "pipeline_chain_tail":
            found.append(
                (
                    line,
                    f"'{_text(source, node.children[0])}' between pipelines is PowerShell 7: write "
                    "the second statement under if ($?) { ... } (or if (-not $?) for '||'), or test "
                    "$LASTEXITCODE after a native command",
                )
            )
        elif node.type == "variable" and _text(source, node).lower() in _PS7_VARIABLES:
            found.append((line, _PS7_VARIABLES[_text(source, node).lower()]))
        elif node.type == "command":
            name_node = node.child_by_field_name("command_name") or next(
                (c for c in node.children if c.type == "command_name"), None
            )
            if name_node is None:
                continue
            name = _text(source, name_node).lower()
            if _PS7_COMMANDS.get(name):
                found.append((line, _PS7_COMMANDS[name]))
            elements = next((c for c in node.children if c.type == "command_elements"), None)
            parts = [c for c in elements.children if c.type != "command_argument_sep"] if elements else []
            if name == "clean" and parts and _text(source, parts[0]).lstrip().startswith("{"):
                found.append((line, _CLEAN_BLOCK))
            for index, part in enumerate(parts):
                if part.type != "command_parameter":
                    continue
                parameter = _text(source, part).lower().rstrip(":")
                why = _PS7_PARAMETERS.get((name, parameter))
                if why:
                    found.append((line, f"{_text(source, name_node)} {_text(source, part)}: {why}"))
                if parameter == "-encoding" and index + 1 < len(parts):
                    value = _text(source, parts[index + 1]).strip("'\"").lower()
                    if value in _PS7_ENCODINGS:
                        found.append(
                            (
                                line,
                                f"-Encoding {value} is PowerShell 6+: 5.1's utf8 writes a BOM; for "
                                "no BOM use [IO.File]::WriteAllText($path, $text, "
                                "(New-Object System.Text.UTF8Encoding $false))",
                            )
                        )
    return [f"line {n}: {why}" for n, why in sorted(set(found))]


# Constructs the tree-sitter grammar reads wrongly though they are valid Windows PowerShell 5.1, per file. Each is
# replaced by a plain string before the parse and 5.1 checks, and only there; the test below fails when the grammar
# learns it, so the entry is then removed.
_GRAMMAR_FALSE_POSITIVES: dict[str, tuple[tuple[str, str], ...]] = {
    "loop.ps1": (
        (
            '"`n#usercube-response $Id $([Environment]::WorkingSet) $encoded`n"',
            # Minimal form: $f = "`n#a" (an escape sequence, later a '#' followed by text, in one expandable
            # string): the grammar (tree-sitter-powershell 0.26.4) starts a comment at the '#', so the string
            # never ends and the ERROR shows much later (loop.ps1 lines 118 and 142). In PowerShell a '#' inside
            # a double-quoted string is a character of the string: an expandable-string-character is any
            # character but $, " and ` (Windows PowerShell Language Specification 3.0, §2.3.5.2 String literals;
            # a comment starts with # only where a token may start, §2.2.3 Comments). The string is
            # Write-Response's frame header, which the runner matches (providers/scripting/runner.py).
            "a '#' after an escape sequence in an expandable string is not a comment",
        ),
    ),
}


def _ps_source(name: str) -> str:
    return jinja2.PackageLoader("providers.scripting", "ps").get_source(jinja2.Environment(), name)[0]


def without_grammar_false_positives(name: str, text: str) -> str:
    for construct, _why in _GRAMMAR_FALSE_POSITIVES.get(name, ()):
        assert text.count(construct) == 1, f"{name}: the allowed construct {construct} is not there once"
        text = text.replace(construct, "'grammar-false-positive'")
    return text


def test_loop_parses() -> None:
    # loop.ps1 (the operation loop, sent as the first line of stdin) is no operation script: checked here.
    assert error_lines(without_grammar_false_positives("loop.ps1", _ps_source("loop.ps1"))) == []


def test_each_grammar_false_positive_is_still_one() -> None:
    for name, entries in _GRAMMAR_FALSE_POSITIVES.items():
        assert error_lines(_ps_source(name)) != [], f"{name} parses whole: remove its allow-list entries"
        for construct, why in entries:
            assert error_lines(f"$frame = {construct}\n") != [], f"{name}: {why}: the grammar reads it now"
    assert error_lines('$f = "`n#a"\n') != [] and error_lines('$f = "#a"\n') == []


def _all_script_texts() -> list[tuple[str, str]]:
    texts = [(ref.operation, render_script(ref)) for ref in operation_scripts()]
    loop = without_grammar_false_positives("loop.ps1", _ps_source("loop.ps1"))
    return [*texts, ("bootstrap", _ps_source("bootstrap.ps1")), ("loop", loop)]


@pytest.mark.parametrize(("name", "text"), _all_script_texts(), ids=lambda value: value if "\n" not in value else "")
def test_script_runs_on_windows_powershell_5_1(name: str, text: str) -> None:
    assert ps51_violations(text) == [], f"{name} uses PowerShell 6+ only constructs"


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("$a = $b ?? 'x'\n", "if ($null -eq $a)"),
        ("$a ??= 3\n", "if ($null -eq $a)"),
        ("$v = $ok ? 1 : 2\n", "if ($c) { $a } else { $b }"),
        ("$n = $x?.Name\n", "test $null -ne $a first"),
        ("git fetch && git merge\n", "if ($?)"),
        ("git fetch || exit 1\n", "if ($?)"),
        ("$o = $t | ConvertFrom-Json -AsHashtable\n", "JavaScriptSerializer"),
        ("$o = $t | ConvertFrom-Json -Depth 10\n", "drop it"),
        ("1..3 | ForEach-Object -Parallel { $_ }\n", "RunspacePool"),
        ("$b = Get-Content -LiteralPath $p -AsByteStream -Raw\n", "-Encoding Byte"),
        ("$p = Join-Path $a 'b' -AdditionalChildPath 'c'\n", "[IO.Path]::Combine"),
        ("if ($IsWindows) { 1 }\n", "$env:OS"),
        ("function f { process { 1 } clean { 2 } }\n", "try { } finally { }"),
        ("Set-Content -LiteralPath $p -Value $t -Encoding utf8NoBOM\n", "UTF8Encoding $false"),
        ("Test-Json -Json $t\n", "ConvertFrom-Json inside try/catch"),
    ],
)
def test_ps7_only_constructs_fail_with_the_5_1_way(snippet: str, expected: str) -> None:
    problems = ps51_violations(snippet)
    assert problems and any(expected in problem for problem in problems), problems


def test_5_1_constructs_pass() -> None:
    text = (
        "$a = if ($null -eq $b) { 'x' } else { $b }\n"
        "$o = $t | ConvertFrom-Json\n"
        "$p = Join-Path (Join-Path $a 'b') 'c'\n"
        "foreach ($i in 1..3) { $i }\n"
        "$q = 'who ?? knows ? a : b'\n"
        "try { 1 } finally { 2 }\n"
    )
    assert ps51_violations(text) == []


def test_bootstrap_and_prelude_pass_no_input_through_a_cmdlet() -> None:
    # R7: Module Logging (event 4103) records every cmdlet's parameter bindings, so the JSON input (with its
    # secrets) must be parsed by a .NET method, never piped into ConvertFrom-Json.
    loader = jinja2.PackageLoader("providers.scripting", "ps")
    for name in ("bootstrap.ps1", "prelude.ps1"):
        text = loader.get_source(jinja2.Environment(), name)[0]
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        assert "ConvertFrom-Json" not in code and "Add-Member" not in code, name


# R7, every script: a secret of the input reaches only .NET calls and functions the scripts define, never a
# cmdlet (module logging, event 4103 and 5.1's event 800, writes a cmdlet's bound values with ToString():
# PowerShell engine/ParameterBinderBase.cs, MshCommandRuntime.cs; a script-defined function is not logged)
# and never a pipe (with transcription on, a pipeline holding a logged cmdlet logs its functions too:
# engine/pipeline.cs). A lint over the lines that name a secret field, not a proof: the README's table is.
SECRET_FIELDS = ("password", "apply_password", "identity_password", "pfx", "pfx_password", "content")
FORBIDDEN_CMDLETS = ("ConvertFrom-Json", "Add-Member", "ConvertTo-SecureString")
_SECRET_USE = re.compile(r"\$Spec\.(" + "|".join(SECRET_FIELDS) + r")\b")
_COMMAND_NAME = re.compile(r"\b[A-Z][a-z]+-[A-Z][A-Za-z0-9]+\b")
_DEFINED = re.compile(r"^\s*function\s+([A-Za-z]+-[A-Za-z0-9]+)", re.MULTILINE | re.IGNORECASE)


def code_lines(text: str) -> list[str]:
    """The script's lines, a comment line left blank (its words are no code): what the lints below read."""
    return ["" if line.lstrip().startswith("#") else line for line in text.splitlines()]


def secret_leaks(texts: list[tuple[str, str]]) -> list[str]:
    """Lines where a secret field of $Spec meets a pipe or a command the scripts do not define themselves."""
    defined = {name.lower() for _, text in texts for name in _DEFINED.findall(text)}
    found = []
    for name, text in texts:
        for number, code in enumerate(code_lines(text), 1):
            for cmdlet in FORBIDDEN_CMDLETS:
                if cmdlet.lower() in code.lower():
                    found.append(f"{name}:{number}: {cmdlet}")
            if not _SECRET_USE.search(code):
                continue
            if "|" in code.replace("-bor", "").replace("||", ""):
                found.append(f"{name}:{number}: a secret in a pipeline")
            foreign = [c for c in _COMMAND_NAME.findall(code) if c.lower() not in defined]
            if foreign:
                found.append(f"{name}:{number}: a secret beside {foreign}")
    return found


def test_no_secret_reaches_a_cmdlet_or_a_pipe() -> None:
    assert secret_leaks(_all_script_texts()) == []


@pytest.mark.parametrize(
    "line",
    [
        "$o = [Console]::In.ReadToEnd() | ConvertFrom-Json\n",
        "$s = ConvertTo-SecureString ([string]$Spec.password) -AsPlainText -Force\n",
        "$c = New-Object System.Management.Automation.PSCredential -ArgumentList 'u', $Spec.password\n",
        "[string]$Spec.content | Set-Content -Path $path\n",
        "Write-Verbose ([string]$Spec.pfx_password)\n",
    ],
)
def test_the_secret_lint_refuses(line: str) -> None:
    assert secret_leaks([("sample", "function Get-Mine($a) { $a }\n" + line)]) != []
    assert secret_leaks([("sample", "function Get-Mine($a) { $a }\nGet-Mine ([string]$Spec.password)\n")]) == []


# --- nothing decides on the text of an error (a localized Windows words every message its own way) -------
# A French or German Windows Server gives .NET, WMI, IIS and sc.exe messages in its language (review W5: the IIS
# commit retry matched 'changed on disk'). Decisions go by HResult, NativeErrorCode, exception type or return value.
_MESSAGE_TEST = re.compile(
    r"\.Message\s*-(?:not)?(?:match|like|eq|ne|contains)\b"
    r"|\.Message\.(?:Contains|StartsWith|EndsWith|IndexOf)\("
    r"|\$_\.ToString\(\)\s*-(?:not)?(?:match|like)\b"
    r"|\"\$_\"\s*-(?:not)?(?:match|like)\b"
    r"|\$error\[\d+\]\s*-(?:not)?(?:match|like)\b",
    re.IGNORECASE,
)


def message_tests(texts: list[tuple[str, str]]) -> list[str]:
    return [
        f"{name}:{number}: {line.strip()[:100]}"
        for name, text in texts
        for number, line in enumerate(code_lines(text), 1)
        if _MESSAGE_TEST.search(line)
    ]


def test_no_script_decides_on_the_words_of_an_error() -> None:
    assert message_tests(_all_script_texts()) == []


@pytest.mark.parametrize(
    "line",
    [
        "if ($_.Exception.Message -match 'changed on disk') { continue }",
        "if ($e.Message.Contains('already exists')) { }",
        'if ("$_" -like "*denied*") { }',
        "if ($_.ToString() -match 'Access is denied') { }",
    ],
)
def test_the_error_words_check_refuses(line: str) -> None:
    assert message_tests([("s", line + "\n")]) != []
    assert message_tests([("s", "if ($_.Exception.HResult -eq -2147024864) { }\n")]) == []


# --- a list written as one object is not wrapped again -------------------------------------------------
# A function that ends with `return , $list` (the unary comma) writes its list to the pipeline as ONE object, so
# that an empty or one-element list survives. `@(Get-Thing)` then collects that one object into a new array of one
# element: the list itself (PowerShell's array subexpression gathers the pipeline's objects, it does not unroll
# them again: about_Operators, "Array subexpression operator"; "Comma operator"). A loop over it runs once, and a
# [string] parameter gets the whole list joined by spaces. Assign the call, or loop over `(Get-Thing)`.
# `return , $x`, `return ,@(...)`, `return , [string[]]$x` anywhere in the body (an `if (...) { return , ... }`
# too), a statement that is only `, $x`, and Write-Output -NoEnumerate (review-round2 V1).
_COMMA_RETURN = re.compile(
    r"\breturn\s*,\s*[@$(\[]|^\s*,\s*[@$(\[]|Write-Output\s+-NoEnumerate\b", re.MULTILINE | re.IGNORECASE
)


def _functions_writing_one_list(texts: list[tuple[str, str]]) -> set[str]:
    names: set[str] = set()
    for _, text in texts:
        starts = [(m.start(), m.group(1)) for m in _DEFINED.finditer(text)]
        for index, (start, name) in enumerate(starts):
            end = starts[index + 1][0] if index + 1 < len(starts) else len(text)
            if _COMMA_RETURN.search(text[start:end]):
                names.add(name.lower())
    return names


# The forms that take a list written as one object as ONE element (review-round2 V2): @(F), @(& F), @( on one
# line and F on the next, `foreach ($x in F ...)` without parentheses, `F ... | cmdlet` (the pipeline gets the
# list as one object too).
_WRAPPING = (
    re.compile(r"@\(\s*&?\s*([A-Za-z]+-[A-Za-z0-9]+)\b"),
    re.compile(r"\bforeach\s*\(\s*\$\w+\s+in\s+([A-Za-z]+-[A-Za-z0-9]+)\b", re.IGNORECASE),
    re.compile(r"(?:^|[=;{(]\s*)([A-Za-z]+-[A-Za-z0-9]+)\b[^|\n()]*(?:\([^()\n]*\)[^|\n()]*)*\|"),
)


def lists_wrapped_again(texts: list[tuple[str, str]]) -> list[str]:
    """Where a function that writes its list as one object is taken as one element."""
    writers = _functions_writing_one_list(texts)
    found = []
    for name, text in texts:
        code = "\n".join(code_lines(text))
        code = re.sub(r"@\(\s*\n\s*", "@(", code)  # @( and the call on the next line
        for number, line in enumerate(code.splitlines(), 1):
            for form in _WRAPPING:
                for called in form.findall(line):
                    if called.lower() in writers:
                        found.append(f"{name}:{number}: {called} writes its list as one object; here it is one element")
    return found


def test_no_list_written_as_one_object_is_wrapped_again() -> None:
    assert lists_wrapped_again(_all_script_texts()) == []


@pytest.mark.parametrize(
    "writer",
    [
        "function Get-Names($a) {\n    $found = @()\n    return , $found\n}\n",
        "function Get-Names($a) {\n    if ($a) { return , @($a, 'b') }\n    return $null\n}\n",
        "function Get-Names($a) {\n    return , [string[]]$a\n}\n",
        "function Get-Names($a) {\n    Write-Output -NoEnumerate @($a)\n}\n",
    ],
)
@pytest.mark.parametrize(
    "use",
    [
        "foreach ($n in @(Get-Names 1)) { $n }",
        "$all = @(& Get-Names 1)",
        "$all = @(\n    Get-Names 1\n)",
        "foreach ($n in Get-Names 1) { $n }",
        "Get-Names 1 | ForEach-Object { $_ }",
        "$c = Get-Names (Get-Date) | Measure-Object",
    ],
)
def test_the_wrapped_list_check_refuses(writer: str, use: str) -> None:
    assert lists_wrapped_again([("s", writer + use + "\n")]) != []


def test_the_wrapped_list_check_accepts_the_list_taken_whole() -> None:
    writer = "function Get-Names($a) {\n    $found = @()\n    return , $found\n}\n"
    uses = "foreach ($n in (Get-Names 1)) { $n }\n$x = Get-Names 2\n$y = (Get-Names 3).Count\n"
    assert lists_wrapped_again([("s", writer + uses)]) == []


# --- the end of an operation is an exception: no catch may swallow it --------------------------------
# Complete-Operation and Stop-Operation end the script by throwing the exception Exit-Operation builds
# (prelude.ps1; the bootstrap's loop runs many operations in one process, so no script may `exit`). A
# catch that handles every exception and does not rethrow would swallow that end and let the script go on
# (a success turned into whatever the catch does next). Typed catches of other exceptions are fine.

_ENDING = {"complete-operation", "stop-operation", "exit-operation"}
_CATCH_ALL_TYPES = {
    "exception",
    "system.exception",
    "systemexception",
    "system.systemexception",
    "operationcanceledexception",
    "system.operationcanceledexception",
}


def _walk(node: tree_sitter.Node) -> list[tree_sitter.Node]:
    found, stack = [], [node]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(current.children)
    return found


def _node_text(node: tree_sitter.Node) -> str:
    return (node.text or b"").decode("utf-8")


def _called(node: tree_sitter.Node) -> set[str]:
    return {_node_text(n).lower() for n in _walk(node) if n.type == "command_name"}


def _ending_functions(root: tree_sitter.Node) -> set[str]:
    """Functions that end the operation, directly or through another function."""
    bodies = {
        _node_text(n.child_by_field_name("name") or n.children[1]).lower(): n
        for n in _walk(root)
        if n.type == "function_statement"
    }
    ending = set(_ENDING)
    while True:
        more = {name for name, body in bodies.items() if name not in ending and _called(body) & ending}
        if not more:
            return ending
        ending |= more


def _rethrows(catch: tree_sitter.Node) -> bool:
    # A bare `throw` rethrows the error being handled (about_Throw), the end of the operation included.
    return any(n.type == "flow_control_statement" and _node_text(n).strip() == "throw" for n in _walk(catch))


def _catches_everything(catch: tree_sitter.Node) -> bool:
    types = [c for c in catch.children if c.type == "catch_type_list"]
    if not types:
        return True
    names = {_node_text(n).strip("[]").lower() for n in _walk(types[0]) if n.type == "type_literal"}
    return bool(names & _CATCH_ALL_TYPES)


def swallowed_endings(text: str) -> list[str]:
    root = PARSER.parse(text.encode("utf-8")).root_node
    ending = _ending_functions(root)
    problems = []
    for node in _walk(root):
        if node.type != "try_statement":
            continue
        body = next(c for c in node.children if c.type == "statement_block")
        calls = _called(body) & ending
        clauses = [
            c for n in node.children if n.type == "catch_clauses" for c in n.children if c.type == "catch_clause"
        ]
        for catch in clauses:
            if calls and _catches_everything(catch) and not _rethrows(catch):
                problems.append(f"line {node.start_point[0] + 1}: try calls {sorted(calls)}, catch does not rethrow")
    return problems


@pytest.mark.parametrize("ref", operation_scripts(), ids=lambda ref: ref.operation)
def test_no_catch_swallows_the_end_of_an_operation(ref: object) -> None:
    assert swallowed_endings(render_script(ref)) == []  # type: ignore[arg-type]


def test_the_swallow_check_finds_a_swallowing_catch() -> None:
    script = "function Stop-Operation { }\nfunction Fail { Stop-Operation -Id x }\n"
    assert swallowed_endings(script + "try { Fail } catch { $x = 1 }\n") != []
    assert swallowed_endings(script + "try { Fail } catch [System.Exception] { }\n") != []
    assert swallowed_endings(script + "try { Fail } catch { if ($a) { throw } }\n") == []
    assert swallowed_endings(script + "try { Fail } catch [System.IO.IOException] { }\n") == []
    assert swallowed_endings(script + "try { Other } catch { }\n") == []

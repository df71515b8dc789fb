"""SettingsFile through the real Pulumi CLI against the host under test (simulated unless configured)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from typing import Any

import pulumi
import pytest

from devhost import accounts, ntfs
from devhost.ops.file_acl import admin_read_as
from providers.scripting.runner import ScriptRef, run_script
from providers.settings_file import SettingsFile
from providers.transport.connection import HostConnection
from tests.support.engine import EngineStack
from tests.support.hosts import Target

pytestmark = pytest.mark.engine

Engine = Callable[[Callable[[], None]], EngineStack]


def new_folder() -> str:
    return f"C:\\UsercubeIacTests\\{uuid.uuid4().hex[:8]}"


def file_program(target: Target, desired: dict[str, Any], **overrides: Any) -> Callable[[], None]:
    """A program with one SettingsFile whose inputs are read from ``desired`` at each run."""

    def program() -> None:
        connection = {
            **target.connection,
            **overrides,
            "password": pulumi.Output.secret(overrides.get("password", target.connection["password"])),
        }
        settings = SettingsFile(
            "settings",
            connection=connection,
            path=desired["path"],
            content=desired["content"],
            secret=desired.get("secret", False),
        )
        pulumi.export("sha256", settings.sha256)

    return program


def host_connection(target: Target) -> HostConnection:
    return HostConnection.model_validate(target.connection)


def edit_out_of_band(target: Target, path: str, content: str) -> None:
    """What an administrator does by hand: on the simulator, through its admin command line."""
    if target.simulated:
        command = [sys.executable, "-m", "devhost", "admin", "file-write", "--state", str(target.state_dir)]
        subprocess.run([*command, "--path", path, "--text", content], check=True, capture_output=True)
    else:
        payload = {"path": path, "content": content, "encoding": "utf-8", "keep_backup": False, "readers": None}
        run_script(host_connection(target), ScriptRef("providers.settings_file", "set"), payload, resource="test")


def read_host_file(target: Target, path: str) -> str | None:
    payload = {"path": path, "content": "", "encoding": "utf-8", "keep_backup": True, "readers": None}
    result = run_script(host_connection(target), ScriptRef("providers.settings_file", "get"), payload, resource="t")
    return result.state.get("content") if result.state["ensure"] == "present" else None


def test_create_then_second_up_changes_nothing_and_sends_nothing(target: Target, engine: Engine) -> None:
    desired = {"path": f"{new_folder()}\\appsettings.json", "content": '{"A": 1}\n'}
    stack = engine(file_program(target, desired))

    first = stack.up()
    assert first.ok, first.output
    assert first.summary.get("create") == 2  # the stack and the file
    assert read_host_file(target, desired["path"]) == '{"A": 1}\n'

    mark = target.journal_mark() if target.simulated else 0
    second = stack.up()
    assert second.ok, second.output
    assert second.summary == {"same": 2}
    if target.simulated:
        assert target.journal_since(mark) == [], "a no-op up must not talk to the host"


def test_content_change_shows_in_preview_diff_then_applies_with_backup(target: Target, engine: Engine) -> None:
    desired = {"path": f"{new_folder()}\\appsettings.json", "content": "version one\n"}
    stack = engine(file_program(target, desired))
    assert stack.up().ok

    desired["content"] = "version two\n"
    preview = stack.preview(diff=True)
    assert preview.ok, preview.output
    assert "~ content" in preview.stdout or "~ content:" in preview.stdout.replace("  ", " "), preview.stdout
    assert "version two" in preview.stdout
    assert read_host_file(target, desired["path"]) == "version one\n", "preview must not apply anything"

    applied = stack.up()
    assert applied.ok, applied.output
    assert applied.summary.get("update") == 1
    assert read_host_file(target, desired["path"]) == "version two\n"
    assert read_host_file(target, desired["path"] + ".bak") == "version one\n"
    assert stack.outputs()["sha256"] != ""


def test_out_of_band_edit_is_found_by_refresh_and_repaired_by_up(target: Target, engine: Engine) -> None:
    desired = {"path": f"{new_folder()}\\web.config", "content": "<configuration />\n"}
    stack = engine(file_program(target, desired))
    assert stack.up().ok
    assert stack.refresh(expect_no_changes=True).ok, "no drift yet"

    edit_out_of_band(target, desired["path"], "<configuration>edited by hand</configuration>\n")
    drift = stack.refresh(expect_no_changes=True)
    assert not drift.ok, "refresh --expect-no-changes must fail on drift"
    assert "settings" in drift.output  # names the resource
    assert "no changes were expected" in drift.output.lower() or "expected no changes" in drift.output.lower()

    repaired = stack.up()
    assert repaired.ok, repaired.output
    assert repaired.summary.get("update") == 1
    assert read_host_file(target, desired["path"]) == "<configuration />\n"
    assert stack.refresh(expect_no_changes=True).ok


def test_file_deleted_out_of_band_is_recreated(target: Target, engine: Engine) -> None:
    desired = {"path": f"{new_folder()}\\appsettings.json", "content": "{}\n"}
    stack = engine(file_program(target, desired))
    assert stack.up().ok
    if target.simulated:
        target.windows_file(desired["path"]).unlink()
    else:
        run_script(
            host_connection(target),
            ScriptRef("providers.settings_file", "remove"),
            {**desired, "encoding": "utf-8", "keep_backup": True, "readers": None},
            resource="test",
        )
    assert not stack.refresh(expect_no_changes=True).ok
    assert stack.up().ok
    assert read_host_file(target, desired["path"]) == "{}\n"


def test_destroy_removes_the_file_and_nothing_else(target: Target, engine: Engine) -> None:
    folder = new_folder()
    neighbour = {"path": f"{folder}\\keep-me.json", "content": "not ours\n"}
    edit_out_of_band(target, neighbour["path"], neighbour["content"])
    desired = {"path": f"{folder}\\appsettings.json", "content": "ours\n"}
    stack = engine(file_program(target, desired))
    assert stack.up().ok

    destroyed = stack.destroy()
    assert destroyed.ok, destroyed.output
    assert read_host_file(target, desired["path"]) is None
    assert read_host_file(target, neighbour["path"]) == "not ours\n"


def test_scripts_longer_than_a_command_line_travel_through_stdin(simulated: Target, engine: Engine) -> None:
    big = "x" * 20_000 + "\n"  # far beyond cmd.exe's 8191-character command line
    desired = {"path": f"{new_folder()}\\big.json", "content": big}
    mark = simulated.journal_mark()
    stack = engine(file_program(simulated, desired))
    assert stack.up().ok
    assert read_host_file(simulated, desired["path"]) == big
    commands = [e["command_line"] for e in simulated.journal_since(mark) if e["kind"] == "command"]
    assert commands, "the journal must record command lines"
    assert max(len(c) for c in commands) <= 8191


def test_secret_content_never_appears_in_output_state_or_command_lines(simulated: Target, engine: Engine) -> None:
    secret = f"Sup3r-Secret-{uuid.uuid4().hex}"
    desired = {"path": f"{new_folder()}\\appsettings.agent.json", "content": f'{{"Pw": "{secret}"}}\n', "secret": True}
    mark = simulated.journal_mark()
    stack = engine(file_program(simulated, desired))
    runs = [stack.up(), stack.preview(diff=True)]
    desired["content"] = f'{{"Pw": "{secret}-rotated"}}\n'
    runs += [stack.preview(diff=True), stack.up(), stack.refresh()]
    for run in runs:
        assert run.ok, run.output
        assert secret not in run.output
    assert "[secret]" in runs[2].stdout
    exported = stack.export()
    assert '"content"' in exported and "ciphertext" in exported
    assert secret not in exported
    assert secret not in stack.raw_state()
    assert simulated.connection["password"] not in stack.export()
    for entry in simulated.journal_since(mark):
        assert secret not in json.dumps(entry)  # stdin is base64 on the wire and in the journal...
        if entry["kind"] == "command":
            assert secret not in entry["command_line"]
    requests = simulated.requests_since(mark)
    assert any(secret in request["input"] for request in requests), "...and reaches the host only there"


def test_relative_path_is_refused_before_any_host_call(simulated: Target, engine: Engine) -> None:
    desired = {"path": "Runtime\\appsettings.json", "content": "{}"}
    mark = simulated.journal_mark()
    run = engine(file_program(simulated, desired)).up()
    assert not run.ok
    assert "path" in run.output and "not an absolute Windows path" in run.output
    assert simulated.journal_since(mark) == []


def test_wrong_password_gives_one_clear_error_naming_the_host(target: Target, engine: Engine) -> None:
    desired = {"path": f"{new_folder()}\\a.json", "content": "{}"}
    run = engine(file_program(target, desired, password="wrong-password")).up()
    assert not run.ok
    label = f"{target.connection['host']}:{target.connection.get('port', '')}"
    assert "[AuthenticationFailed]" in run.output
    assert label.rstrip(":") in run.output
    assert "wrong-password" not in run.output


def test_unreachable_host_fails_clearly_after_the_timeout(simulated: Target, engine: Engine) -> None:
    desired = {"path": f"{new_folder()}\\a.json", "content": "{}"}
    simulated.set_knobs(faults=[{"kind": "timeout", "on": "Create", "seconds": 30}])
    try:
        run = engine(file_program(simulated, desired, read_timeout_s=3, operation_timeout_s=2, retries=0)).up()
    finally:
        simulated.set_knobs()
    assert not run.ok
    assert "[HostUnreachable]" in run.output and "no answer within read_timeout_s=3s" in run.output


def test_closed_port_fails_clearly(target: Target, engine: Engine) -> None:
    desired = {"path": f"{new_folder()}\\a.json", "content": "{}"}
    run = engine(file_program(target, desired, host="127.0.0.1", port=1, use_https=False, retries=0)).up()
    assert not run.ok
    assert "[HostUnreachable] host 127.0.0.1:1" in run.output


def json_program(target: Target, desired: dict[str, Any]) -> Callable[[], None]:
    def program() -> None:
        connection = {**target.connection, "password": pulumi.Output.secret(target.connection["password"])}
        document = {
            "OpenId": {"AgentIdentifier": desired["agent"]},
            "OpenIdClients": {"Job": pulumi.Output.secret(desired["client_secret"])},
            "DefaultOpenIdClient": "Job",
        }
        SettingsFile("agent-settings", connection=connection, path=desired["path"], json_content=document)

    return program


def test_json_content_diffs_key_by_key_with_secrets_masked(target: Target, engine: Engine) -> None:
    secret = f"client-secret-{uuid.uuid4().hex}"
    desired = {"path": f"{new_folder()}\\appsettings.agent.json", "agent": "A", "client_secret": secret}
    stack = engine(json_program(target, desired))
    assert stack.up().ok
    on_host = json.loads(read_host_file(target, desired["path"]) or "")
    assert on_host["OpenId"]["AgentIdentifier"] == "A" and on_host["OpenIdClients"]["Job"] == secret

    desired["agent"] = "B"
    desired["client_secret"] = secret + "-rotated"
    preview = stack.preview(diff=True)
    assert preview.ok, preview.output
    assert 'AgentIdentifier: "A" => "B"' in preview.stdout, preview.stdout
    assert "Job" in preview.stdout and "[secret]" in preview.stdout
    assert secret not in preview.output
    assert stack.up().ok
    assert secret not in stack.export() and secret not in stack.raw_state()

    # An administrator edits one key by hand: refresh names it, up puts it back.
    if target.simulated:
        edited = json.loads(target.windows_file(desired["path"]).read_text())
        edited["OpenId"]["AgentIdentifier"] = "edited"
        target.windows_file(desired["path"]).write_text(json.dumps(edited, indent=2) + "\n")
        drift = stack.refresh(expect_no_changes=True)
        assert not drift.ok
        assert stack.up().ok
        assert json.loads(read_host_file(target, desired["path"]) or "")["OpenId"]["AgentIdentifier"] == "B"


def test_check_failures_never_print_secret_values(simulated: Target, engine: Engine) -> None:
    """The engine prints a failing property's value next to the reason; a failure must not name a
    property that holds a secret (here the connection, with its password) or the secret shows."""
    password = f"Pw-{uuid.uuid4().hex}"
    secret = f"S-{uuid.uuid4().hex}"
    desired = {"path": "relative\\file.json", "content": secret, "secret": True}
    run = engine(file_program(simulated, desired, transport="basic", password=password)).preview()
    assert not run.ok
    assert "use_https=true" in run.output
    assert password not in run.output
    assert secret not in run.output


def devhost_admin(target: Target, *arguments: str) -> None:
    """An administrator's change on the simulated host, through its admin command line."""
    command = [sys.executable, "-m", "devhost", "admin", arguments[0], "--state", str(target.state_dir)]
    subprocess.run([*command, *arguments[1:]], check=True, capture_output=True)


def can_read(target: Target, path: str, account: str) -> bool:
    """Whether a program running as ``account`` can open the file for reading (the simulator's access check)."""
    assert target.state_dir is not None
    try:
        admin_read_as(target.state_dir, path, account)
    except PermissionError:
        return False
    return True


def protected_program(target: Target, desired: dict[str, Any]) -> Callable[[], None]:
    def program() -> None:
        connection = {**target.connection, "password": pulumi.Output.secret(target.connection["password"])}
        SettingsFile(
            "agent-settings",
            connection=connection,
            path=desired["path"],
            json_content={"OpenIdClients": {"Job": pulumi.Output.secret(desired["client_secret"])}},
            readers=desired["readers"],
        )
        SettingsFile("web-config", connection=connection, path=desired["plain"], content="<configuration />\n")

    return program


def test_a_file_with_readers_is_theirs_alone_and_a_hand_made_change_is_drift_repaired_by_up(
    simulated: Target, engine: Engine
) -> None:
    assert simulated.state_dir is not None
    suffix = uuid.uuid4().hex[:8]
    reader = accounts.add_account(simulated.state_dir, f"CONTOSO\\svc-agent-{suffix}", "user", "pw").name
    local_user = accounts.add_account(simulated.state_dir, f"SIMHOST\\user-{suffix}", "user", "pw").name
    folder = new_folder()
    desired = {
        "path": f"{folder}\\appsettings.agent.json",
        "plain": f"{folder}\\web.config",
        "client_secret": f"client-{uuid.uuid4().hex}",
        "readers": [reader],
    }
    stack = engine(protected_program(simulated, desired))
    assert stack.up().ok
    assert can_read(simulated, desired["path"], reader)
    assert not can_read(simulated, desired["path"], local_user)
    assert can_read(simulated, desired["plain"], local_user), "without readers a file takes C:\\'s permissions"
    assert stack.refresh(expect_no_changes=True).ok, "the protected permissions read back as declared"

    path = desired["path"]
    content = simulated.windows_file(path).read_bytes()
    cases: dict[str, list[tuple[str, ...]]] = {
        "a reader added": [("acl-edit", "--path", path, "--principal", local_user, "--rights", "R")],
        "inheritance on": [("acl-inheritance", "--path", path, "--mode", "e")],
        # An owner may always rewrite the DACL, then read (learn.microsoft.com "Owner of a New Object").
        "another owner": [("acl-owner", "--path", path, "--principal", local_user)],
        # Hardened by hand: only the reader may read it, the Administrators keep READ_CONTROL as its owner.
        "the reader alone": [
            ("acl-edit", "--path", path, "--principal", "NT AUTHORITY\\SYSTEM", "--remove"),
            ("acl-edit", "--path", path, "--principal", "BUILTIN\\Administrators", "--remove"),
        ],
    }
    for case, commands in cases.items():
        for command in commands:
            devhost_admin(simulated, *command)
        assert simulated.state_dir is not None
        store, alice = ntfs.NtfsStore(simulated.state_dir), accounts.token_sids(simulated.state_dir, local_user)
        exposed = {
            "a reader added": can_read(simulated, path, local_user),
            "inheritance on": can_read(simulated, path, local_user),
            "another owner": ntfs.access_granted(store, path, alice, ntfs.WRITE_DAC),
            "the reader alone": not ntfs.can_read_file(store, path, set(accounts.OPERATOR_TOKEN)),
        }
        assert exposed[case], case
        drift = stack.refresh(expect_no_changes=True)
        assert not drift.ok and "agent-settings" in drift.output, case
        assert "Access to the path" not in drift.output and "unauthorized" not in drift.output, drift.output
        preview = stack.preview(diff=True)
        assert preview.ok and "~ readers" in preview.stdout.replace("  ", " "), preview.stdout
        assert desired["client_secret"] not in preview.output
        mark = simulated.journal_mark()
        repaired = stack.up()
        assert repaired.ok and repaired.summary.get("update") == 1, repaired.output
        assert simulated.operations_since(mark).count("settings_file/set") == 1, "only the drifted file"
        assert not can_read(simulated, path, local_user) and can_read(simulated, path, reader)
        assert simulated.windows_file(path).read_bytes() == content, f"{case}: the content is left alone"
        assert not simulated.windows_file(path + ".bak").exists(), case
        assert stack.refresh(expect_no_changes=True).ok, case

    # An update keeps the previous version, as protected as the file; destroy takes it.
    desired["client_secret"] += "-rotated"
    assert stack.up().ok
    backup = desired["path"] + ".bak"
    assert read_host_file(simulated, backup) is not None
    assert can_read(simulated, backup, reader) and not can_read(simulated, backup, local_user)
    assert stack.destroy().ok
    leftovers = [p.name for p in simulated.windows_file(folder).iterdir()]
    assert leftovers == [], f"destroy leaves nothing behind: {leftovers}"


def test_a_file_deployed_without_readers_gets_them_on_the_next_up_its_content_untouched(
    simulated: Target, engine: Engine
) -> None:
    """An estate deployed before settings files were protected: one update, the ACL, nothing else."""
    assert simulated.state_dir is not None
    suffix = uuid.uuid4().hex[:8]
    reader = accounts.add_account(simulated.state_dir, f"CONTOSO\\svc-agent-{suffix}", "user", "pw").name
    local_user = accounts.add_account(simulated.state_dir, f"SIMHOST\\user-{suffix}", "user", "pw").name
    folder = new_folder()
    desired: dict[str, Any] = {
        "path": f"{folder}\\appsettings.agent.json",
        "plain": f"{folder}\\web.config",
        "client_secret": f"client-{uuid.uuid4().hex}",
        "readers": None,
    }
    stack = engine(protected_program(simulated, desired))
    assert stack.up().ok
    assert can_read(simulated, desired["path"], local_user), "the old behaviour: C:\\'s Users entry"
    before = simulated.windows_file(desired["path"]).read_bytes()

    desired["readers"] = [reader]
    preview = stack.preview(diff=True)
    assert preview.ok and "+ readers" in preview.stdout.replace("  ", " "), preview.stdout
    mark = simulated.journal_mark()
    upgraded = stack.up()
    assert upgraded.ok and upgraded.summary.get("update") == 1, upgraded.output
    assert simulated.operations_since(mark).count("settings_file/set") == 1
    assert simulated.windows_file(desired["path"]).read_bytes() == before, "content untouched"
    assert not simulated.windows_file(desired["path"] + ".bak").exists(), "no new version, no backup"
    assert not can_read(simulated, desired["path"], local_user) and can_read(simulated, desired["path"], reader)
    assert stack.refresh(expect_no_changes=True).ok
    assert stack.destroy().ok

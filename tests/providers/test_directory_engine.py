"""Directory through the real Pulumi CLI against the host under test (simulated unless configured)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from typing import Any

import pulumi
import pytest

from devhost.ops import SCRIPT_FACTS
from devhost.ps51 import check_script
from providers.directory import Directory
from providers.directory.provider import DirectoryProvider
from providers.scripting.runner import ScriptRef, render_script, run_script
from providers.transport.connection import HostConnection
from tests.support.engine import EngineStack
from tests.support.hosts import Target

Engine = Callable[[Callable[[], None]], EngineStack]
WORKING = ["Runtime", "Mails", "Sources", "Temp", "Work"]


def new_root() -> str:
    return f"C:\\UsercubeIacTests\\dir-{uuid.uuid4().hex[:8]}"


def conn(target: Target) -> HostConnection:
    return HostConnection.model_validate(target.connection)


def existing(target: Target, root: str, names: list[str]) -> list[str] | None:
    """The sub-folders of ``names`` the host has (None: no root)."""
    payload = {"path": root, "subfolders": names, "delete_contents": False}
    state = run_script(conn(target), ScriptRef("providers.directory", "get"), payload, resource="t").state
    return list(state["subfolders"]) if state["ensure"] == "present" else None


def write_file(target: Target, path: str) -> None:
    if target.simulated:
        target.windows_file(path).write_text("provisioning order")
        return
    payload = {
        "path": path,
        "content": "provisioning order",
        "encoding": "utf-8",
        "keep_backup": False,
        "readers": None,
    }
    run_script(conn(target), ScriptRef("providers.settings_file", "set"), payload, resource="t")


def remove_by_hand(target: Target, path: str, *, contents: bool = False) -> None:
    if target.simulated:
        folder = target.windows_file(path)
        if contents:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            folder.rmdir()
        return
    payload = {"path": path, "subfolders": [], "delete_contents": True, "created": [path]}
    run_script(conn(target), ScriptRef("providers.directory", "remove"), payload, resource="t")


def directory_program(target: Target, desired: dict[str, Any]) -> Callable[[], None]:
    def program() -> None:
        connection = {**target.connection, "password": pulumi.Output.secret(target.connection["password"])}
        folders = Directory(
            "working-directory",
            connection=connection,
            path=desired["path"],
            subfolders=desired["subfolders"],
            delete_contents=desired.get("delete_contents", False),
        )
        pulumi.export("folder_paths", folders.folder_paths)

    return program


@pytest.mark.engine
def test_lifecycle_and_destroy_keeps_folders_with_data(target: Target, engine: Engine) -> None:
    root = new_root()
    desired: dict[str, Any] = {"path": root, "subfolders": WORKING[:4]}
    stack = engine(directory_program(target, desired))
    try:
        created = stack.up()
        assert created.ok and created.summary.get("create") == 2, created.output
        assert existing(target, root, WORKING) == WORKING[:4]
        assert stack.outputs()["folder_paths"] == {name: f"{root}\\{name}" for name in WORKING[:4]}

        mark = target.journal_mark() if target.simulated else 0
        assert stack.up().summary == {"same": 2}
        if target.simulated:
            assert target.journal_since(mark) == [], "a no-op up must not talk to the host"

        desired["subfolders"] = WORKING
        preview = stack.preview(diff=True)
        assert preview.ok and "subfolders" in preview.stdout and '"Work"' in preview.stdout, preview.stdout
        assert existing(target, root, WORKING) == WORKING[:4], "preview applies nothing"
        updated = stack.up()
        assert updated.ok and updated.summary.get("update") == 1, updated.output
        assert existing(target, root, WORKING) == WORKING

        remove_by_hand(target, f"{root}\\Mails")  # an administrator deletes a folder
        drift = stack.refresh(expect_no_changes=True)
        assert not drift.ok and "working-directory" in drift.output, drift.output
        assert stack.up().ok
        assert existing(target, root, WORKING) == WORKING

        write_file(target, f"{root}\\Work\\order.xml")
        destroyed = stack.destroy()
        assert destroyed.ok, destroyed.output
        assert existing(target, root, WORKING) == ["Work"], "only the folder with data stays (and its parent)"
        assert "kept" in destroyed.output and f"{root}\\Work" in destroyed.output, "destroy says what it kept"
    finally:
        remove_by_hand(target, root, contents=True)


@pytest.mark.engine
def test_delete_contents_removes_what_it_created_but_never_a_folder_that_existed(
    target: Target, engine: Engine
) -> None:
    root = new_root()
    payload = {"path": root, "subfolders": ["Sources"], "delete_contents": False}
    run_script(conn(target), ScriptRef("providers.directory", "set"), payload, resource="t")  # there before
    write_file(target, f"{root}\\Sources\\connector.xml")
    desired = {"path": root, "subfolders": ["Sources", "Temp"], "delete_contents": True}
    stack = engine(directory_program(target, desired))
    try:
        assert stack.up().ok
        write_file(target, f"{root}\\Temp\\stdout-agent.log")
        assert stack.destroy().ok
        assert existing(target, root, ["Sources", "Temp"]) == ["Sources"]
    finally:
        remove_by_hand(target, root, contents=True)


@pytest.mark.engine
def test_a_file_where_a_folder_should_be_is_refused_naming_the_property(target: Target, engine: Engine) -> None:
    root = new_root()
    payload = {"path": root, "subfolders": [], "delete_contents": False}
    run_script(conn(target), ScriptRef("providers.directory", "set"), payload, resource="t")
    write_file(target, f"{root}\\Runtime")
    try:
        run = engine(directory_program(target, {"path": root, "subfolders": ["Runtime"]})).up()
        assert not run.ok and "PathIsNotAFolder" in run.output and "subfolders" in run.output, run.output
    finally:
        remove_by_hand(target, root, contents=True)


CONNECTION = {"host": "agent01.contoso.com", "username": "CONTOSO\\deploy", "password": "x"}
GOOD = {"connection": CONNECTION, "path": "C:\\identitymanagerContoso", "subfolders": WORKING}
BAD: list[tuple[str, dict[str, Any], str, str]] = [
    ("backslash in a name", {"subfolders": ["Runtime\\bin"]}, "subfolders", "not one folder name"),
    ("dot-dot", {"subfolders": [".."]}, "subfolders", "not one folder name"),
    ("forward slash", {"subfolders": ["a/b"]}, "subfolders", "not one folder name"),
    ("empty name", {"subfolders": [""]}, "subfolders", "not one folder name"),
    ("duplicate", {"subfolders": ["Work", "work"]}, "subfolders", "listed twice"),
    ("forbidden character", {"subfolders": ["Te?mp"]}, "subfolders", "forbids"),
    ("reserved name", {"subfolders": ["NUL"]}, "subfolders", "reserved device name"),
    ("trailing dot", {"subfolders": ["Temp."]}, "subfolders", "space or dot"),
    ("relative path", {"path": "identitymanager"}, "path", "not an absolute Windows path"),
    ("forward slashes in path", {"path": "C:/identitymanager"}, "path", "backslashes"),
    ("drive root", {"path": "C:\\"}, "path", "drive root"),
    ("misspelt property", {"folders": ["Work"]}, "folders", "not a property"),
    ("path over MAX_PATH", {"path": "C:\\" + "a" * 250}, "path", "Windows PowerShell 5.1"),
    ("sub-folder over MAX_PATH", {"path": "C:\\" + "a" * 240, "subfolders": ["Workspace1"]}, "subfolders", "247"),
]


@pytest.mark.parametrize(("name", "change", "prop", "fragment"), BAD, ids=[c[0] for c in BAD])
def test_bad_input_names_the_property(name: str, change: dict[str, Any], prop: str, fragment: str) -> None:
    result = DirectoryProvider().check({}, {**GOOD, **change})
    assert any(f.reason.startswith(f"{prop}: ") and fragment in f.reason for f in result.failures), [
        f.reason for f in result.failures
    ]


@pytest.mark.engine
def test_bad_input_in_a_program_makes_no_host_call(simulated: Target, engine: Engine) -> None:
    mark = simulated.journal_mark()
    run = engine(directory_program(simulated, {"path": "C:\\im", "subfolders": ["Work", "..\\Windows"]})).up()
    assert not run.ok and "subfolders" in run.output and "not one folder name" in run.output
    assert simulated.journal_since(mark) == []


def test_delete_contents_removes_a_junction_inside_the_tree_never_its_target(simulated: Target) -> None:
    # R8: Remove-Item -Recurse in Windows PowerShell 5.1 descends into a junction (mklink /J) and empties
    # its target; the script removes the link itself.
    root, outside = new_root(), new_root()
    kept = simulated.windows_file(outside)
    kept.mkdir(parents=True)
    (kept / "orders.xml").write_text("provisioning order")
    work = simulated.windows_file(f"{root}\\Work")
    work.mkdir(parents=True)
    (work / "data.txt").write_text("x")
    (work / "link").symlink_to(kept, target_is_directory=True)
    payload = {"path": root, "subfolders": ["Work"], "delete_contents": True, "created": [root, f"{root}\\Work"]}
    result = run_script(conn(simulated), ScriptRef("providers.directory", "remove"), payload, resource="t")
    assert result.state["ensure"] == "absent" and not simulated.windows_file(root).exists()
    assert (kept / "orders.xml").read_text() == "provisioning order", "the junction's target is untouched"


@pytest.mark.parametrize("replaced", ["Work", ""], ids=["sub-folder", "root"])
def test_delete_contents_removes_a_created_folder_replaced_by_a_junction_never_its_target(
    simulated: Target, replaced: str
) -> None:
    # Review: an administrator moved a created folder's data to another disk and left a junction
    # (mklink /J) in its place. Listing the junction lists the target, so the unfixed Remove-FolderTree,
    # which only checked nested entries, deleted the moved data; the script now removes the link only.
    root, outside = new_root(), new_root()
    moved = simulated.windows_file(outside)
    (moved / "Work").mkdir(parents=True)
    (moved / "orders.xml").write_text("provisioning order")
    (moved / "Work" / "sync.csv").write_text("data")
    folder = f"{root}\\{replaced}" if replaced else root
    link = simulated.windows_file(folder)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(moved, target_is_directory=True)
    assert {p.name for p in link.iterdir()} == {"Work", "orders.xml"}, "entering the link lists the moved data"
    created = [root, f"{root}\\Work"]
    payload = {"path": root, "subfolders": ["Work"], "delete_contents": True, "created": created}
    result = run_script(conn(simulated), ScriptRef("providers.directory", "remove"), payload, resource="t")
    assert result.state["ensure"] == "absent" and not simulated.windows_file(root).exists()
    assert (moved / "orders.xml").read_text() == "provisioning order", "the junction's target is untouched"
    assert (moved / "Work" / "sync.csv").read_text() == "data"


def test_the_unfixed_remove_script_is_refused_by_the_model() -> None:
    # The text that entered a root junction is not one the directory model describes.
    script = render_script(ScriptRef("providers.directory", "remove"))
    fixed = "    if (Test-ReparsePoint $Folder) {\n        [System.IO.Directory]::Delete($Folder.FullName, $false)\n"
    assert fixed in script
    unfixed = script.replace(fixed, "    if ($false) {\n")
    problems = check_script(SCRIPT_FACTS, "directory/remove", unfixed)
    assert len(problems) == 1 and "junction" in problems[0]


@pytest.mark.engine
def test_import_option_is_refused_with_what_to_do_instead(simulated: Target, engine: Engine) -> None:
    # The dynamic provider's Read gets no properties on import ("Exception calling application:
    # '__provider'"); the resource refuses import_ before that, naming the way that works.
    root = new_root()

    def program() -> None:
        Directory(
            "adopted",
            connection=simulated.connection,
            path=root,
            opts=pulumi.ResourceOptions(import_=root),
        )

    mark = simulated.journal_mark()
    run = engine(program).up()
    assert not run.ok and "cannot adopt an existing object" in run.output
    assert "declare the resource with the object's current settings" in run.output
    assert "'__provider'" not in run.output
    assert simulated.operations_since(mark) == []

"""FileAcl through the real Pulumi CLI against the host under test (simulated unless configured)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest

from devhost import accounts, ntfs, ps51
from devhost.fs import WindowsFs
from devhost.ops import SCRIPT_FACTS
from devhost.ops import file_acl as acl_model
from providers.directory import Directory
from providers.file_acl import FileAcl
from providers.file_acl.provider import FileAclProvider
from providers.scripting.errors import HostOperationFailed
from providers.scripting.runner import ScriptRef, render_script, run_script
from providers.transport.connection import HostConnection
from tests.support.engine import EngineStack
from tests.support.hosts import Target

Engine = Callable[[Callable[[], None]], EngineStack]
BOTH = ["ContainerInherit", "ObjectInherit"]
MODIFY = 0x301BF
READ_AND_EXECUTE = 0x200A9


def new_folder() -> str:
    return f"C:\\UsercubeIacTests\\acl-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def principals(target: Target) -> tuple[tuple[str, str], tuple[str, str]]:
    """Two accounts (name, SID) with no entries of their own on a new folder: ours and a neighbour's."""
    if target.simulated:
        assert target.state_dir is not None
        suffix = uuid.uuid4().hex[:6]
        ours = accounts.add_account(target.state_dir, f"CONTOSO\\svc-agent-{suffix}", "user", "pw")
        other = accounts.add_account(target.state_dir, f"CONTOSO\\gmsa-{suffix}$", "gmsa")
        return (ours.name, ours.sid), (other.name, other.sid)
    return ("NT AUTHORITY\\NETWORK SERVICE", "S-1-5-20"), ("NT AUTHORITY\\LOCAL SERVICE", "S-1-5-19")


def conn(target: Target) -> HostConnection:
    return HostConnection.model_validate(target.connection)


def host_entries(target: Target, path: str, principal: str, access: str = "Allow") -> list[dict[str, Any]]:
    """The principal's explicit entries of that type, as the host reports them."""
    payload = {"path": path, "principal": principal, "access": access, "mask": 1, "inheritance": None}
    state = run_script(
        conn(target), ScriptRef("providers.file_acl", "get"), {**payload, "propagation": []}, resource="t"
    ).state
    return list(state["entries"])


def grant_by_hand(target: Target, path: str, principal: str, mask: int, inheritance: list[str]) -> None:
    """An administrator adds an entry (icacls /grant): merged into an entry of the same kind."""
    if target.simulated:
        assert target.state_dir is not None
        acl_model.admin_edit_entry(target.state_dir, path, principal, mask, inheritance=inheritance)
        return
    payload = {"path": path, "principal": principal, "access": "Allow", "mask": mask, "inheritance": inheritance}
    run_script(conn(target), ScriptRef("providers.file_acl", "set"), {**payload, "propagation": []}, resource="t")


def make_folder(target: Target, path: str) -> None:
    if target.simulated:
        target.windows_file(path).mkdir(parents=True, exist_ok=True)
        return
    payload = {"path": path, "subfolders": [], "delete_contents": False}
    run_script(conn(target), ScriptRef("providers.directory", "set"), payload, resource="t")


def remove_tree(target: Target, path: str) -> None:
    if target.simulated:
        assert target.state_dir is not None
        shutil.rmtree(target.windows_file(path), ignore_errors=True)
        ntfs.NtfsStore(target.state_dir).forget(path)
        return
    payload = {"path": path, "subfolders": [], "delete_contents": True, "created": [path]}
    run_script(conn(target), ScriptRef("providers.directory", "remove"), payload, resource="t")


def acl_program(target: Target, desired: dict[str, Any]) -> Callable[[], None]:
    """A Directory (root + Work) and two FileAcl entries whose inputs are read from ``desired``."""

    def program() -> None:
        connection = {**target.connection, "password": pulumi.Output.secret(target.connection["password"])}
        folders = Directory("folders", connection=connection, path=desired["root"], subfolders=["Work"])
        after = pulumi.ResourceOptions(depends_on=[folders])
        root = FileAcl(
            "acl-root",
            connection=connection,
            path=desired["root"],
            principal=desired["principal"],
            rights=desired["root_rights"],
            opts=after,
        )
        FileAcl(
            "acl-work",
            connection=connection,
            path=f"{desired['root']}\\Work",
            principal=desired["principal"],
            rights=desired["work_rights"],
            opts=after,
        )
        pulumi.export("sid", root.principal_sid)
        pulumi.export("mask", root.access_mask)

    return program


@pytest.mark.engine
def test_lifecycle_keeps_other_principals_and_repairs_drift(target: Target, engine: Engine, principals: Any) -> None:
    (ours, our_sid), (other, _) = principals
    root = new_folder()
    make_folder(target, root)  # existed before the stack, with another account's explicit entry
    grant_by_hand(target, root, other, MODIFY, BOTH)
    neighbour = host_entries(target, root, other)
    desired = {
        "root": root,
        "principal": ours,
        "root_rights": ["Read", "ReadAndExecute", "ListDirectory"],  # the manual's words
        "work_rights": ["Modify"],
    }
    stack = engine(acl_program(target, desired))
    try:
        first = stack.up()
        assert first.ok, first.output
        assert first.summary.get("create") == 4  # stack, directory, two entries
        assert stack.outputs()["sid"] == our_sid
        [entry] = host_entries(target, root, ours)
        assert entry["mask"] == ntfs.SYNCHRONIZE | READ_AND_EXECUTE and entry["inheritance"] == BOTH
        assert host_entries(target, root, other) == neighbour, "another account's entry survives create"

        mark = target.journal_mark() if target.simulated else 0
        again = stack.up()
        assert again.ok and again.summary == {"same": 4}, again.output
        if target.simulated:
            assert "file_acl/set" not in target.operations_since(mark)

        desired["work_rights"] = ["FullControl"]
        preview = stack.preview(diff=True)
        assert preview.ok and "rights" in preview.stdout and "FullControl" in preview.stdout, preview.stdout
        updated = stack.up()
        assert updated.ok and updated.summary.get("update") == 1, updated.output
        assert host_entries(target, f"{root}\\Work", ours)[0]["mask"] & 0xF01FF == 0xF01FF

        grant_by_hand(target, root, ours, 0x116, BOTH)  # an administrator adds Write by hand
        drift = stack.refresh(expect_no_changes=True)
        assert not drift.ok and "acl-root" in drift.output, drift.output
        repaired = stack.up()
        assert repaired.ok and repaired.summary.get("update") == 1, repaired.output
        assert [e["mask"] for e in host_entries(target, root, ours)] == [ntfs.SYNCHRONIZE | READ_AND_EXECUTE]
        assert host_entries(target, root, other) == neighbour, "and survives update"

        destroyed = stack.destroy()
        assert destroyed.ok, destroyed.output
        assert host_entries(target, root, ours) == []
        assert host_entries(target, root, other) == neighbour, "and survives destroy"
    finally:
        remove_tree(target, root)


def single_program(target: Target, desired: dict[str, Any]) -> Callable[[], None]:
    def program() -> None:
        connection = {**target.connection, "password": pulumi.Output.secret(target.connection["password"])}
        FileAcl(
            "acl",
            connection=connection,
            path=desired["path"],
            principal=desired["principal"],
            rights=desired["rights"],
            access=desired.get("access", "Allow"),
            inheritance=desired.get("inheritance"),
        )

    return program


@pytest.mark.engine
def test_sid_and_expanded_rights_are_no_diff_and_inherited_is_not_explicit(
    target: Target, engine: Engine, principals: Any
) -> None:
    (ours, our_sid), _ = principals
    parent = new_folder()
    child = f"{parent}\\Runtime"
    make_folder(target, child)
    grant_by_hand(target, parent, ours, READ_AND_EXECUTE, BOTH)  # inherited by child: not ours to manage
    assert host_entries(target, child, ours) == [], "an inherited entry is never reported as explicit"
    desired: dict[str, Any] = {"path": child, "principal": ours, "rights": ["ReadAndExecute"]}
    stack = engine(single_program(target, desired))
    try:
        created = stack.up()
        assert created.ok and created.summary.get("create") == 2, created.output
        assert stack.refresh(expect_no_changes=True).ok

        desired["principal"] = our_sid.lower()  # the same account, given by SID
        desired["rights"] = ["Read", "Traverse"]  # ReadAndExecute, expanded
        preview = stack.preview(diff=True)
        assert preview.ok and preview.summary == {"same": 2}, preview.output

        assert stack.destroy().ok
        assert host_entries(target, child, ours) == []
        assert len(host_entries(target, parent, ours)) == 1, "the parent's entry is not this resource's"
    finally:
        remove_tree(target, parent)


@pytest.mark.engine
def test_deny_on_a_file_and_host_side_refusals(target: Target, engine: Engine, principals: Any) -> None:
    (ours, _), _ = principals
    folder = new_folder()
    file_path = f"{folder}\\appsettings.json"
    if target.simulated:
        target.windows_file(file_path).parent.mkdir(parents=True)
        target.windows_file(file_path).write_text("{}")
    else:
        payload = {"path": file_path, "content": "{}", "encoding": "utf-8", "keep_backup": False, "readers": None}
        run_script(conn(target), ScriptRef("providers.settings_file", "set"), payload, resource="t")
    desired: dict[str, Any] = {"path": file_path, "principal": ours, "rights": ["Write"], "access": "Deny"}
    stack = engine(single_program(target, desired))
    try:
        assert stack.up().ok
        [entry] = host_entries(target, file_path, ours, "Deny")
        assert entry == {"mask": 0x116, "inheritance": [], "propagation": []}  # no Synchronize on a deny entry
        assert stack.up().summary == {"same": 2}

        desired["inheritance"] = ["ContainerInherit"]
        refused = stack.up()
        assert not refused.ok and "InheritanceOnFile" in refused.output and "inheritance" in refused.output
        assert host_entries(target, file_path, ours, "Deny") == [entry], "nothing changed"
        desired["inheritance"] = None
        assert stack.destroy().ok
        assert host_entries(target, file_path, ours, "Deny") == []

        missing = {**desired, "path": f"{folder}\\missing"}
        with pytest.raises(HostOperationFailed, match=r"PathNotFound.*Could not find a part of the path"):
            FileAclProvider().create({"connection": target.connection, **missing, "propagation": []})
    finally:
        remove_tree(target, folder)


@pytest.mark.engine
def test_unknown_account_fails_naming_the_principal(target: Target, engine: Engine) -> None:
    folder = new_folder()
    make_folder(target, folder)
    desired = {"path": folder, "principal": "IIS AppPool\\NoSuchPool", "rights": ["Read"]}
    try:
        run = engine(single_program(target, desired)).up()
        assert not run.ok
        assert "[IdentityNotMapped]" in run.output or "IdentityNotMapped" in run.output
        assert "could not be translated" in run.output and "principal" in run.output
    finally:
        remove_tree(target, folder)


# -- the simulator's virtual accounts and the diff by SID, without the engine --------------------------------


@pytest.fixture
def pools() -> Iterator[list[str]]:
    """In this process only: IIS APPPOOL accounts for the pools listed (restored afterwards)."""
    saved = dict(accounts._virtual_domains)
    names = ["Agent"]
    accounts.register_virtual_domain("IIS APPPOOL", 82, lambda _state: list(names))
    yield names
    accounts._virtual_domains.clear()
    accounts._virtual_domains.update(saved)


def test_virtual_account_by_name_and_by_sid_is_one_entry(tmp_path: Path, pools: list[str]) -> None:
    fs = WindowsFs(tmp_path)
    fs.resolve("C:\\im").mkdir(parents=True)
    spec = {"path": "C:\\im", "principal": "IIS AppPool\\Agent", "access": "Allow", "mask": MODIFY}
    spec |= {"inheritance": None, "propagation": []}
    created = acl_model.set_(fs, spec)
    assert created.ok and created.changed
    sid = created.state["principal_sid"]
    assert sid == accounts.virtual_sid(82, "Agent") and created.state["principal_name"] == "IIS APPPOOL\\Agent"
    again = acl_model.set_(fs, {**spec, "principal": sid})
    assert again.ok and not again.changed, "the SID is the same account: no change"
    pools.clear()  # the pool is deleted: its account no longer translates...
    refused = acl_model.set_(fs, spec)
    assert not refused.ok and refused.error and refused.error["id"] == "IdentityNotMapped"
    removed = acl_model.remove(fs, {**spec, "principal_sid": sid})  # ...but its entry is still removable
    assert removed.ok and removed.changed and acl_model.get(fs, {**spec, "principal": sid}).state["entries"] == []


def test_well_known_principals_by_english_name_on_a_german_windows(tmp_path: Path) -> None:
    """NTAccount.Translate knows only the host language's names; the script's table maps the English ones."""
    fs = WindowsFs(tmp_path)
    fs.resolve("C:\\im").mkdir(parents=True)
    accounts.set_display_language(fs.root, "de-DE")
    with pytest.raises(accounts.IdentityNotMapped):
        accounts.resolve(fs.root, "BUILTIN\\Users")  # what NTAccount.Translate does there
    spec = {"path": "C:\\im", "principal": "BUILTIN\\Users", "access": "Allow", "mask": MODIFY}
    spec |= {"inheritance": None, "propagation": []}
    created = acl_model.set_(fs, spec)
    assert created.ok, created.error
    assert created.state["principal_sid"] == accounts.USERS
    assert created.state["principal_name"] == "VORDEFINIERT\\Benutzer", "printed back in the host's language"
    removed = acl_model.remove(fs, {**spec, "principal_sid": accounts.USERS})
    assert removed.ok and removed.changed
    script = render_script(ScriptRef("providers.file_acl", "set"))
    old = script.replace(
        "    if ($WellKnownAccountSids.ContainsKey($Name)) { return (New-Object "
        "System.Security.Principal.SecurityIdentifier($WellKnownAccountSids[$Name])) }\n",
        "",
    )
    assert old != script
    assert any("before NTAccount.Translate" in p for p in ps51.check_script(SCRIPT_FACTS, "file_acl/set", old))


def test_diff_compares_principals_by_sid_without_a_host_call() -> None:
    olds: dict[str, Any] = {
        "principal": "IIS AppPool\\Agent",
        "principal_sid": "S-1-5-82-1",
        "principal_name": "IIS APPPOOL\\Agent",
    }
    olds |= {"path": "C:\\im", "rights": ["Modify"], "access": "Allow", "inheritance": None, "propagation": []}
    for principal in ("iis apppool\\agent", "S-1-5-82-1", "IIS APPPOOL\\Agent"):
        result = FileAclProvider().diff("id", olds, {**olds, "principal": principal, "path": "c:\\IM"})
        assert result.changes is False, principal
    changed = FileAclProvider().diff("id", olds, {**olds, "rights": ["FullControl"]})
    assert changed.changes is True and changed.replaces == []
    moved = FileAclProvider().diff("id", olds, {**olds, "access": "Deny"})
    assert moved.replaces == ["access"] and moved.delete_before_replace is True


# -- bad input: refused by check, naming the property, before any host call -------------------------------

CONNECTION = {"host": "agent01.contoso.com", "username": "CONTOSO\\deploy", "password": "x"}
GOOD = {"connection": CONNECTION, "path": "C:\\identitymanager", "principal": "IIS AppPool\\Agent", "rights": ["Read"]}
BAD: list[tuple[str, dict[str, Any], str, str]] = [
    ("unknown right", {"rights": ["ReadWrite"]}, "rights", "not a file-system right"),
    ("synchronize", {"rights": ["Synchronize"]}, "rights", "added by Windows"),
    ("no rights", {"rights": []}, "rights", "grants nothing"),
    ("relative path", {"path": "identitymanager\\Runtime"}, "path", "not an absolute Windows path"),
    ("forward slashes", {"path": "C:/identitymanager"}, "path", "backslashes"),
    ("empty principal", {"principal": "  "}, "principal", "is empty"),
    ("bad SID", {"principal": "S-1-5-x-12"}, "principal", "not a valid SID"),
    ("two backslashes", {"principal": "A\\B\\C"}, "principal", "not an account name"),
    ("forbidden character", {"principal": "CONTOSO\\svc*"}, "principal", "forbids"),
    ("unknown access", {"access": "Audit"}, "access", "Allow"),
    ("InheritOnly without inheritance", {"inheritance": [], "propagation": ["InheritOnly"]}, "propagation", "needs"),
    ("unknown inheritance", {"inheritance": ["SubFolders"]}, "inheritance.0", "ContainerInherit"),
    ("None with a flag", {"propagation": ["None", "InheritOnly"]}, "propagation", "alone"),
]


@pytest.mark.parametrize(("name", "change", "prop", "fragment"), BAD, ids=[c[0] for c in BAD])
def test_bad_input_names_the_property(name: str, change: dict[str, Any], prop: str, fragment: str) -> None:
    result = FileAclProvider().check({}, {**GOOD, **change})
    assert any(f.reason.startswith(f"{prop}: ") and fragment in f.reason for f in result.failures), [
        f.reason for f in result.failures
    ]


def test_good_input_is_normalized() -> None:
    result = FileAclProvider().check({}, {**GOOD, "rights": ["ListDirectory", "Read", "ReadAndExecute", "readdata"]})
    assert result.failures == []
    assert result.inputs["rights"] == ["ReadAndExecute"] and result.inputs["inheritance"] is None
    expanded = FileAclProvider().check({}, {**GOOD, "rights": ["Write", "ReadAndExecute", "Delete"]})
    assert expanded.inputs["rights"] == ["Modify"]


@pytest.mark.engine
def test_bad_input_in_a_program_makes_no_host_call(simulated: Target, engine: Engine) -> None:
    desired = {"path": "C:/identitymanager", "principal": "IIS AppPool\\Agent", "rights": ["Read", "Bogus"]}
    mark = simulated.journal_mark()
    run = engine(single_program(simulated, desired)).up()
    assert not run.ok and "backslashes" in run.output and "not a file-system right" in run.output
    assert simulated.journal_since(mark) == []


def test_a_non_canonical_acl_is_refused_with_a_clear_error(simulated: Target, principals: Any) -> None:
    # R11: .NET refuses to change a DACL with an allow entry before a deny entry ("not in canonical form").
    assert simulated.state_dir is not None
    path = new_folder()
    make_folder(simulated, path)
    (name, _), (_, other_sid) = principals
    store = ntfs.NtfsStore(simulated.state_dir)
    store.set_descriptor(
        path,
        ntfs.Descriptor(
            explicit=[ntfs.Ace(other_sid, ntfs.READ_AND_EXECUTE), ntfs.Ace(other_sid, 0x2, allow=False)],
        ),
    )
    payload = {"path": path, "principal": name, "access": "Allow", "mask": ntfs.MODIFY, "inheritance": None}
    with pytest.raises(HostOperationFailed, match="canonical order") as failed:
        run_script(
            conn(simulated), ScriptRef("providers.file_acl", "set"), {**payload, "propagation": []}, resource="t"
        )
    assert "AclNotCanonical" in str(failed.value)
    remove_tree(simulated, path)
    # The fix is a script statement the model is held to: without it (the unfixed set.ps1 / remove.ps1), or
    # with it after the first change of the DACL, the script is refused.
    start = "if (-not $security.AreAccessRulesCanonical) {"
    for operation in ("set", "remove"):
        text = render_script(ScriptRef("providers.file_acl", operation))
        assert ps51.check_script(SCRIPT_FACTS, f"file_acl/{operation}", text) == []
        check = text[text.index(start) : text.index("}", text.index("AclNotCanonical")) + 2]
        assert ps51.check_script(SCRIPT_FACTS, f"file_acl/{operation}", text.replace(check, "")), operation
        first_change = "    $security.RemoveAccessRuleSpecific($entry.rule)\n"
        late = text.replace(check, "").replace(first_change, first_change + check)
        assert late != text and ps51.check_script(SCRIPT_FACTS, f"file_acl/{operation}", late), operation

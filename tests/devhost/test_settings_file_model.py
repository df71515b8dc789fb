"""SIMULATOR: settings files with secrets keep protected permissions through every way of writing them,
and the NTFS rules they rely on (ReplaceFile, MoveFile, access checks) behave as Windows documents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devhost import accounts, ntfs, ps51, win32_files
from devhost.fs import PathTooLongError, WindowsFs
from devhost.ops import SCRIPT_FACTS, file_acl, settings_file
from providers.scripting.runner import ScriptRef, render_script
from providers.settings_file.model import MAX_PATH_LENGTH

PATH = "C:\\im\\Runtime\\appsettings.agent.json"
READER = "CONTOSO\\svc-agent"
LOCAL_USER = "SIMHOST\\alice"


@pytest.fixture
def fs(tmp_path: Path) -> WindowsFs:
    accounts.add_account(tmp_path, READER, "user", "pw")
    accounts.add_account(tmp_path, LOCAL_USER, "user", "pw")
    return WindowsFs(tmp_path)


def spec(content: str, readers: list[str] | None = None, keep_backup: bool = True) -> dict[str, Any]:
    return {"path": PATH, "content": content, "encoding": "utf-8", "keep_backup": keep_backup, "readers": readers}


def can_read(fs: WindowsFs, path: str, who: str) -> bool:
    try:
        file_acl.admin_read_as(fs.root, path, who)
    except PermissionError:
        return False
    return True


def faults(fs: WindowsFs, *codes: int) -> None:
    (fs.root / "_sim").mkdir(exist_ok=True)
    (fs.root / "_sim" / win32_files.REPLACE_FAULTS).write_text(json.dumps(list(codes)))


# -- Windows rules ----------------------------------------------------------------------------------


def test_access_check_walks_the_dacl_in_order(tmp_path: Path) -> None:
    user, other = "S-1-5-21-1-2-3-1001", "S-1-5-21-1-2-3-1002"
    tokens = {user, accounts.USERS}
    assert ntfs.granted_rights([ntfs.Ace(accounts.USERS, 0x120089)], tokens) & ntfs.FILE_READ_DATA
    denied_first = [ntfs.Ace(user, 0x1, allow=False), ntfs.Ace(accounts.USERS, 0x120089)]
    assert not ntfs.granted_rights(denied_first, tokens) & ntfs.FILE_READ_DATA, "a deny entry before wins"
    granted_first = [ntfs.Ace(accounts.USERS, 0x120089), ntfs.Ace(user, 0x1, allow=False)]
    assert ntfs.granted_rights(granted_first, tokens) & ntfs.FILE_READ_DATA, "a deny entry after is too late"
    inherit_only = ntfs.Ace(user, 0x120089, propagation=frozenset({ntfs.INHERIT_ONLY}))
    assert ntfs.granted_rights([inherit_only], tokens) == 0, "an inherit-only entry does not apply to the object"
    assert ntfs.granted_rights([ntfs.Ace(user, 0x80000000)], tokens) & ntfs.FILE_READ_DATA, "GENERIC_READ maps"
    assert ntfs.granted_rights([ntfs.Ace(other, ntfs.FULL_CONTROL)], tokens) == 0, "nobody granted: denied"


def test_tokens_carry_the_groups_windows_gives_them(fs: WindowsFs) -> None:
    alice = accounts.token_sids(fs.root, LOCAL_USER)
    assert {accounts.USERS, accounts.EVERYONE, accounts.AUTHENTICATED_USERS} <= alice
    assert accounts.ADMINISTRATORS not in alice and accounts.IIS_IUSRS not in alice
    assert accounts.ADMINISTRATORS in accounts.token_sids(fs.root, "LocalSystem")
    with pytest.raises(ValueError, match="group"):
        accounts.token_sids(fs.root, "BUILTIN\\Users")


def test_a_new_file_inherits_the_drive_root_so_every_local_user_reads_it(fs: WindowsFs) -> None:
    """Where the issue starts: C:\\ grants BUILTIN\\Users Read & execute, inherited by every new file."""
    assert settings_file.set_(fs, spec("{}")).ok
    assert can_read(fs, PATH, LOCAL_USER)


def test_replacefile_gives_the_result_the_replaced_files_dacl_and_the_backup_keeps_its_own(tmp_path: Path) -> None:
    store = ntfs.NtfsStore(tmp_path)
    protected = ntfs.Descriptor(protected=True, explicit=[ntfs.Ace(accounts.SYSTEM, ntfs.FULL_CONTROL)])
    store.set_descriptor("C:\\a\\f.json", protected)
    store.set_descriptor("C:\\a\\f.tmp", ntfs.Descriptor(owner="S-1-5-21-1-2-3-1001"))
    store.replace_file("C:\\a\\f.json", "C:\\a\\f.tmp", "C:\\a\\f.json.bak")
    result = store.descriptor("C:\\a\\f.json")
    assert result.protected and result.explicit == protected.explicit, "the DACL of the replaced file"
    assert result.owner == "S-1-5-21-1-2-3-1001", "the replacement's file object (same file ID), its owner"
    assert store.descriptor("C:\\a\\f.json.bak") == protected, "the replaced file renamed: its own descriptor"
    assert store.descriptor("C:\\a\\f.tmp") == ntfs.Descriptor(), "the replacement name is gone"
    # And a replaced file that inherited makes the result inherit, whatever the replacement carried.
    store.set_descriptor("C:\\a\\g.tmp", protected)
    store.replace_file("C:\\a\\g.json", "C:\\a\\g.tmp", None)
    assert not store.descriptor("C:\\a\\g.json").protected


def test_a_moved_file_keeps_its_descriptor(tmp_path: Path) -> None:
    store = ntfs.NtfsStore(tmp_path)
    protected = ntfs.Descriptor(protected=True, explicit=[ntfs.Ace(accounts.SYSTEM, ntfs.FULL_CONTROL)])
    store.set_descriptor("C:\\a\\.f.tmp", protected)
    store.set_descriptor("C:\\a\\f.json", ntfs.Descriptor(explicit=[ntfs.Ace(accounts.USERS, 0x120089)]))
    store.rename("C:\\a\\.f.tmp", "C:\\a\\f.json")
    assert store.descriptor("C:\\a\\f.json") == protected, "MoveFileEx replaced the file and its descriptor"
    store.rename("C:\\a\\none.tmp", "C:\\a\\f.json")
    assert store.descriptor("C:\\a\\f.json") == ntfs.Descriptor(), "a file without its own descriptor inherits"


def test_icacls_inheritance_switches(fs: WindowsFs) -> None:
    assert settings_file.set_(fs, spec("{}", readers=[READER])).ok
    enabled = file_acl.admin_set_inheritance(fs.root, PATH, "e")
    assert not enabled["protected"] and can_read(fs, PATH, LOCAL_USER), "C:\\'s Users entry reaches it again"
    copied = file_acl.admin_set_inheritance(fs.root, PATH, "d")
    assert copied["protected"] and accounts.USERS in [e["sid"] for e in copied["explicit"]], "inherited: copied"
    assert can_read(fs, PATH, LOCAL_USER)


# -- The settings file model ------------------------------------------------------------------------


def test_a_file_with_readers_is_protected_from_its_creation(fs: WindowsFs) -> None:
    created = settings_file.set_(fs, spec('{"Secret": "s"}', readers=[READER]))
    assert created.ok, created.error
    assert created.state["acl"]["protected"] is True
    sids = [(e["sid"], e["access"], e["mask"], e["inherited"]) for e in created.state["acl"]["entries"]]
    reader_sid = accounts.resolve(fs.root, READER).sid
    assert sids == [
        (accounts.SYSTEM, "Allow", ntfs.FULL_CONTROL, False),
        (accounts.ADMINISTRATORS, "Allow", ntfs.FULL_CONTROL, False),
        (reader_sid, "Allow", 0x120089, False),
    ]
    assert created.state["reader_sids"] == [reader_sid]
    assert can_read(fs, PATH, READER) and can_read(fs, PATH, "LocalSystem")
    assert not can_read(fs, PATH, LOCAL_USER)
    assert settings_file.set_(fs, spec('{"Secret": "s"}', readers=[READER])).changed is False


def test_a_hand_made_change_is_reported_and_only_the_permissions_are_repaired(fs: WindowsFs) -> None:
    assert settings_file.set_(fs, spec("{}", readers=[READER])).ok
    file_acl.admin_edit_entry(fs.root, PATH, LOCAL_USER, "R")
    assert can_read(fs, PATH, LOCAL_USER)
    repaired = settings_file.set_(fs, spec("{}", readers=[READER]))
    assert repaired.ok and [c["property"] for c in repaired.changes] == ["readers"], "content untouched"
    assert any("alice" in line for line in repaired.changes[0]["before"])
    assert not can_read(fs, PATH, LOCAL_USER)


def test_an_existing_file_is_protected_before_its_new_content_arrives(fs: WindowsFs) -> None:
    """An install from before: the file inherits. ReplaceFile would carry that DACL over to the new content,
    so the permissions are set on the old file first, and the backup is protected with it."""
    assert settings_file.set_(fs, spec("old secret")).ok
    assert can_read(fs, PATH, LOCAL_USER)
    updated = settings_file.set_(fs, spec("new secret", readers=[READER]))
    assert updated.ok and [c["property"] for c in updated.changes] == ["readers", "content"]
    assert fs.resolve(PATH).read_text() == "new secret"
    assert not can_read(fs, PATH, LOCAL_USER) and can_read(fs, PATH, READER)
    assert fs.resolve(PATH + ".bak").read_text() == "old secret"
    assert not can_read(fs, PATH + ".bak", LOCAL_USER), "the previous secret is protected too"


def test_a_backup_left_readable_is_repaired(fs: WindowsFs) -> None:
    assert settings_file.set_(fs, spec("v1", readers=[READER])).ok
    assert settings_file.set_(fs, spec("v2", readers=[READER])).ok
    file_acl.admin_set_inheritance(fs.root, PATH + ".bak", "e")
    assert can_read(fs, PATH + ".bak", LOCAL_USER)
    repaired = settings_file.set_(fs, spec("v2", readers=[READER]))
    assert [c["property"] for c in repaired.changes] == ["backup_readers"]
    assert not can_read(fs, PATH + ".bak", LOCAL_USER)


@pytest.mark.parametrize(("codes", "keep_backup"), [((1176,), False), ((1177,), True), ((1177,), False), ((32,), True)])
def test_the_new_content_is_never_readable_by_others_whatever_replacefile_does(
    fs: WindowsFs, codes: tuple[int, ...], keep_backup: bool
) -> None:
    assert settings_file.set_(fs, spec("old", [READER], keep_backup)).ok
    faults(fs, *codes)
    result = settings_file.set_(fs, spec("new", [READER], keep_backup))
    assert result.ok, result.error
    assert fs.resolve(PATH).read_text() == "new"
    assert not can_read(fs, PATH, LOCAL_USER) and can_read(fs, PATH, READER)
    for leftover in fs.resolve(PATH).parent.iterdir():
        assert not can_read(fs, fs.to_windows(leftover), LOCAL_USER), leftover.name


def test_an_unknown_reader_stops_set_and_get_reports_it_unresolved(fs: WindowsFs) -> None:
    refused = settings_file.set_(fs, spec("{}", readers=["IIS APPPOOL\\Missing"]))
    assert not refused.ok and refused.error is not None
    assert refused.error["id"] == "IdentityNotMapped" and refused.error["property"] == "readers"
    assert "application pool must exist" in refused.error["message"]
    assert not fs.resolve(PATH).exists(), "nothing written"
    assert settings_file.set_(fs, spec("{}", readers=[READER])).ok
    got = settings_file.get(fs, spec("{}", readers=[READER, "IIS APPPOOL\\Missing"]))
    assert got.ok and got.state["reader_sids"][1] is None


def test_remove_takes_the_backup_and_leftover_temporary_files_and_nothing_else(fs: WindowsFs) -> None:
    assert settings_file.set_(fs, spec("v1", [READER])).ok
    assert settings_file.set_(fs, spec("v2", [READER])).ok
    folder = fs.resolve(PATH).parent
    leftover = folder / f".{fs.resolve(PATH).name}.{'0' * 32}.tmp"  # an interrupted run's
    leftover.write_text("v3")
    neighbours = [folder / "appsettings.json", folder / ".appsettings.agent.json.tmp", folder / "other.bak"]
    for neighbour in neighbours:
        neighbour.write_text("not ours")
    removed = settings_file.remove(fs, spec("v2", [READER]))
    assert removed.ok
    assert [c["property"] for c in removed.changes] == ["ensure", "backup_path", "temporary_file"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in neighbours)
    assert ntfs.NtfsStore(fs.root).descriptor(PATH) == ntfs.Descriptor(), "descriptors go with their files"
    again = settings_file.remove(fs, spec("v2", [READER]))
    assert again.ok and again.changed is False


# -- Review of the settings file scripts: each finding as Windows behaviour the unfixed script fails on ---------


def script(operation: str) -> str:
    return render_script(ScriptRef("providers.settings_file", operation))


def refused(operation: str, text: str) -> list[str]:
    return ps51.check_script(SCRIPT_FACTS, f"settings_file/{operation}", text)


def harden_by_hand(fs: WindowsFs, path: str) -> None:
    """What an administrator does with icacls: only the reader's Read entry left, SYSTEM and Administrators removed."""
    file_acl.admin_edit_entry(fs.root, path, "NT AUTHORITY\\SYSTEM", remove=True)
    file_acl.admin_edit_entry(fs.root, path, "BUILTIN\\Administrators", remove=True)


def test_the_hash_of_a_secret_file_is_never_piped_into_a_cmdlet() -> None:
    """Module logging (event 4103) records every value bound to ForEach-Object: here each byte of the hash."""
    old = script("set").replace(
        "[System.BitConverter]::ToString($sha.ComputeHash($Bytes)).Replace('-', '').ToLowerInvariant()",
        "(-join ($sha.ComputeHash($Bytes) | ForEach-Object { $_.ToString('x2') }))",
    )
    assert old != script("set")
    assert any("ForEach-Object" in problem for problem in refused("set", old))
    assert refused("set", script("set")) == []


def test_the_owner_keeps_read_control_and_write_dac_whatever_the_dacl_says(tmp_path: Path) -> None:
    store = ntfs.NtfsStore(tmp_path)
    operator = set(accounts.OPERATOR_TOKEN)
    reader_only = ntfs.Descriptor(accounts.ADMINISTRATORS, True, [ntfs.Ace("S-1-5-21-1-2-3-1001", 0x120089)])
    store.set_descriptor("C:\\a\\f.json", reader_only)
    assert not ntfs.can_read_file(store, "C:\\a\\f.json", operator), "no entry grants the Administrators the content"
    assert ntfs.access_granted(store, "C:\\a\\f.json", operator, ntfs.READ_CONTROL | ntfs.WRITE_DAC), "the owner's"
    assert not ntfs.access_granted(store, "C:\\a\\f.json", operator, ntfs.WRITE_OWNER), "not implied"
    store.set_descriptor("C:\\a\\g.json", ntfs.Descriptor("S-1-5-21-1-2-3-1001", True, reader_only.explicit))
    assert not ntfs.access_granted(store, "C:\\a\\g.json", operator, ntfs.READ_CONTROL), "another owner: nothing"
    owner_rights = [*reader_only.explicit, ntfs.Ace(ntfs.OWNER_RIGHTS, 0x120089)]
    assert ntfs.granted_rights(owner_rights, operator, accounts.ADMINISTRATORS) == 0, "OWNER RIGHTS replaces it"


def test_a_file_hardened_by_hand_reports_its_permissions_and_an_unknown_content(fs: WindowsFs) -> None:
    assert settings_file.set_(fs, spec('{"Secret": "s"}', readers=[READER])).ok
    harden_by_hand(fs, PATH)
    got = settings_file.get(fs, spec('{"Secret": "s"}', readers=[READER]))
    assert got.ok, got.error
    assert got.state["content_readable"] is False and got.state["content"] is None and got.state["sha256"] is None
    assert [e["sid"] for e in got.state["acl"]["entries"]] == [accounts.resolve(fs.root, READER).sid]
    # The unfixed order (content first) fails on Windows with "Access to the path ... is denied."
    old = script("get").replace("    $acl = Get-FileAcl $Path\n", "").replace("acl = $acl", "acl = (Get-FileAcl $Path)")
    assert any("permissions are read before the content" in problem for problem in refused("get", old))


def test_up_repairs_a_hardened_file_first_then_leaves_its_equal_content_alone(fs: WindowsFs) -> None:
    assert settings_file.set_(fs, spec('{"Secret": "s"}', readers=[READER])).ok
    harden_by_hand(fs, PATH)
    before = fs.resolve(PATH).read_bytes()
    repaired = settings_file.set_(fs, spec('{"Secret": "s"}', readers=[READER]))
    assert repaired.ok, repaired.error
    assert [c["property"] for c in repaired.changes] == ["readers"], "the content was compared once readable"
    assert "BUILTIN\\Administrators: no full control" not in repaired.changes[0]["after"]
    assert repaired.state["content_readable"] is True and fs.resolve(PATH).read_bytes() == before
    assert settings_file.set_(fs, spec('{"Secret": "s"}', readers=[READER])).changed is False
    harden_by_hand(fs, PATH)
    changed = settings_file.set_(fs, spec('{"Secret": "t"}', readers=[READER]))
    assert [c["property"] for c in changed.changes] == ["readers", "content"]
    assert (
        fs.resolve(PATH).read_text() == '{"Secret": "t"}' and fs.resolve(PATH + ".bak").read_text() == '{"Secret": "s"}'
    )


def test_an_unreadable_file_without_readers_is_refused_with_the_fix(fs: WindowsFs) -> None:
    assert settings_file.set_(fs, spec("{}", readers=[READER])).ok
    harden_by_hand(fs, PATH)
    refused_set = settings_file.set_(fs, spec("{}"))
    assert not refused_set.ok and refused_set.error is not None
    assert refused_set.error["id"] == "ContentUnreadable" and refused_set.error["property"] == "readers"
    assert "Declare readers" in refused_set.error["message"] and "icacls" in refused_set.error["message"]


def test_a_new_file_is_owned_by_the_administrators_and_another_owner_is_drift_repaired(fs: WindowsFs) -> None:
    created = settings_file.set_(fs, spec("{}", readers=[READER]))
    assert created.state["acl"]["owner"] == accounts.ADMINISTRATORS, "the elevated token's default owner"
    file_acl.admin_set_owner(fs.root, PATH, LOCAL_USER)
    alice = set(accounts.token_sids(fs.root, LOCAL_USER))
    store = ntfs.NtfsStore(fs.root)
    assert ntfs.access_granted(store, PATH, alice, ntfs.WRITE_DAC), "an owner may rewrite the DACL, then read"
    got = settings_file.get(fs, spec("{}", readers=[READER]))
    assert got.state["acl"]["owner_name"] == LOCAL_USER
    repaired = settings_file.set_(fs, spec("{}", readers=[READER]))
    assert [c["property"] for c in repaired.changes] == ["readers"]
    assert f"owner: {LOCAL_USER}" in repaired.changes[0]["before"]
    assert store.descriptor(PATH).owner == accounts.ADMINISTRATORS
    assert not ntfs.access_granted(store, PATH, alice, ntfs.WRITE_DAC)
    # The DACL alone keeps the owner (SetAccessControl persists only the sections set): the unfixed script,
    # which never set it, left the other owner in place and never reported it.
    old = script("set").replace(
        "    if (-not $Acl.protected -or $Acl.owner -ne $OwnerSid) { return $false }\n",
        ("    if (-not $Acl.protected) { return $false }\n"),
    )
    assert any("owner other than" in problem for problem in refused("set", old))


def test_an_owner_that_locked_the_administrators_out_stops_set_with_an_error(fs: WindowsFs) -> None:
    """Windows' limit: without WRITE_DAC (not the owner, no entry) the DACL cannot be written; .NET does not
    enable SeTakeOwnershipPrivilege. The error is reported, nothing is changed."""
    assert settings_file.set_(fs, spec("{}", readers=[READER])).ok
    harden_by_hand(fs, PATH)
    file_acl.admin_set_owner(fs.root, PATH, LOCAL_USER)
    result = settings_file.get(fs, spec("{}", readers=[READER]))
    assert not result.ok and result.error is not None
    assert "unauthorized operation" in result.error["message"]


def move_faults(fs: WindowsFs, *codes: int) -> None:
    (fs.root / "_sim").mkdir(exist_ok=True)
    (fs.root / "_sim" / win32_files.MOVE_FAULTS).write_text(json.dumps(list(codes)))


@pytest.mark.parametrize("keep_backup", [True, False])
def test_the_recovery_move_after_replacefile_1177_is_retried(fs: WindowsFs, keep_backup: bool) -> None:
    assert settings_file.set_(fs, spec("old", [READER], keep_backup)).ok
    faults(fs, 1177)
    move_faults(fs, 32)  # the file watcher that failed the replace still holds the new file
    result = settings_file.set_(fs, spec("new", [READER], keep_backup))
    assert result.ok, result.error
    assert fs.resolve(PATH).read_text() == "new" and not can_read(fs, PATH, LOCAL_USER)
    names = sorted(p.name for p in fs.resolve(PATH).parent.iterdir())
    assert names == sorted(["appsettings.agent.json", *(["appsettings.agent.json.bak"] if keep_backup else [])])
    # A bare File.Move fails on that sharing violation: what the unfixed recovery did.
    source, target = fs.resolve("C:\\im\\a.tmp"), fs.resolve("C:\\im\\a.json")
    source.write_text("x")
    move_faults(fs, 32)
    with pytest.raises(win32_files.MoveFileError, match="being used by another process"):
        win32_files.file_move(fs, source, target)
    old = script("set").replace(
        "                Invoke-FileMove $Source $Target\n",
        "                [System.IO.File]::Move($Source, $Target)\n",
    )
    assert any("retries of Invoke-FileMove" in problem for problem in refused("set", old))


def test_a_new_file_is_moved_into_place_with_retries_and_a_lasting_failure_loses_nothing(fs: WindowsFs) -> None:
    move_faults(fs, 32, 5)
    created = settings_file.set_(fs, spec("v1", [READER], keep_backup=False))
    assert created.ok, created.error
    faults(fs, 1177)
    move_faults(fs, 32, 32, 32, 32, 32)
    failed = settings_file.set_(fs, spec("v2", [READER], keep_backup=False))
    assert not failed.ok and failed.error is not None and "Move" in failed.error["message"]
    leftovers = {p.read_text() for p in fs.resolve(PATH).parent.iterdir()}
    assert leftovers == {"v1", "v2"}, "the old version under its backup name, the new one under the temporary one"
    removed = settings_file.remove(fs, spec("v2", [READER]))
    assert [c["property"] for c in removed.changes] == ["temporary_file", "temporary_file"]
    assert list(fs.resolve(PATH).parent.iterdir()) == []


def test_replacefile_always_gets_a_backup_name_so_1177_leaves_nothing_unknown(fs: WindowsFs) -> None:
    assert settings_file.set_(fs, spec("old", keep_backup=False)).ok
    faults(fs, 1177)
    assert settings_file.set_(fs, spec("new", keep_backup=False)).ok
    assert [p.name for p in fs.resolve(PATH).parent.iterdir()] == ["appsettings.agent.json"]
    # Without a backup name Windows renames the replaced file itself: that name was left behind.
    target, source = fs.resolve("C:\\b\\f.json"), fs.resolve("C:\\b\\.f.json.1.tmp")
    target.parent.mkdir(parents=True)
    target.write_text("old")
    source.write_text("new")
    faults(fs, 1177)
    with pytest.raises(win32_files.ReplaceFileError):
        win32_files.replace_file(fs, source, target, None)
    assert [p.name for p in target.parent.iterdir() if p.name.startswith("f.json.~")], "an unknown name"
    old = script("set").replace(
        'if ($Spec.keep_backup) { $backup = "$path.bak" } else { $backup = New-TemporaryPath $path }',
        '$backup = $null; if ($Spec.keep_backup) { $backup = "$path.bak" }',
    )
    assert any("always gets a backup name" in problem for problem in refused("set", old))


def test_the_longest_path_the_model_allows_can_be_written_replaced_and_removed(fs: WindowsFs) -> None:
    folder = "C:\\" + "\\".join(["d" * 60] * 3)
    path = folder + "\\" + "f" * (MAX_PATH_LENGTH - len(folder) - 6) + ".json"
    assert len(path) == MAX_PATH_LENGTH == 245
    for content, keep_backup in (("v1", True), ("v2", True), ("v3", False)):
        faults(fs, 1177)
        written = settings_file.set_(fs, {**spec(content, [READER], keep_backup), "path": path})
        assert written.ok, written.error
    assert fs.resolve(path).read_text() == "v3" and fs.resolve(path + ".bak").read_text() == "v1"
    # The unfixed temporary name '.<name>.<32 hex digits>.tmp' adds 38 characters: over MAX_PATH.
    with pytest.raises(PathTooLongError, match="less than 260 characters"):
        fs.resolve(f"{folder}\\.{path.rsplit(chr(92), 1)[1]}.{'0' * 32}.tmp")
    leftover = fs.resolve(path).parent / f".{fs.resolve(path).name}.{'a' * 8}.tmp"
    leftover.write_text("v4")
    removed = settings_file.remove(fs, {**spec("v3", [READER]), "path": path})
    assert [c["property"] for c in removed.changes] == ["ensure", "backup_path", "temporary_file"]
    old = script("set").replace(".ToString('N').Substring(0, 8) + '.tmp'", ".ToString('N') + '.tmp'")
    assert any("14 characters more" in problem for problem in refused("set", old))


def test_well_known_readers_by_english_name_on_a_german_windows(fs: WindowsFs) -> None:
    accounts.set_display_language(fs.root, "de-DE")
    with pytest.raises(accounts.IdentityNotMapped):
        accounts.resolve(fs.root, "NT AUTHORITY\\NETWORK SERVICE")  # what NTAccount.Translate does there
    assert accounts.resolve(fs.root, "NT-AUTORITÄT\\NETZWERKDIENST").sid == "S-1-5-20"
    created = settings_file.set_(fs, spec("{}", readers=["NT AUTHORITY\\NETWORK SERVICE"]))
    assert created.ok, created.error
    names = [e["name"] for e in created.state["acl"]["entries"]]
    assert names == ["NT-AUTORITÄT\\SYSTEM", "VORDEFINIERT\\Administratoren", "NT-AUTORITÄT\\NETZWERKDIENST"]
    got = settings_file.get(fs, spec("{}", readers=["NT AUTHORITY\\NETWORK SERVICE", "BUILTIN\\Users"]))
    assert got.state["reader_sids"] == ["S-1-5-20", accounts.USERS]
    old = script("set").replace(
        "    if ($WellKnownAccountSids.ContainsKey($Name)) { return (New-Object "
        "System.Security.Principal.SecurityIdentifier($WellKnownAccountSids[$Name])) }\n",
        "",
    )
    assert any("before NTAccount.Translate" in problem for problem in refused("set", old))


def test_the_drive_root_is_a_windows_servers(tmp_path: Path) -> None:
    """icacls C:\\ on Server 2019/2022: files inherit Users Read & execute only; Users may add folders and files
    in folders below C:\\, not change other people's files (client SKUs give Authenticated Users Modify)."""
    store = ntfs.NtfsStore(tmp_path)
    alice = {"S-1-5-21-1-2-3-1001", accounts.USERS, accounts.EVERYONE, accounts.AUTHENTICATED_USERS}
    file_rights = ntfs.granted_rights(store.explicit_and_inherited("C:\\im\\a.json", is_container=False), alice)
    assert file_rights == ntfs.READ_AND_EXECUTE
    folder_rights = ntfs.granted_rights(store.explicit_and_inherited("C:\\im", is_container=True), alice)
    assert folder_rights == ntfs.READ_AND_EXECUTE | ntfs.FILE_APPEND_DATA | ntfs.FILE_WRITE_DATA
    inherited = store.explicit_and_inherited("C:\\im\\a.json", is_container=False)
    owner = [a for a in inherited if a.sid == accounts.ADMINISTRATORS and a.mask == ntfs.FULL_CONTROL]
    assert len(owner) == 2, "Administrators' own entry and CREATOR OWNER's, the file's owner being Administrators"
    assert store.descriptor("C:\\").owner == ntfs.TRUSTED_INSTALLER

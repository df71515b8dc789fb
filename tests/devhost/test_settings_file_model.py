"""SIMULATOR: settings files with secrets keep protected permissions through every way of writing them,
and the NTFS rules they rely on (ReplaceFile, MoveFile, access checks) behave as Windows documents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devhost import accounts, ntfs
from devhost.fs import WindowsFs
from devhost.ops import file_acl, settings_file

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
    (fs.root / "_sim" / settings_file.REPLACE_FAULTS).write_text(json.dumps(list(codes)))


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

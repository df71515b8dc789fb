"""How a settings file's permissions on the host become the `readers` that refresh compares."""

from __future__ import annotations

from typing import Any

from providers.settings_file.acl import ADMINISTRATORS, INHERITS, SYSTEM, readers_on_host
from providers.settings_file.model import UNREADABLE, UNREADABLE_REASON, SettingsFileModel

POOL = "S-1-5-82-1-2-3-4-5"
MODEL = {
    "connection": {"host": "agent01.contoso.com", "username": "CONTOSO\\deploy", "password": "x"},
    "path": "C:\\im\\Runtime\\appsettings.agent.json",
}
USERS = "S-1-5-32-545"


def entry(sid: str, mask: int, name: str = "", *, access: str = "Allow", inherited: bool = False) -> dict[str, Any]:
    return {"sid": sid, "name": name or sid, "access": access, "mask": mask, "inherited": inherited}


def protected(*extra: dict[str, Any], reader_mask: int = 0x120089) -> dict[str, Any]:
    kept = [entry(SYSTEM, 0x1F01FF), entry(ADMINISTRATORS, 0x1F01FF)]
    return {"protected": True, "entries": [*kept, entry(POOL, reader_mask, "IIS APPPOOL\\A"), *extra]}


def test_the_protected_acl_reads_back_as_the_declared_readers() -> None:
    assert readers_on_host(["IIS AppPool\\A"], [POOL], protected(), None) == ["IIS AppPool\\A"]
    assert readers_on_host(["IIS AppPool\\A"], [POOL], protected(), protected()) == ["IIS AppPool\\A"]
    # Generic bits as icacls may write them compare as what they map to.
    generic = {"protected": True, "entries": [entry(SYSTEM, 0x10000000), entry(ADMINISTRATORS, 0x1F01FF)]}
    assert readers_on_host(["LocalSystem"], [SYSTEM], generic, None) == ["LocalSystem"]


def test_every_deviation_shows_as_one_line() -> None:
    declared, sids = ["IIS AppPool\\A"], [POOL]
    extra_user = protected(entry(USERS, 0x1200A9, "BUILTIN\\Users"))
    assert readers_on_host(declared, sids, extra_user, None) == ["IIS AppPool\\A", "BUILTIN\\Users: Allow 0x200A9"]
    inherits = {**protected(entry(USERS, 0x1200A9, "BUILTIN\\Users", inherited=True)), "protected": False}
    assert readers_on_host(declared, sids, inherits, None) == [
        "IIS AppPool\\A",
        "BUILTIN\\Users: Allow 0x200A9 (inherited)",
        INHERITS,
    ]
    too_much = protected(reader_mask=0x1301BF)
    assert readers_on_host(declared, sids, too_much, None) == ["IIS APPPOOL\\A: Allow 0x301BF"]
    no_admins = {"protected": True, "entries": [entry(SYSTEM, 0x1F01FF), entry(POOL, 0x120089)]}
    assert readers_on_host(declared, sids, no_admins, None) == [
        "IIS AppPool\\A",
        "BUILTIN\\Administrators: no full control",
    ]
    deny = protected(entry(POOL, 0x1, access="Deny"))
    assert readers_on_host(declared, sids, deny, None)[1:] == [f"{POOL}: Deny 0x1"]
    backup = {**protected(), "protected": False}
    assert readers_on_host(declared, sids, protected(), backup) == ["IIS AppPool\\A", f"backup: {INHERITS}"]


def test_a_reader_that_no_longer_resolves_is_missing() -> None:
    assert readers_on_host(["IIS AppPool\\A"], [None], protected(), None) == ["IIS APPPOOL\\A: Allow 0x20089"]


def test_an_owner_other_than_the_administrators_is_a_deviation() -> None:
    """An owner may always read and rewrite the DACL (learn.microsoft.com, "Owner of a New Object")."""
    owned = {**protected(), "owner": ADMINISTRATORS, "owner_name": "BUILTIN\\Administrators"}
    assert readers_on_host(["IIS AppPool\\A"], [POOL], owned, None) == ["IIS AppPool\\A"]
    alice = {**protected(), "owner": "S-1-5-21-1-2-3-1001", "owner_name": "SIMHOST\\alice"}
    assert readers_on_host(["IIS AppPool\\A"], [POOL], alice, None) == ["IIS AppPool\\A", "owner: SIMHOST\\alice"]
    assert readers_on_host(["IIS AppPool\\A"], [POOL], owned, alice) == [
        "IIS AppPool\\A",
        "backup: owner: SIMHOST\\alice",
    ]


def test_an_unreadable_file_reports_its_content_unknown_and_its_readers() -> None:
    hardened = {"protected": True, "owner": ADMINISTRATORS, "entries": [entry(POOL, 0x120089, "IIS APPPOOL\\A")]}
    state = {"ensure": "present", "content_readable": False, "content": None, "encoding": None, "sha256": None}
    state |= {"acl": hardened, "backup_acl": None, "reader_sids": [POOL]}
    text = SettingsFileModel.model_validate({**MODEL, "content": "{}", "readers": ["IIS AppPool\\A"]})
    actual = text.actual_from(state)
    assert actual["content"] == f"<{UNREADABLE_REASON}>" and actual["encoding"] == "utf-8"
    assert actual["readers"] == [
        "IIS AppPool\\A",
        "BUILTIN\\Administrators: no full control",
        "NT AUTHORITY\\SYSTEM: no full control",
    ]
    document = SettingsFileModel.model_validate({**MODEL, "json_content": {"A": 1}, "readers": ["IIS AppPool\\A"]})
    assert document.actual_from(state)["json_content"] == {UNREADABLE: UNREADABLE_REASON}

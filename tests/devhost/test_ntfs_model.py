"""SIMULATOR: the NTFS model follows Windows' inheritance, merge and mask rules."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from devhost import accounts, ntfs
from devhost.fs import WindowsFs
from devhost.ops import file_acl

CI, OI = ntfs.CONTAINER_INHERIT, ntfs.OBJECT_INHERIT
IO, NP = ntfs.INHERIT_ONLY, ntfs.NO_PROPAGATE
USER = "S-1-5-21-1-2-3-1001"
OTHER = "S-1-5-21-1-2-3-1002"


def ace(mask: int = ntfs.MODIFY, *, allow: bool = True, inh: Iterable[str] = (), prop: Iterable[str] = ()) -> ntfs.Ace:
    return ntfs.Ace(USER, mask, allow, frozenset(inh), frozenset(prop))


@pytest.mark.parametrize(
    ("parent", "container", "expected"),
    [
        (ace(inh={CI, OI}), True, ace(inh={CI, OI})),  # folders inherit it and pass it on
        (ace(inh={CI, OI}), False, ace()),  # files inherit it, without flags
        (ace(inh={CI}), False, None),  # container-only: files do not get it
        (ace(inh={OI}), True, ace(inh={OI}, prop={IO})),  # object-only: a folder holds it for its files
        (ace(inh={CI, OI}, prop={NP}), True, ace()),  # no-propagate: children only, without flags
        (ace(inh={OI}, prop={NP}), True, None),
        (ace(inh={CI, OI}, prop={IO}), True, ace(inh={CI, OI})),  # inherit-only applies to the children
        (ace(), True, None),  # not inheritable
    ],
)
def test_inheritance_rules(parent: ntfs.Ace, container: bool, expected: ntfs.Ace | None) -> None:
    child = ntfs.inherit(parent, container)
    if expected is None:
        assert child is None
    else:
        assert child is not None and child.inherited
        assert (child.mask, child.inheritance, child.propagation) == (
            expected.mask,
            expected.inheritance,
            expected.propagation,
        )


def test_inherited_entries_are_computed_never_stored_as_explicit(tmp_path: Path) -> None:
    store = ntfs.NtfsStore(tmp_path)
    store.set_descriptor("C:\\im", ntfs.Descriptor(explicit=[ace(inh={CI, OI})]))
    runtime = store.explicit_and_inherited("C:\\im\\Runtime", is_container=True)
    assert [a.sid for a in store.descriptor("C:\\im\\Runtime").explicit] == []
    assert any(a.sid == USER and a.inherited for a in runtime)
    assert any(a.sid == "S-1-5-18" and a.inherited for a in runtime), "and the drive root's entries"
    store.set_descriptor("C:\\im\\Runtime", ntfs.Descriptor(protected=True))
    assert store.inherited("C:\\im\\Runtime", is_container=True) == [], "protected: inheritance stops"
    assert store.inherited("C:\\im\\Runtime\\bin", is_container=True) == []
    store.forget("C:\\im")
    assert store.descriptor("C:\\IM").explicit == [] and store.descriptor("C:\\im\\runtime").protected is False


def test_entries_of_the_same_kind_merge_and_deny_comes_first() -> None:
    entries = ntfs.merge_entry([], ace(0x120089, inh={CI, OI}))
    entries = ntfs.merge_entry(entries, ace(0x100116, inh={CI, OI}))  # same SID, type and flags: one entry
    assert [(a.mask, a.inheritance) for a in entries] == [(0x12019F, frozenset({CI, OI}))]
    entries = ntfs.merge_entry(entries, ace(0x116, inh={CI}))  # other flags: a second entry
    entries = ntfs.merge_entry(entries, ace(0x116, allow=False))  # deny: placed before the allow entries
    assert [(a.allow, a.mask) for a in entries] == [(False, 0x116), (True, 0x12019F), (True, 0x116)]
    other = ntfs.merge_entry(entries, ntfs.Ace(OTHER, ntfs.MODIFY))
    assert ntfs.without_entries(other, USER, allow=True) == [entries[0], other[-1]], "deny and others stay"


def test_masks_as_dotnet_stores_them() -> None:
    assert ntfs.access_mask_for(0x301BF, allow=True) == ntfs.MODIFY  # Synchronize added
    assert ntfs.access_mask_for(0x116, allow=False) == 0x116  # and removed from a deny entry...
    assert ntfs.access_mask_for(ntfs.FULL_CONTROL, allow=False) == ntfs.FULL_CONTROL  # ...but FullControl
    assert file_acl.comparable_mask(0x10000000) == 0xF01FF  # GENERIC_ALL maps to FullControl
    assert file_acl.comparable_mask(ntfs.MODIFY) == 0x301BF


def test_an_administrator_edits_by_hand(tmp_path: Path) -> None:
    account = accounts.add_account(tmp_path, "CONTOSO\\svc-agent", "user", "pw")
    (tmp_path / "C" / "im").mkdir(parents=True)
    file_acl.admin_edit_entry(tmp_path, "C:\\im", "CONTOSO\\svc-agent", "R", inheritance=[CI, OI])
    entries = file_acl.admin_edit_entry(tmp_path, "C:\\im", "contoso\\SVC-AGENT", "W", inheritance=[CI, OI])
    assert [(e["sid"], e["mask"]) for e in entries] == [(account.sid, 0x12019F)], "icacls /grant merges"
    assert file_acl.admin_edit_entry(tmp_path, "C:\\im", "CONTOSO\\svc-agent", remove=True) == []
    with pytest.raises(accounts.IdentityNotMapped):
        file_acl.admin_edit_entry(tmp_path, "C:\\im", "CONTOSO\\nobody", "F")
    with pytest.raises(FileNotFoundError):
        file_acl.admin_edit_entry(tmp_path, "C:\\missing", "CONTOSO\\svc-agent", "F")


def test_creator_owner_becomes_the_owner_in_the_entry_that_applies(tmp_path: Path) -> None:
    """C:\\ grants CREATOR OWNER full control, inherit-only: a file below gets an entry for its owner."""
    store = ntfs.NtfsStore(tmp_path)
    store.set_descriptor("C:\\im\\a.json", ntfs.Descriptor(owner=USER))
    on_file = [(a.sid, a.propagation) for a in store.inherited("C:\\im\\a.json", is_container=False)]
    assert (USER, frozenset()) in on_file and all(sid != "S-1-3-0" for sid, _ in on_file)
    on_folder = [(a.sid, a.propagation) for a in store.inherited("C:\\im", is_container=True)]
    assert ("S-1-5-32-544", frozenset()) in on_folder, "the folder's owner (Administrators by default)"
    assert ("S-1-3-0", frozenset({IO})) in on_folder, "and an inherit-only CREATOR OWNER entry for its children"


def acl_spec(path: str, principal: str, mask: int = 0x1200A9) -> dict[str, object]:
    return {
        "path": path,
        "principal": principal,
        "access": "Allow",
        "mask": mask,
        "inheritance": None,
        "propagation": [],
    }


def test_set_access_control_writes_the_whole_dacl_it_read(tmp_path: Path) -> None:
    """Two writers that each read the DACL, then write it back with their own entry: the later write drops the
    earlier writer's entry, as SetSecurityInfo replaces the DACL whole. This is what the FileAcl scripts' mutex
    prevents; without it the engine test of parallel work would find entries missing."""
    (tmp_path / "C" / "im").mkdir(parents=True)
    a = accounts.add_account(tmp_path, "CONTOSO\\svc-a", "user", "pw")
    b = accounts.add_account(tmp_path, "CONTOSO\\svc-b", "user", "pw")
    store = ntfs.NtfsStore(tmp_path)
    first, second = store.descriptor("C:\\im"), store.descriptor("C:\\im")  # both GetAccessControl
    store.set_dacl("C:\\im", first.protected, ntfs.merge_entry(list(first.explicit), ntfs.Ace(a.sid, ntfs.MODIFY)))
    store.set_dacl("C:\\im", second.protected, ntfs.merge_entry(list(second.explicit), ntfs.Ace(b.sid, ntfs.MODIFY)))
    assert [e.sid for e in store.descriptor("C:\\im").explicit] == [b.sid]


def test_parallel_file_acl_changes_wait_for_each_other_and_keep_every_entry(tmp_path: Path) -> None:
    (tmp_path / "C" / "im").mkdir(parents=True)
    (tmp_path / "_sim").mkdir()
    (tmp_path / "_sim" / "knobs.json").write_text('{"acl_script_work_ms": 150}', encoding="utf-8")
    names = [accounts.add_account(tmp_path, f"CONTOSO\\svc-{n}", "user", "pw").name for n in range(4)]
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda n=n: results.append(file_acl.set_(WindowsFs(tmp_path), acl_spec("C:\\im", n))))
        for n in names
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r.ok for r in results), [r.error for r in results]
    kept = {e.sid for e in ntfs.NtfsStore(tmp_path).descriptor("C:\\im").explicit}
    assert kept == {accounts.resolve(tmp_path, n).sid for n in names}
    journal = (tmp_path / "_sim" / "journal.jsonl").read_text(encoding="utf-8")
    assert journal.count('"mutex_wait"') >= 1, "the four writers should have contended for the mutex"
    removed = file_acl.remove(WindowsFs(tmp_path), {**acl_spec("C:\\im", names[0]), "principal_sid": None})
    assert removed.ok and {e.sid for e in ntfs.NtfsStore(tmp_path).descriptor("C:\\im").explicit} == kept - {
        accounts.resolve(tmp_path, names[0]).sid
    }

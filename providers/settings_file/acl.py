"""The protected permissions of a settings file that holds secrets, and how the host's differ from them.

Desired: inheritance off, full control for LocalSystem and the local Administrators, Read for each
reader, no other entry (agent-requirements: "Other permissions should be denied"), and the local
Administrators as owner (an owner may always read and rewrite the DACL: learn.microsoft.com "Owner of a
New Object"). The get script reports the owner and DACL as they are; this module turns them into the
``readers`` the host really grants, so that ``refresh`` shows any difference as a change of ``readers``,
one readable line per deviation.
"""

from __future__ import annotations

from typing import Any

from providers.file_acl.rights import normalize_mask

SYSTEM = "S-1-5-18"
ADMINISTRATORS = "S-1-5-32-544"
KEPT = {SYSTEM: "NT AUTHORITY\\SYSTEM", ADMINISTRATORS: "BUILTIN\\Administrators"}
OWNER = ADMINISTRATORS
FULL_CONTROL = normalize_mask(0x1F01FF)
READ = normalize_mask(0x120089)
INHERITS = "inherits the folder's permissions"


def expected_masks(reader_sids: list[str | None]) -> dict[str, int]:
    expected = dict.fromkeys(KEPT, FULL_CONTROL)
    for sid in reader_sids:
        if sid is not None:
            expected.setdefault(sid.upper(), READ)
    return expected


def _entry_text(entry: dict[str, Any]) -> str:
    origin = " (inherited)" if entry.get("inherited") else ""
    mask = normalize_mask(int(entry["mask"]))
    return f"{entry.get('name') or entry.get('sid')}: {entry.get('access')} 0x{mask:X}{origin}"


def _owner_line(acl: dict[str, Any]) -> list[str]:
    """The owner, when it is not the local Administrators (an owner the host did not report counts as theirs)."""
    owner = acl.get("owner")
    if owner is None or str(owner).upper() == OWNER:
        return []
    return [f"owner: {acl.get('owner_name') or owner}"]


def deviations(acl: dict[str, Any] | None, reader_sids: list[str | None]) -> list[str]:
    """What differs from the protected owner and DACL, one line each (sorted; empty when it is exactly that)."""
    if acl is None:
        return []
    expected = expected_masks(reader_sids)
    found: dict[str, bool] = {}
    lines = _owner_line(acl) + ([] if acl.get("protected") else [INHERITS])
    for entry in acl.get("entries") or []:
        sid = str(entry.get("sid", "")).upper()
        exact = (
            not entry.get("inherited")
            and entry.get("access") == "Allow"
            and expected.get(sid) == normalize_mask(int(entry["mask"]))
            and sid not in found
        )
        if exact:
            found[sid] = True
        else:
            lines.append(_entry_text(entry))
    lines += [f"{name}: no full control" for sid, name in KEPT.items() if sid not in found]
    return sorted(lines)


def readers_on_host(
    declared: list[str], reader_sids: list[str | None], acl: dict[str, Any] | None, backup_acl: dict[str, Any] | None
) -> list[str]:
    """``declared`` when the file (and its backup) carry exactly the protected owner and DACL; otherwise the declared
    readers the file really grants what they should have (in the declared spelling), then every deviation."""
    expected = expected_masks(reader_sids)
    exact = {
        str(e.get("sid", "")).upper()
        for e in (acl or {}).get("entries") or []
        if not e.get("inherited")
        and e.get("access") == "Allow"
        and expected.get(str(e.get("sid", "")).upper()) == normalize_mask(int(e["mask"]))
    }
    present = [
        name for name, sid in zip(declared, reader_sids, strict=False) if sid is not None and sid.upper() in exact
    ]
    backup = [f"backup: {line}" for line in deviations(backup_acl, reader_sids)]
    return present + deviations(acl, reader_sids) + backup

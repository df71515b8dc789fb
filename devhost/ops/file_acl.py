"""SIMULATOR: model of providers/file_acl/scripts/{get,set,remove}.ps1 on the simulated NTFS (devhost.ntfs).

Also ``admin_edit_entry``: what an administrator does by hand (icacls /grant, /deny, /remove), for
tests and the devhost CLI.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from devhost import accounts, ntfs
from devhost.fs import WindowsFs
from devhost.hooks import read_knobs
from devhost.ops import dacl_lock
from devhost.ops.envelope import Envelope, OperationStopped, change, fail, operation, require_keys, succeed
from devhost.ops.script_accounts import account_sid, comparable_mask
from devhost.ps51 import ScriptFact

_KEYS = {"path", "principal", "access", "mask", "inheritance", "propagation"}
_OPTIONAL = {dacl_lock.WAIT_KEY}  # FileAclModel always sends it; the script waits 300 s without it
_SID = re.compile(r"^S-1-\d+(-\d+){0,14}$", re.IGNORECASE)
_NOT_TRANSLATED = "Some or all identity references could not be translated."
_BOTH = ["ContainerInherit", "ObjectInherit"]
# icacls' simple rights, as an administrator types them (icacls stores Synchronize with them).
ICACLS_RIGHTS = {"F": 0x1F01FF, "M": 0x1301BF, "RX": 0x1200A9, "R": 0x120089, "W": 0x100116}
# What the script does while it holds the DACL (resolve the principal through LSA, read the DACL, remove this
# principal's entries, build the rule, AddAccessRule, SetAccessControl): tens of milliseconds of Windows
# PowerShell, which the model spends between its read and its write (knob ``acl_script_work_ms``), so a writer
# that did not hold the mutex would lose another's entry as on Windows.
SCRIPT_WORK_S = 0.03

SCRIPT_FACTS = (
    *dacl_lock.script_facts(("file_acl/set", "file_acl/remove")),
    ScriptFact(
        ("file_acl/set",),
        r"\$principal = Resolve-Principal \(\[string\]\$Spec\.principal\)\s+# From the first read[^\n]*\n"
        r"\$daclLock = Enter-DaclLock",
        "the principal is resolved before the lock (an LSA lookup of a domain account may be slow): the model holds "
        "the lock only from the read of the DACL to its write",
    ),
    ScriptFact(
        ("file_acl/set", "file_acl/remove"),
        r"\$daclLock = Enter-DaclLock\s+try \{[\s\S]*GetAccessControl[\s\S]*\.SetAccessControl\(\$security\)"
        r"[\s\S]*\} finally \{\s+Exit-DaclLock \$daclLock",
        "the model holds the mutex from the read of the DACL to its write, released whatever the outcome",
    ),
    ScriptFact(
        ("file_acl/set", "file_acl/remove"),
        r"(?s)\$security\s*=\s*\$item\.GetAccessControl\("
        r"(?:(?!\$security\s*=|\$security\.(?:Add|Set|Remove|Reset|Purge)Access).)*?"
        r"if\s*\(\s*-not\s+\$security\.AreAccessRulesCanonical\s*\)\s*\{\s*(?:#[^\n]*\s*)*"
        r"Stop-Operation\s+-Id\s+'AclNotCanonical'",
        "R11: .NET's CommonAcl refuses to change a non-canonical DACL (InvalidOperationException, 'not in canonical "
        "form'): between the read of the DACL and its first change, the script stops with AclNotCanonical, as the "
        "model does (ntfs.is_canonical)",
    ),
)


def script_work_s(state_dir: Path) -> float:
    """``SCRIPT_WORK_S``, or the knob ``acl_script_work_ms``."""
    value = read_knobs(state_dir).get("acl_script_work_ms")
    return SCRIPT_WORK_S if value is None else float(value) / 1000


def write_dacl(fs: WindowsFs, path: str, security: ntfs.Descriptor, explicit: list[ntfs.Ace]) -> None:
    """``$item.SetAccessControl($security)`` for a ``$security`` read by GetAccessControl earlier: the script's
    work in between takes its time, then the DACL it built replaces the path's whole (ntfs.set_dacl)."""
    time.sleep(script_work_s(fs.root))
    ntfs.NtfsStore(fs.root).set_dacl(path, security.protected, explicit)


def _resolve(state_dir: Path, principal: str) -> tuple[str, str]:
    """Resolve-Principal: (SID, name as Windows prints it; the bare SID for an unknown SID)."""
    if principal.upper().startswith("S-1-"):
        if not _SID.match(principal):
            raise OperationStopped(_not_mapped(principal, "Value was invalid.\r\nParameter name: sddlForm"))
        try:
            return principal.upper(), accounts.lookup_sid(state_dir, principal).name
        except accounts.IdentityNotMapped:
            return principal.upper(), principal.upper()
    try:
        sid = account_sid(state_dir, principal)
    except accounts.IdentityNotMapped:
        raise OperationStopped(_not_mapped(principal, _NOT_TRANSLATED)) from None
    # The name as Windows prints it back (SecurityIdentifier.Translate), in the host's language.
    try:
        return sid, accounts.lookup_sid(state_dir, sid).name
    except accounts.IdentityNotMapped:
        return sid, sid


def _not_mapped(principal: str, reason: str) -> Envelope:
    return fail(
        "IdentityNotMapped",
        f"principal '{principal}': {reason} Create the account first (a built-in one: give its SID, S-1-...); "
        "for 'IIS AppPool\\<pool>' the application pool must exist (make this resource depend on it).",
        prop="principal",
        category="ObjectNotFound",
    )


def _kind(fs: WindowsFs, path: str) -> bool | None:
    """Get-AclItem: True for a folder, False for a file, None when the path does not exist."""
    target = fs.resolve(path)
    if target.is_dir():
        return True
    return False if target.is_file() else None


def _entries(store: ntfs.NtfsStore, path: str, sid: str, allow: bool) -> list[ntfs.Ace]:
    # Explicit entries only, as GetAccessRules($true, $false, ...): inherited ones are computed elsewhere.
    return [a for a in store.descriptor(path).explicit if a.sid.upper() == sid and a.allow == allow]


def _entry_json(ace: ntfs.Ace) -> dict[str, Any]:
    return {"mask": ace.mask, "inheritance": sorted(ace.inheritance), "propagation": sorted(ace.propagation)}


def _describe(entries: list[dict[str, Any]]) -> list[str]:
    """Format-Entries."""
    return [
        f"0x{e['mask']:X} ({','.join(e['inheritance']) or 'None'}; {','.join(e['propagation']) or 'None'})"
        for e in entries
    ]


def _state(fs: WindowsFs, spec: dict[str, Any]) -> dict[str, Any]:
    """Get-FileAclState."""
    sid, name = _resolve(fs.root, spec["principal"])
    state: dict[str, Any] = {
        "ensure": "absent",
        "path": spec["path"],
        "principal_sid": sid,
        "principal_name": name,
        "is_container": False,
        "entries": [],
        "access_mask": None,
    }
    kind = _kind(fs, spec["path"])
    if kind is None:
        return state
    state["is_container"] = kind
    entries = [_entry_json(a) for a in _entries(ntfs.NtfsStore(fs.root), spec["path"], sid, spec["access"] == "Allow")]
    state["entries"] = entries
    if entries:
        state["ensure"] = "present"
        state["access_mask"] = entries[0]["mask"]
    return state


def _not_canonical(path: str) -> Envelope:
    """The scripts' check of AreAccessRulesCanonical before changing the DACL."""
    return fail(
        "AclNotCanonical",
        f"the access control list of '{path}' is not in canonical order (an allow entry before a deny entry), "
        "so Windows cannot change it safely; open the folder's Properties > Security tab, which offers to "
        "reorder it, then run again",
        prop="path",
        category="InvalidData",
    )


@operation
def get(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS, _OPTIONAL)
    return succeed(_state(fs, spec))


@operation
def set_(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS, _OPTIONAL)
    path = spec["path"]
    kind = _kind(fs, path)
    if kind is None:
        return fail(
            "PathNotFound",
            f"Could not find a part of the path '{path}'. Create the folder first (a Directory resource) "
            "and make this entry depend on it.",
            prop="path",
            category="ObjectNotFound",
        )
    inheritance = list(_BOTH) if kind else []
    if spec["inheritance"] is not None:
        inheritance = sorted(spec["inheritance"])
    propagation = sorted(spec["propagation"])
    if not kind and (inheritance or propagation):
        return fail(
            "InheritanceOnFile",
            f"'{path}' is a file, and a file's entry cannot be inherited (No flags can be set.): "
            "leave inheritance unset (or empty) and propagation empty.",
            prop="inheritance",
            category="InvalidArgument",
        )
    if not inheritance and propagation:
        return fail(
            "PropagationWithoutInheritance",
            "propagation flags need inheritance flags: set inheritance or leave propagation empty.",
            prop="propagation",
            category="InvalidArgument",
        )
    with dacl_lock.held(fs, spec):
        before = _state(fs, spec)
        desired = {"mask": spec["mask"], "inheritance": inheritance, "propagation": propagation}
        matching = [e for e in before["entries"] if {**e, "mask": comparable_mask(e["mask"])} == desired]
        if len(before["entries"]) == 1 and len(matching) == 1:
            return succeed(before)
        allow = spec["access"] == "Allow"
        security = ntfs.NtfsStore(fs.root).descriptor(path)  # GetAccessControl('Access'): a copy
        if not ntfs.is_canonical(security.explicit):
            return _not_canonical(path)
        ace = ntfs.Ace(
            sid=before["principal_sid"],
            mask=ntfs.access_mask_for(spec["mask"], allow),
            allow=allow,
            inheritance=frozenset(inheritance),
            propagation=frozenset(propagation),
        )
        # RemoveAccessRuleSpecific for each of the principal's entries, then AddAccessRule, on the copy.
        explicit = ntfs.merge_entry(ntfs.without_entries(list(security.explicit), before["principal_sid"], allow), ace)
        write_dacl(fs, path, security, explicit)
        after = _state(fs, spec)
    return succeed(after, [change("entries", _describe(before["entries"]), _describe(after["entries"]))])


@operation
def remove(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS | {"principal_sid"}, _OPTIONAL)
    path = spec["path"]
    if _kind(fs, path) is None:
        return succeed({"ensure": "absent", "path": path, "entries": []})
    sid, _ = _resolve(fs.root, spec["principal_sid"] or spec["principal"])
    allow = spec["access"] == "Allow"
    state = {"ensure": "absent", "path": path, "principal_sid": sid, "entries": []}
    with dacl_lock.held(fs, spec):
        security = ntfs.NtfsStore(fs.root).descriptor(path)  # GetAccessControl('Access'): a copy
        entries = [_entry_json(a) for a in security.explicit if a.sid.upper() == sid and a.allow == allow]
        if not entries:
            return succeed(state)
        if not ntfs.is_canonical(security.explicit):
            return _not_canonical(path)
        write_dacl(fs, path, security, ntfs.without_entries(list(security.explicit), sid, allow))
    return succeed(state, [change("entries", _describe(entries), [])])


def admin_edit_entry(
    state_dir: Path,
    windows_path: str,
    principal: str,
    rights: str | int = "M",
    *,
    deny: bool = False,
    inheritance: Sequence[str] = (),
    propagation: Sequence[str] = (),
    remove: bool = False,
) -> list[dict[str, Any]]:
    """An administrator's hand edit of one path's explicit entries, as icacls does it.

    Grant (or deny) ``rights`` (icacls letters F, M, RX, R, W, or a mask) to ``principal``, merged
    into an entry of the same kind as Windows merges; or with ``remove=True`` remove all of the
    principal's explicit entries of that type. Returns the path's explicit entries afterwards.
    Raises ``FileNotFoundError`` for a missing path and ``accounts.IdentityNotMapped`` for an
    unknown account, as icacls refuses both.
    """
    fs = WindowsFs(state_dir)
    if _kind(fs, windows_path) is None:
        raise FileNotFoundError(f"{windows_path}: The system cannot find the file specified.")
    sid = accounts.resolve(state_dir, principal).sid
    store = ntfs.NtfsStore(state_dir)
    if remove:
        descriptor = ntfs.remove_entries(store, windows_path, sid, allow=not deny)
    else:
        mask = ICACLS_RIGHTS[rights.upper()] if isinstance(rights, str) else rights
        ace = ntfs.Ace(sid, mask, not deny, frozenset(inheritance), frozenset(propagation))
        descriptor = ntfs.add_entry(store, windows_path, ace)
    return [{**a.to_json(), "allow": a.allow} for a in descriptor.explicit]


OPERATIONS = {"file_acl/get": get, "file_acl/set": set_, "file_acl/remove": remove}


def admin_set_inheritance(state_dir: Path, windows_path: str, mode: str) -> dict[str, Any]:
    """``icacls <path> /inheritance:e|d|r`` (learn.microsoft.com, icacls): ``e`` enables inheritance, ``d``
    disables it and copies the inherited entries as explicit ones, ``r`` disables it and drops them.
    Returns the path's protection and explicit entries afterwards."""
    fs = WindowsFs(state_dir)
    kind = _kind(fs, windows_path)
    if kind is None:
        raise FileNotFoundError(f"{windows_path}: The system cannot find the file specified.")
    store = ntfs.NtfsStore(state_dir)
    current = store.descriptor(windows_path)
    if mode == "e":
        updated = ntfs.Descriptor(current.owner, False, list(current.explicit))
    elif mode == "d":
        copied = list(current.explicit)
        for ace in store.inherited(windows_path, is_container=kind):
            copied = ntfs.merge_entry(copied, ace)
        updated = ntfs.Descriptor(current.owner, True, copied)
    elif mode == "r":
        updated = ntfs.Descriptor(current.owner, True, list(current.explicit))
    else:
        raise ValueError(f"icacls /inheritance:{mode}: give e, d or r")
    store.set_descriptor(windows_path, updated)
    return {"protected": updated.protected, "explicit": [{**a.to_json(), "allow": a.allow} for a in updated.explicit]}


def admin_set_owner(state_dir: Path, windows_path: str, principal: str) -> dict[str, Any]:
    """``icacls <path> /setowner <principal>`` run by an administrator (learn.microsoft.com, icacls: "changes
    the owner of all matching names"; an administrator may name any account, holding SeRestorePrivilege).
    The DACL stays. Returns the path's owner afterwards."""
    fs = WindowsFs(state_dir)
    if _kind(fs, windows_path) is None:
        raise FileNotFoundError(f"{windows_path}: The system cannot find the file specified.")
    account = accounts.resolve(state_dir, principal)
    store = ntfs.NtfsStore(state_dir)
    current = store.descriptor(windows_path)
    store.set_descriptor(windows_path, ntfs.Descriptor(account.sid, current.protected, list(current.explicit)))
    return {"owner": account.sid, "owner_name": account.name}


def admin_read_as(state_dir: Path, windows_path: str, principal: str) -> bytes:
    """The file's content as ``principal`` reads it (a program running as that account opening it for
    reading): ``PermissionError`` when its DACL grants that account's token no FILE_READ_DATA."""
    fs = WindowsFs(state_dir)
    if _kind(fs, windows_path) is not False:
        raise FileNotFoundError(f"{windows_path}: The system cannot find the file specified.")
    sids = accounts.token_sids(state_dir, principal)
    if not ntfs.can_read_file(ntfs.NtfsStore(state_dir), windows_path, sids):
        raise PermissionError(f"Access to the path '{windows_path}' is denied.")
    return fs.resolve(windows_path).read_bytes()

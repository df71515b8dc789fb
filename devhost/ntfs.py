"""SIMULATOR: NTFS security descriptors of the simulated host's files and folders.

Only what Windows stores is stored: each path's owner, whether it is protected (inheritance
disabled) and its *explicit* access entries, in ``<state>/_sim/ntfs.json``. Inherited entries
are computed from the ancestors' inheritable entries with Windows' propagation rules, so an
inherited entry can never be mistaken for an explicit one.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

# Inheritance and propagation flags, as .NET's InheritanceFlags / PropagationFlags name them.
CONTAINER_INHERIT = "ContainerInherit"
OBJECT_INHERIT = "ObjectInherit"
NO_PROPAGATE = "NoPropagateInherit"
INHERIT_ONLY = "InheritOnly"
CREATOR_OWNER = "S-1-3-0"


@dataclass(frozen=True)
class Ace:
    sid: str
    mask: int
    allow: bool = True
    inheritance: frozenset[str] = frozenset()  # ContainerInherit, ObjectInherit
    propagation: frozenset[str] = frozenset()  # NoPropagateInherit, InheritOnly
    inherited: bool = False

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["inheritance"] = sorted(self.inheritance)
        data["propagation"] = sorted(self.propagation)
        return data

    @staticmethod
    def from_json(data: dict[str, Any]) -> Ace:
        return Ace(
            sid=str(data["sid"]),
            mask=int(data["mask"]),
            allow=bool(data.get("allow", True)),
            inheritance=frozenset(data.get("inheritance", ())),
            propagation=frozenset(data.get("propagation", ())),
        )


@dataclass
class Descriptor:
    # A path without a stored descriptor was created by the project's operations or the host's setup, whose
    # token's default owner is BUILTIN\Administrators (accounts.OPERATOR_DEFAULT_OWNER).
    owner: str = "S-1-5-32-544"
    protected: bool = False
    explicit: list[Ace] = field(default_factory=list)


FULL_CONTROL = 0x1F01FF
MODIFY = 0x1301BF
READ_AND_EXECUTE = 0x1200A9
FILE_WRITE_DATA = 0x2  # on a folder: create files (icacls WD)
FILE_APPEND_DATA = 0x4  # on a folder: create subfolders (icacls AD)
_BOTH = frozenset({CONTAINER_INHERIT, OBJECT_INHERIT})
TRUSTED_INSTALLER = "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464"

# `icacls C:\` on Windows Server 2019/2022, the system drive's default permissions as DISA's Windows Server
# 2019 STIG lists them (WN19-00-000140, V-93019, "Default permissions", as in mitre's
# microsoft-windows-server-2019-stig-baseline) and as moby/buildkit#4731 shows them on a Server 2022 image:
#   NT AUTHORITY\SYSTEM:(OI)(CI)(F)    BUILTIN\Administrators:(OI)(CI)(F)    BUILTIN\Users:(OI)(CI)(RX)
#   BUILTIN\Users:(CI)(AD)             BUILTIN\Users:(CI)(IO)(WD)            CREATOR OWNER:(OI)(CI)(IO)(F)
# Not the client SKUs' "Authenticated Users: Modify" (Windows 10/11), which the same issue contrasts. Users may
# create folders and files below C:\ but not change other people's files; every file inherits Users: Read &
# execute. Get-Acl shows AppendData and CreateFiles without Synchronize, so those masks are the bare rights.
# The owner is TrustedInstaller (simplified: CREATOR OWNER's GENERIC_ALL is stored here as Full control).
DRIVE_ROOT = Descriptor(
    owner=TRUSTED_INSTALLER,
    protected=True,
    explicit=[
        Ace("S-1-5-18", FULL_CONTROL, inheritance=_BOTH),
        Ace("S-1-5-32-544", FULL_CONTROL, inheritance=_BOTH),
        Ace("S-1-5-32-545", READ_AND_EXECUTE, inheritance=_BOTH),
        Ace("S-1-5-32-545", FILE_APPEND_DATA, inheritance=frozenset({CONTAINER_INHERIT})),
        Ace(
            "S-1-5-32-545",
            FILE_WRITE_DATA,
            inheritance=frozenset({CONTAINER_INHERIT}),
            propagation=frozenset({INHERIT_ONLY}),
        ),
        Ace("S-1-3-0", FULL_CONTROL, inheritance=_BOTH, propagation=frozenset({INHERIT_ONLY})),
    ],
)


def inherit(parent: Ace, child_is_container: bool) -> Ace | None:
    """The entry a child receives from an inheritable entry of its parent (None: not inherited)."""
    if child_is_container:
        if CONTAINER_INHERIT in parent.inheritance:
            if NO_PROPAGATE in parent.propagation:
                return replace(parent, inheritance=frozenset(), propagation=frozenset(), inherited=True)
            return replace(parent, propagation=parent.propagation - {INHERIT_ONLY}, inherited=True)
        if OBJECT_INHERIT in parent.inheritance and NO_PROPAGATE not in parent.propagation:
            return replace(parent, propagation=frozenset({INHERIT_ONLY}), inherited=True)
        return None
    if OBJECT_INHERIT in parent.inheritance:
        return replace(parent, inheritance=frozenset(), propagation=frozenset(), inherited=True)
    return None


class NtfsStore:
    """Security descriptors keyed by lower-cased Windows path (NTFS is case-insensitive)."""

    _lock = threading.Lock()

    def __init__(self, state_dir: Path) -> None:
        self._file = state_dir / "_sim" / "ntfs.json"

    def _load(self) -> dict[str, Descriptor]:
        if not self._file.exists():
            return {}
        raw = json.loads(self._file.read_text(encoding="utf-8"))
        return {
            key: Descriptor(value["owner"], value["protected"], [Ace.from_json(a) for a in value["explicit"]])
            for key, value in raw.items()
        }

    def _save(self, data: dict[str, Descriptor]) -> None:
        self._file.parent.mkdir(parents=True, exist_ok=True)
        raw = {
            key: {"owner": d.owner, "protected": d.protected, "explicit": [a.to_json() for a in d.explicit]}
            for key, d in sorted(data.items())
        }
        # Replaced atomically: tests and the admin CLI edit this file from other processes while the
        # host reads it, and must never see it half written.
        temporary = self._file.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        temporary.write_text(json.dumps(raw, indent=1), encoding="utf-8")
        os.replace(temporary, self._file)

    @staticmethod
    def key(windows_path: str) -> str:
        return windows_path.rstrip("\\").lower() if len(windows_path) > 3 else windows_path[:2].lower() + "\\"

    def descriptor(self, windows_path: str) -> Descriptor:
        key = self.key(windows_path)
        if len(key) == 3:
            return self._load().get(key, DRIVE_ROOT)
        return self._load().get(key, Descriptor())

    def set_descriptor(self, windows_path: str, descriptor: Descriptor) -> None:
        with self._lock:
            data = self._load()
            data[self.key(windows_path)] = Descriptor(
                descriptor.owner, descriptor.protected, [replace(a, inherited=False) for a in descriptor.explicit]
            )
            self._save(data)

    def set_dacl(self, windows_path: str, protected: bool, explicit: list[Ace]) -> None:
        """SetAccessControl with a FileSystemSecurity read earlier by GetAccessControl('Access'): the DACL it
        holds replaces the path's, whole, and its protection with it; the owner stays. .NET's
        NativeObjectSecurity.Persist passes the object's DACL to SetSecurityInfo with DACL_SECURITY_INFORMATION
        (and PROTECTED_ or UNPROTECTED_DACL_SECURITY_INFORMATION), and SetSecurityInfo's ``pDacl`` is "the new
        DACL for the object" (learn.microsoft.com, SetSecurityInfo function (aclapi.h); dotnet/runtime
        System.Security.AccessControl NativeObjectSecurity.cs). An entry another writer added after the copy
        was read is not in it, and is gone."""
        with self._lock:
            data = self._load()
            key = self.key(windows_path)
            current = data.get(key) or (DRIVE_ROOT if len(key) == 3 else Descriptor())
            data[key] = Descriptor(current.owner, protected, [replace(a, inherited=False) for a in explicit])
            self._save(data)

    def forget(self, windows_path: str) -> None:
        """The path was deleted: drop its descriptor and its descendants'."""
        prefix = self.key(windows_path)
        with self._lock:
            data = self._load()
            for key in [k for k in data if k == prefix or k.startswith(prefix + "\\")]:
                del data[key]
            self._save(data)

    def rename(self, old_path: str, new_path: str) -> None:
        """The file at ``old_path`` now lives at ``new_path`` (MoveFileEx on one volume, replacing any file
        there): it keeps its own security descriptor, explicit entries and protection alike, and does not
        take the new folder's inheritable entries (learn.microsoft.com, "File Security and Access Rights";
        Firefox bug 1980886 and microsoft/winfile#289 re-apply inheritance by hand after a move for that
        reason). A path without a stored descriptor keeps inheriting, now from its new folder."""
        with self._lock:
            data = self._load()
            moved = data.pop(self.key(old_path), None)
            data.pop(self.key(new_path), None)
            if moved is not None:
                data[self.key(new_path)] = moved
            self._save(data)

    def replace_file(self, replaced: str, replacement: str, backup: str | None) -> None:
        """The security descriptors after a successful ReplaceFileW(replaced, replacement, backup).

        learn.microsoft.com, ReplaceFileW, Remarks: the function "preserves the following attributes of the
        original file: ... DACLs ...", and "the resulting file has the same file ID as the replacement file".
        So the file now named ``replaced`` is the replacement's file object (its owner stays) carrying the
        replaced file's DACL, protection included; the replaced file itself becomes ``backup`` (a rename: it
        keeps its own descriptor) or is deleted."""
        with self._lock:
            data = self._load()
            original = data.pop(self.key(replaced), None) or Descriptor()
            incoming = data.pop(self.key(replacement), None) or Descriptor()
            if backup is not None:
                data[self.key(backup)] = original
            data[self.key(replaced)] = Descriptor(incoming.owner, original.protected, list(original.explicit))
            self._save(data)

    def copy_dacl(self, source: str, target: str) -> None:
        """``target`` takes ``source``'s DACL (its owner stays): what ReplaceFileW has done to the replacement
        file when it fails with ERROR_UNABLE_TO_MOVE_REPLACEMENT_2 ("it has inherited the file streams and
        attributes from the file it is replacing", learn.microsoft.com ReplaceFileW, Return value)."""
        with self._lock:
            data = self._load()
            dacl = data.get(self.key(source)) or Descriptor()
            current = data.get(self.key(target)) or Descriptor()
            data[self.key(target)] = Descriptor(current.owner, dacl.protected, list(dacl.explicit))
            self._save(data)

    def inherited(self, windows_path: str, is_container: bool) -> list[Ace]:
        """Entries the path inherits, computed from the nearest ancestors down."""
        key = self.key(windows_path)
        if len(key) == 3 or self.descriptor(windows_path).protected:
            return []
        parent = key.rsplit("\\", 1)[0]
        parent = parent + "\\" if len(parent) == 2 else parent
        parent_aces = self.explicit_and_inherited(parent, is_container=True)
        owner = self.descriptor(windows_path).owner
        result: list[Ace] = []
        for ace in parent_aces:
            child = inherit(ace, is_container)
            if child is None:
                continue
            if child.sid == CREATOR_OWNER and INHERIT_ONLY not in child.propagation:
                # CREATOR OWNER is "a SID to be replaced by the SID of the user who creates a new object"
                # (learn.microsoft.com, Well-known SIDs): the entry that applies names the owner; a folder
                # keeps an inherit-only CREATOR OWNER entry for its own children.
                result.append(replace(child, sid=owner, inheritance=frozenset(), propagation=frozenset()))
                if child.inheritance:
                    result.append(replace(child, propagation=child.propagation | {INHERIT_ONLY}))
                continue
            result.append(child)
        return result

    def explicit_and_inherited(self, windows_path: str, is_container: bool) -> list[Ace]:
        """The full DACL in Windows' canonical order: explicit entries first, then inherited ones."""
        return list(self.descriptor(windows_path).explicit) + self.inherited(windows_path, is_container)


# .NET's FileSystemAccessRule adds Synchronize to allow entries and strips it from deny entries
# (except FullControl), so a later read shows a mask that differs from the rights requested.
SYNCHRONIZE = 0x100000
_DELETE_CHILD = 0x40


def access_mask_for(rights: int, allow: bool) -> int:
    """The mask Windows stores for ``rights`` in an allow or deny entry."""
    if allow:
        return rights | SYNCHRONIZE
    if rights in (FULL_CONTROL, FULL_CONTROL & ~_DELETE_CHILD):
        return rights
    return rights & ~SYNCHRONIZE


def is_canonical(explicit: list[Ace]) -> bool:
    """Whether the explicit entries are in canonical order (every deny entry before every allow entry).

    Some tools and raw SetSecurityDescriptor calls write allow-before-deny DACLs; .NET's CommonAcl then
    refuses AddAccessRule/RemoveAccessRule* with InvalidOperationException "This access control list is
    not in canonical form and therefore cannot be modified." (learn.microsoft.com,
    ObjectSecurity.AreAccessRulesCanonical / "Order of ACEs in a DACL")."""
    seen_allow = False
    for ace in explicit:
        if ace.allow:
            seen_allow = True
        elif seen_allow:
            return False
    return True


def same_kind(a: Ace, b: Ace) -> bool:
    """Same SID, type and flags: Windows keeps one entry per such kind and merges masks into it."""
    return (a.sid, a.allow, a.inheritance, a.propagation) == (b.sid, b.allow, b.inheritance, b.propagation)


def merge_entry(explicit: list[Ace], ace: Ace) -> list[Ace]:
    """The explicit entries after adding ``ace`` as AddAccessRule does: merged into an entry of the same
    kind, otherwise added in canonical order (explicit deny entries before explicit allow entries)."""
    for index, existing in enumerate(explicit):
        if same_kind(existing, ace):
            return [*explicit[:index], replace(existing, mask=existing.mask | ace.mask), *explicit[index + 1 :]]
    denies = [a for a in explicit if not a.allow]
    allows = [a for a in explicit if a.allow]
    added = replace(ace, inherited=False)
    return [*denies, added, *allows] if not ace.allow else [*denies, *allows, added]


def without_entries(explicit: list[Ace], sid: str, allow: bool) -> list[Ace]:
    """The explicit entries without any of ``sid``'s entries of that type (RemoveAccessRuleAll)."""
    return [a for a in explicit if not (a.sid.upper() == sid.upper() and a.allow == allow)]


def _update(store: NtfsStore, windows_path: str, entries: list[Ace]) -> Descriptor:
    current = store.descriptor(windows_path)
    updated = Descriptor(current.owner, current.protected, entries)
    store.set_descriptor(windows_path, updated)
    return updated


def add_entry(store: NtfsStore, windows_path: str, ace: Ace) -> Descriptor:
    return _update(store, windows_path, merge_entry(list(store.descriptor(windows_path).explicit), ace))


def remove_entries(store: NtfsStore, windows_path: str, sid: str, allow: bool) -> Descriptor:
    return _update(store, windows_path, without_entries(list(store.descriptor(windows_path).explicit), sid, allow))


# Windows' generic mapping for files (FILE_GENERIC_READ, _WRITE, _EXECUTE, FILE_ALL_ACCESS).
GENERIC_FILE_MAPPING = {0x80000000: 0x120089, 0x40000000: 0x120116, 0x20000000: 0x1200A0, 0x10000000: 0x1F01FF}
FILE_READ_DATA = 0x1


def map_generic(mask: int) -> int:
    for generic, specific in GENERIC_FILE_MAPPING.items():
        if mask & generic:
            mask = (mask & ~generic) | specific
    return mask


OWNER_RIGHTS = "S-1-3-4"
READ_CONTROL = 0x20000
WRITE_DAC = 0x40000
WRITE_OWNER = 0x80000


def granted_rights(dacl: list[Ace], token_sids: set[str], owner: str | None = None) -> int:
    """The rights a token with ``token_sids`` gets from ``dacl`` (explicit then inherited, canonical order) on an
    object owned by ``owner``.

    AccessCheck as learn.microsoft.com "How DACLs Control Access to an Object" describes it: the entries
    are examined in order; an inherit-only entry does not apply to the object itself; an access-denied
    entry for one of the token's SIDs denies the rights it names that no earlier entry granted; an
    access-allowed entry grants the rights it names that no earlier entry denied. Rights nobody granted
    are denied ("If the DACL has no ACEs, the system denies all access"). The owner is the exception: MS-DTYP
    2.5.3.2 "Access Check Algorithm Pseudocode" grants a token holding the owner SID READ_CONTROL and WRITE_DAC
    before the DACL is read, unless the DACL has an OWNER RIGHTS (S-1-3-4) entry ("an empty DACL ... means that
    no principal can gain access to the object, except through the implied access of the owner";
    learn.microsoft.com "Owner of a New Object": the owner "implicitly has WRITE_DAC access")."""
    sids = {sid.upper() for sid in token_sids}
    granted = denied = 0
    if owner is not None and owner.upper() in sids and not any(a.sid.upper() == OWNER_RIGHTS for a in dacl):
        granted = READ_CONTROL | WRITE_DAC
    for ace in dacl:
        if INHERIT_ONLY in ace.propagation or ace.sid.upper() not in sids:
            continue
        mask = map_generic(ace.mask)
        if ace.allow:
            granted |= mask & ~denied
        else:
            denied |= mask & ~granted
    return granted


def access_granted(store: NtfsStore, windows_path: str, token_sids: set[str], desired: int) -> bool:
    """Whether a token may open the file with every right in ``desired`` (its DACL and its owner decide)."""
    dacl = store.explicit_and_inherited(windows_path, is_container=False)
    owner = store.descriptor(windows_path).owner
    return granted_rights(dacl, token_sids, owner) & desired == desired


def can_read_file(store: NtfsStore, windows_path: str, token_sids: set[str]) -> bool:
    """Whether a token may open the file for reading its content (FILE_READ_DATA)."""
    return access_granted(store, windows_path, token_sids, FILE_READ_DATA)

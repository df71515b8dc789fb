"""NTFS access rights: .NET's FileSystemRights names <-> access masks.

Rights are compared as masks, never as names: ``Modify`` and the list of rights it expands to
are the same entry on the host. Names are derived back from a mask one way only (largest
composite first), so the host's entry and the desired one always print alike.
"""

from __future__ import annotations

import re

# The values of System.Security.AccessControl.FileSystemRights.
SYNCHRONIZE = 0x100000
_SINGLE = {
    "ListDirectory": 0x1,  # alias ReadData
    "CreateFiles": 0x2,  # alias WriteData
    "CreateDirectories": 0x4,  # alias AppendData
    "ReadExtendedAttributes": 0x8,
    "WriteExtendedAttributes": 0x10,
    "Traverse": 0x20,  # alias ExecuteFile
    "DeleteSubdirectoriesAndFiles": 0x40,
    "ReadAttributes": 0x80,
    "WriteAttributes": 0x100,
    "Delete": 0x10000,
    "ReadPermissions": 0x20000,
    "ChangePermissions": 0x40000,
    "TakeOwnership": 0x80000,
}
# Composite rights, largest first: the order in which a mask is turned back into names.
_COMPOSITE = {
    "FullControl": 0x1F01FF & ~SYNCHRONIZE,
    "Modify": 0x301BF,
    "ReadAndExecute": 0x200A9,
    "Read": 0x20089,
    "Write": 0x116,
}
# Names .NET also accepts for the same bits; normalised to the folder names above.
_ALIASES = {"ReadData": "ListDirectory", "WriteData": "CreateFiles", "AppendData": "CreateDirectories"}
_ALIASES["ExecuteFile"] = "Traverse"

RIGHT_NAMES: dict[str, int] = {**_COMPOSITE, **_SINGLE}
ALL_RIGHTS = _COMPOSITE["FullControl"]

# Windows' generic mapping for files (FILE_GENERIC_*), which icacls and old tools may leave in an entry.
_GENERIC = {0x80000000: 0x120089, 0x40000000: 0x120116, 0x20000000: 0x1200A0, 0x10000000: 0x1F01FF}


_HEX = re.compile(r"^0x[0-9A-Fa-f]{1,8}$")


def canonical_name(name: str) -> str:
    """The name this project uses for a right (case-insensitive; .NET aliases and hex masks accepted)."""
    if _HEX.match(name.strip()):
        return f"0x{int(name.strip(), 16):X}"
    for known in [*RIGHT_NAMES, *_ALIASES]:
        if known.lower() == name.strip().lower():
            return _ALIASES.get(known, known)
    if name.strip().lower() == "synchronize":
        raise ValueError("'Synchronize' is added by Windows to every allow entry by itself; leave it out of 'rights'")
    raise ValueError(
        f"{name!r} is not a file-system right; use one of {', '.join(RIGHT_NAMES)} (or a mask such as '0x1F01FF')"
    )


def mask_of(names: list[str]) -> int:
    mask = 0
    for name in names:
        canonical = canonical_name(name)
        mask |= int(canonical, 16) if canonical.startswith("0x") else RIGHT_NAMES[canonical]
    return normalize_mask(mask)


def normalize_mask(mask: int) -> int:
    """A host mask in comparable form: generic bits mapped, Synchronize dropped (Windows adds it to allow entries)."""
    mask &= 0xFFFFFFFF
    for generic, specific in _GENERIC.items():
        if mask & generic:
            mask = (mask & ~generic) | specific
    return mask & ~SYNCHRONIZE


def names_of(mask: int) -> list[str]:
    """The names of a mask: composites first, then the single rights left over (``[]`` for no right)."""
    remaining = normalize_mask(mask)
    names = []
    for name, bits in _COMPOSITE.items():
        if remaining & bits == bits:
            names.append(name)
            remaining &= ~bits
    for name, bits in _SINGLE.items():
        if remaining & bits:
            names.append(name)
            remaining &= ~bits
    if remaining:
        names.append(f"0x{remaining:X}")  # bits .NET has no name for: shown, never hidden
    return names


def normalize_names(names: list[str]) -> list[str]:
    """E.g. ``["Read", "ReadAndExecute", "ListDirectory"]`` -> ``["ReadAndExecute"]``."""
    return names_of(mask_of(names))

"""SIMULATOR: model of providers/scripting/ps/_accounts.ps1, the account and mask helpers the FileAcl and
SettingsFile scripts share.

``ConvertTo-AccountSid`` looks an English well-known name up in the script's own table before it asks
Windows (NTAccount.Translate, which knows only the names of the host's display language:
``accounts.set_display_language``); ``ConvertTo-ComparableMask`` maps generic bits and drops Synchronize.
"""

from __future__ import annotations

from pathlib import Path

from devhost import accounts, ntfs
from devhost.ps51 import ScriptFact

# The operations whose scripts include _accounts.ps1 and whose models use account_sid.
_USERS = tuple(f"{r}/{v}" for r in ("certificate", "file_acl", "settings_file") for v in ("get", "set", "remove"))

SCRIPT_FACTS = (
    ScriptFact(
        _USERS,
        r"\$WellKnownAccountSids\.ContainsKey\(\$Name\)[^\n]*\n\s*"
        r"return \(New-Object System\.Security\.Principal\.NTAccount",
        "English names of well-known accounts become SIDs before NTAccount.Translate, which knows only the host "
        "language's names",
    ),
    ScriptFact(
        _USERS,
        r"\$WellKnownAccountSids = \[hashtable\]::new\(@\{[^}]*\}, \[System\.StringComparer\]::OrdinalIgnoreCase\)",
        "the table's keys compare ordinally without case (a 5.1 hashtable literal compares with the current culture: "
        "no i/I pair in tr-TR, PowerShell/PowerShell#8280), as the model's lower() does",
    ),
)

# The script's $WellKnownAccountSids (a hashtable: its keys compare without case).
WELL_KNOWN_ENGLISH = {
    name.lower(): sid
    for sid, names in (
        (accounts.SYSTEM, ("NT AUTHORITY\\SYSTEM", "SYSTEM", "LocalSystem")),
        ("S-1-5-19", ("NT AUTHORITY\\LOCAL SERVICE", "LOCAL SERVICE", "LocalService", "NT AUTHORITY\\LocalService")),
        (
            "S-1-5-20",
            ("NT AUTHORITY\\NETWORK SERVICE", "NETWORK SERVICE", "NetworkService", "NT AUTHORITY\\NetworkService"),
        ),
        (accounts.AUTHENTICATED_USERS, ("NT AUTHORITY\\Authenticated Users", "Authenticated Users")),
        ("S-1-5-17", ("NT AUTHORITY\\IUSR", "IUSR")),
        ("S-1-5-6", ("NT AUTHORITY\\SERVICE", "SERVICE")),
        ("S-1-5-2", ("NT AUTHORITY\\NETWORK", "NETWORK")),
        ("S-1-5-4", ("NT AUTHORITY\\INTERACTIVE", "INTERACTIVE")),
        ("S-1-5-3", ("NT AUTHORITY\\BATCH", "BATCH")),
        ("S-1-5-7", ("NT AUTHORITY\\ANONYMOUS LOGON", "ANONYMOUS LOGON")),
        ("S-1-3-0", ("CREATOR OWNER",)),
        ("S-1-3-4", ("OWNER RIGHTS",)),
        (accounts.ADMINISTRATORS, ("BUILTIN\\Administrators", "Administrators")),
        (accounts.USERS, ("BUILTIN\\Users", "Users")),
        ("S-1-5-32-546", ("BUILTIN\\Guests", "Guests")),
        ("S-1-5-32-551", ("BUILTIN\\Backup Operators", "Backup Operators")),
        ("S-1-5-32-555", ("BUILTIN\\Remote Desktop Users", "Remote Desktop Users")),
        ("S-1-5-32-558", ("BUILTIN\\Performance Monitor Users", "Performance Monitor Users")),
        ("S-1-5-32-559", ("BUILTIN\\Performance Log Users", "Performance Log Users")),
        ("S-1-5-32-568", ("BUILTIN\\IIS_IUSRS", "IIS_IUSRS")),
        ("S-1-5-32-573", ("BUILTIN\\Event Log Readers", "Event Log Readers")),
        ("S-1-15-2-1", ("APPLICATION PACKAGE AUTHORITY\\ALL APPLICATION PACKAGES", "ALL APPLICATION PACKAGES")),
        (accounts.EVERYONE, ("Everyone",)),
    )
    for name in names
}


def account_sid(state_dir: Path, name: str) -> str:
    """ConvertTo-AccountSid for a name (not a SID): the script's table first, then NTAccount.Translate.
    Raises ``accounts.IdentityNotMapped`` as Translate does."""
    if name.lower() in WELL_KNOWN_ENGLISH:
        return WELL_KNOWN_ENGLISH[name.lower()]
    return accounts.resolve(state_dir, name).sid.upper()


def convert_to_account_sid(state_dir: Path, name: str) -> str:
    """ConvertTo-AccountSid: a SID as given (New-Object SecurityIdentifier looks nothing up), else account_sid."""
    return name.upper() if name.upper().startswith("S-1-") else account_sid(state_dir, name)


def comparable_mask(mask: int) -> int:
    """ConvertTo-ComparableMask: generic bits mapped as Windows maps them for files, Synchronize dropped."""
    return ntfs.map_generic(mask & 0xFFFFFFFF) & ~ntfs.SYNCHRONIZE

"""SIMULATOR: the accounts the simulated host can translate to SIDs (and back).

Well-known accounts are built in. Domain and local accounts (service accounts, gMSAs) live in
``<state>/_sim/accounts.json`` (``python -m devhost add-account``). Virtual accounts
``IIS AppPool\\<pool>`` exist only while their pool exists, as on Windows; the IIS model
registers a check for that (``register_virtual_domain``).
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Account:
    sid: str
    name: str  # canonical DOMAIN\name as Windows prints it
    kind: str  # "well-known", "user", "gmsa", "group", "virtual"
    password_sha256: str | None = None


class IdentityNotMapped(Exception):
    """What .NET raises as IdentityNotMappedException: 'Some or all identity references could not be translated.'"""


_WELL_KNOWN: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("S-1-1-0", "Everyone", ()),
    ("S-1-3-0", "CREATOR OWNER", ()),
    ("S-1-5-11", "NT AUTHORITY\\Authenticated Users", ()),
    ("S-1-5-18", "NT AUTHORITY\\SYSTEM", ("LocalSystem", "SYSTEM")),
    ("S-1-5-19", "NT AUTHORITY\\LOCAL SERVICE", ("LocalService",)),
    ("S-1-5-20", "NT AUTHORITY\\NETWORK SERVICE", ("NetworkService",)),
    ("S-1-5-32-544", "BUILTIN\\Administrators", ("Administrators",)),
    ("S-1-5-32-545", "BUILTIN\\Users", ("Users",)),
    ("S-1-5-32-568", "BUILTIN\\IIS_IUSRS", ("IIS_IUSRS",)),
    ("S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464", "NT SERVICE\\TrustedInstaller", ()),
)

# The names Windows gives the well-known accounts on a host installed in German (de-DE): these names are
# localized, only the SIDs are the same everywhere (learn.microsoft.com "Well-known SIDs"). NTAccount.Translate
# of an English name fails there with error 1332 / IdentityNotMapped (MicrosoftDocs/windows-powershell-docs#2121:
# "Jeder", "Administratoren"; markwragg/PowerShell-Lumos#2: "VORDEFINIERT\Administratoren";
# asheroto/winget-install#71: "NT-AUTORITÄT\SYSTEM"; 0x6d69636b/windows_hardening#36: "Benutzer"). Chosen with
# ``set_display_language(state_dir, "de-DE")`` (or "fr-FR", below); the aliases (LocalSystem...) are
# service-manager names, not localized.
_LOCALIZED: dict[str, dict[str, str]] = {
    "de-DE": {
        "S-1-1-0": "Jeder",
        "S-1-3-0": "ERSTELLER-BESITZER",
        "S-1-5-11": "NT-AUTORITÄT\\Authentifizierte Benutzer",
        "S-1-5-18": "NT-AUTORITÄT\\SYSTEM",
        "S-1-5-19": "NT-AUTORITÄT\\LOKALER DIENST",
        "S-1-5-20": "NT-AUTORITÄT\\NETZWERKDIENST",
        "S-1-5-32-544": "VORDEFINIERT\\Administratoren",
        "S-1-5-32-545": "VORDEFINIERT\\Benutzer",
        "S-1-5-32-568": "VORDEFINIERT\\IIS_IUSRS",
    },
    # A host installed in French (fr-FR): the domain of the built-in groups stays BUILTIN. Names as Get-Acl and
    # icacls print them there: "AUTORITE NT\Système", "AUTORITE NT\Utilisateurs authentifiés",
    # "BUILTIN\Administrateurs", "BUILTIN\Utilisateurs" with their SDDL (SY, AU, BA, BU) in ilearned.eu.org's
    # article on the Windows security model; "Tout le monde" and "CREATEUR PROPRIETAIRE" in icacls listings of
    # C:\Users and C:\ProgramData on French hosts; "AUTORITE NT\SERVICE LOCAL" and "AUTORITE NT\SERVICE RÉSEAU"
    # in tables of localized service account names (SQL Server setup scripts, Windows hardening checklists).
    "fr-FR": {
        "S-1-1-0": "Tout le monde",
        "S-1-3-0": "CREATEUR PROPRIETAIRE",
        "S-1-5-11": "AUTORITE NT\\Utilisateurs authentifiés",
        "S-1-5-18": "AUTORITE NT\\Système",
        "S-1-5-19": "AUTORITE NT\\SERVICE LOCAL",
        "S-1-5-20": "AUTORITE NT\\SERVICE RÉSEAU",
        "S-1-5-32-544": "BUILTIN\\Administrateurs",
        "S-1-5-32-545": "BUILTIN\\Utilisateurs",
        "S-1-5-32-568": "BUILTIN\\IIS_IUSRS",
    },
}


def _language_file(state_dir: Path) -> Path:
    return state_dir / "_sim" / "language.json"


def set_display_language(state_dir: Path, language: str) -> None:
    """The language Windows was installed in (en-US by default): it names the well-known accounts."""
    if language != "en-US" and language not in _LOCALIZED:
        raise ValueError(f"SIMULATOR: the account names of {language!r} are not modelled")
    path = _language_file(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"language": language}), encoding="utf-8")


def _well_known(state_dir: Path) -> list[tuple[str, str, tuple[str, ...]]]:
    """The well-known accounts with the names this host's language gives them."""
    path = _language_file(state_dir)
    language = json.loads(path.read_text(encoding="utf-8"))["language"] if path.is_file() else "en-US"
    names = _LOCALIZED.get(language, {})
    return [(sid, names.get(sid, canonical), aliases) for sid, canonical, aliases in _WELL_KNOWN]


VirtualNames = Callable[[Path], list[str]]
_virtual_domains: dict[str, tuple[int, VirtualNames]] = {}


def register_virtual_domain(domain: str, rid: int, names: VirtualNames) -> None:
    """E.g. ``IIS APPPOOL`` (rid 82): ``names(state_dir)`` lists the virtual accounts that exist now."""
    _virtual_domains[domain.upper()] = (rid, names)


def virtual_sid(domain_rid: int, name: str) -> str:
    """Windows derives virtual-account SIDs from SHA-1 of the upper-cased name (UTF-16LE)."""
    digest = hashlib.sha1(name.upper().encode("utf-16-le")).digest()  # Windows' own scheme
    parts = struct.unpack("<5I", digest)
    return f"S-1-5-{domain_rid}-" + "-".join(str(p) for p in parts)


def _accounts_file(state_dir: Path) -> Path:
    return state_dir / "_sim" / "accounts.json"


def _stored(state_dir: Path) -> list[Account]:
    path = _accounts_file(state_dir)
    if not path.exists():
        return []
    return [Account(**item) for item in json.loads(path.read_text(encoding="utf-8"))]


def add_account(state_dir: Path, name: str, kind: str, password: str | None = None) -> Account:
    """Create a domain/local account (kind user, gmsa or group) with a deterministic SID."""
    if "\\" not in name:
        raise ValueError("give the account as DOMAIN\\name")
    if kind == "gmsa" and not name.endswith("$"):
        raise ValueError("a group managed service account name ends with '$'")
    rid = 1000 + int(hashlib.sha256(name.lower().encode()).hexdigest()[:6], 16) % 100000
    account = Account(
        sid=f"S-1-5-21-1004336348-1177238915-682003330-{rid}",
        name=name,
        kind=kind,
        password_sha256=hashlib.sha256(password.encode()).hexdigest() if password else None,
    )
    accounts = [a for a in _stored(state_dir) if a.name.lower() != name.lower()] + [account]
    path = _accounts_file(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([a.__dict__ for a in accounts], indent=2), encoding="utf-8")
    return account


def resolve(state_dir: Path, name: str) -> Account:
    """Translate an account name (or a SID string) as NTAccount.Translate would."""
    if name.upper().startswith("S-1-"):
        return lookup_sid(state_dir, name)
    lowered = name.lower()
    for sid, canonical, aliases in _well_known(state_dir):
        candidates = {canonical.lower(), canonical.split("\\")[-1].lower(), *(a.lower() for a in aliases)}
        if lowered in candidates:
            return Account(sid, canonical, "well-known")
    for account in _stored(state_dir):
        if account.name.lower() == lowered:
            return account
    if "\\" in name:
        domain, short = name.split("\\", 1)
        if domain.upper() in _virtual_domains:
            rid, names = _virtual_domains[domain.upper()]
            for existing in names(state_dir):
                if existing.lower() == short.lower():
                    return Account(virtual_sid(rid, existing), f"{domain.upper()}\\{existing}", "virtual")
    raise IdentityNotMapped(f"Some or all identity references could not be translated. ({name})")


def lookup_sid(state_dir: Path, sid: str) -> Account:
    for known_sid, canonical, _ in _well_known(state_dir):
        if known_sid == sid.upper():
            return Account(known_sid, canonical, "well-known")
    for account in _stored(state_dir):
        if account.sid == sid.upper():
            return account
    for domain, (rid, names) in _virtual_domains.items():
        for existing in names(state_dir):
            if virtual_sid(rid, existing) == sid.upper():
                return Account(sid.upper(), f"{domain}\\{existing}", "virtual")
    raise IdentityNotMapped(f"Some or all identity references could not be translated. ({sid})")


EVERYONE = "S-1-1-0"
AUTHENTICATED_USERS = "S-1-5-11"
SERVICE_LOGON = "S-1-5-6"
USERS = "S-1-5-32-545"
ADMINISTRATORS = "S-1-5-32-544"
IIS_IUSRS = "S-1-5-32-568"
SYSTEM = "S-1-5-18"
NETWORK = "S-1-5-2"

# The token the project's operations run with: the deploying account must be a local administrator (README,
# "Pointing it at a real Windows host"), and a WinRM logon of an administrator gets its full, elevated token
# (learn.microsoft.com "User Account Control and remote restrictions": a domain administrator's remote logon
# is not filtered; a local one with LocalAccountTokenFilterPolicy). Its groups: Administrators, Users,
# Everyone, Authenticated Users and NETWORK (a network logon). Its default owner, the owner of every object it
# creates without naming one, is BUILTIN\Administrators: "for users who are members of the built-in
# Administrators group, the system automatically sets the default owner SID in the access token to the
# Administrators group" (learn.microsoft.com "How Security Descriptors are Set on New Directory Objects";
# "Owner of a New Object": the owner is the token's default owner). The user's own SID names no entry here.
OPERATOR_TOKEN = frozenset({ADMINISTRATORS, USERS, EVERYONE, AUTHENTICATED_USERS, NETWORK})
OPERATOR_DEFAULT_OWNER = ADMINISTRATORS
# The deploying account's own SID (WindowsIdentity.GetCurrent().User in the scripts): a local or domain
# administrator, here a fixed one. It owns what it creates itself on hosts whose policy "System objects: Default
# owner for objects created by members of the Administrators group" is "Object creator" (or what it made in
# Explorer); a test plants such objects by giving this SID as their owner.
OPERATOR_USER = "S-1-5-21-3623811015-3361044348-30300820-500"


def token_sids(state_dir: Path, name: str) -> set[str]:
    """The SIDs in the access token of a logon of ``name`` (its own SID and its groups), for access checks.

    From learn.microsoft.com "Well-known SIDs" and "Security groups": every authenticated logon carries
    Everyone and Authenticated Users, and BUILTIN\\Users holds Authenticated Users (and Domain Users) by
    default; a service logon (a pool's worker process, a Windows service) carries SERVICE; LocalSystem's
    token holds BUILTIN\\Administrators. "Application Pool Identities" (learn.microsoft.com, IIS): the
    worker process of a pool gets the IIS_IUSRS group in its token. Accounts are members of no other
    group here (no membership model); a group cannot log on."""
    account = resolve(state_dir, name)
    if (
        account.kind == "group"
        or account.sid.startswith("S-1-5-32-")
        or account.sid in (EVERYONE, "S-1-3-0", AUTHENTICATED_USERS)
    ):
        raise ValueError(f"SIMULATOR: {account.name} is a group, not an account that logs on")
    sids = {account.sid, EVERYONE, AUTHENTICATED_USERS, USERS}
    if account.sid == SYSTEM:
        sids.add(ADMINISTRATORS)
    if account.kind in ("virtual", "gmsa") or account.sid in ("S-1-5-19", "S-1-5-20", SYSTEM):
        sids.add(SERVICE_LOGON)
    if account.kind == "virtual" and account.name.upper().startswith("IIS APPPOOL\\"):
        sids.add(IIS_IUSRS)
    return sids

"""SIMULATOR: the local security policy's User Rights Assignment, as LSA keeps it (LsaAddAccountRights,
LsaEnumerateAccountRights, LsaRemoveAccountRights).

Rights are held per SID, as LSA stores them: LsaEnumerateAccountRights returns only the rights given to that
SID itself, never those a group of the account holds (learn.microsoft.com "LsaEnumerateAccountRights"). Who
holds a right through a group is the logon's business (devhost.scm for services, devhost.iis for pools).
Kept in ``<state>/_sim/user_rights.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from devhost.hooks import read_knobs

SERVICE_LOGON_RIGHT = "SeServiceLogonRight"  # "Log on as a service"
BATCH_LOGON_RIGHT = "SeBatchLogonRight"  # "Log on as a batch job"
DENY_BATCH_LOGON_RIGHT = "SeDenyBatchLogonRight"  # "Deny log on as a batch job": overrides the grant


# LsaNtStatusToWinError of the status LsaAddAccountRights may return, as Win32Exception words it.
_ERRORS = {5: "Access is denied.", 1332: "No mapping between account names and security IDs was done."}


class LsaError(Exception):
    """The Win32Exception the scripts' AccountRights helper throws when LSA refuses."""

    def __init__(self, code: int) -> None:
        super().__init__(_ERRORS.get(code, f"LSA error {code}"))
        self.code = code

    def text(self) -> str:
        """Get-LsaErrorText: the (localized) Win32 text, then its code, which reads the same in any language."""
        return f"{self} (Win32 {self.code})"


def _rights_file(state_dir: Path) -> Path:
    return state_dir / "_sim" / "user_rights.json"


def _load(state_dir: Path) -> dict[str, list[str]]:
    path = _rights_file(state_dir)
    data: dict[str, list[str]] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return data


def _save(state_dir: Path, data: dict[str, list[str]]) -> None:
    path = _rights_file(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")


def rights_of(state_dir: Path, sid: str) -> list[str]:
    """LsaEnumerateAccountRights: the rights given to this SID itself."""
    return _load(state_dir).get(sid.upper(), [])


def holds(state_dir: Path, sid: str, right: str) -> bool:
    return right in rights_of(state_dir, sid)


def grant_right(state_dir: Path, sid: str, right: str) -> bool:
    """LsaAddAccountRights: True when added, False when the account already held it.

    The knob ``lsa_add_rights_error`` (a Win32 error, e.g. 5 as for a deploying account that may not change the
    local security policy) makes it fail as LSA does (LsaError)."""
    data = _load(state_dir)
    refused = read_knobs(state_dir).get("lsa_add_rights_error")
    held = data.setdefault(sid.upper(), [])
    if right in held:
        return False
    if refused:
        raise LsaError(int(refused))
    held.append(right)
    _save(state_dir, data)
    return True


def admin_grant_right(state_dir: Path, sid: str, right: str) -> None:
    """secpol.msc, or a Group Policy refresh that names the account (e.g. "Deny log on as a batch job")."""
    data = _load(state_dir)
    held = data.setdefault(sid.upper(), [])
    if right not in held:
        held.append(right)
    _save(state_dir, data)


def admin_revoke_right(state_dir: Path, sid: str, right: str) -> None:
    """secpol.msc, or a Group Policy refresh whose list leaves the account out: the SID loses the right."""
    data = _load(state_dir)
    data[sid.upper()] = [r for r in data.get(sid.upper(), []) if r != right]
    _save(state_dir, data)

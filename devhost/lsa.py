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

SERVICE_LOGON_RIGHT = "SeServiceLogonRight"  # "Log on as a service"
BATCH_LOGON_RIGHT = "SeBatchLogonRight"  # "Log on as a batch job"


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
    """LsaAddAccountRights: True when added, False when the account already held it."""
    data = _load(state_dir)
    held = data.setdefault(sid.upper(), [])
    if right in held:
        return False
    held.append(right)
    _save(state_dir, data)
    return True


def admin_revoke_right(state_dir: Path, sid: str, right: str) -> None:
    """secpol.msc, or a Group Policy refresh whose list leaves the account out: the SID loses the right."""
    data = _load(state_dir)
    data[sid.upper()] = [r for r in data.get(sid.upper(), []) if r != right]
    _save(state_dir, data)

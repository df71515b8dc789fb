"""SIMULATOR: model of providers/iis_app_pool/scripts/{get,set,remove}.ps1 on devhost.iis."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devhost import accounts, iis, lsa
from devhost.fs import WindowsFs
from devhost.ops.envelope import Envelope, change, fail, operation, require_keys, succeed
from devhost.ops.iis_common import ScriptStop, not_installed
from devhost.ps51 import ScriptFact

_KEYS = {
    "name",
    "managed_runtime_version",
    "pipeline_mode",
    "start_mode",
    "idle_timeout_minutes",
    "load_user_profile",
    "periodic_restart_minutes",
    "identity_type",
    "identity_user",
    "identity_password",
    "state",
}


def _minutes(value: str) -> int | float:
    """TimeSpan text ([d.]hh:mm:ss) as ConvertTo-Minutes returns it."""
    days = 0
    if "." in value.split(":")[0]:
        day_text, value = value.split(".", 1)
        days = int(day_text)
    hours, minutes, seconds = value.split(":")
    total = days * 1440 + int(hours) * 60 + int(minutes) + float(seconds) / 60
    return int(total) if total == int(total) else total


def _timespan(minutes: int) -> str:
    days, rest = divmod(int(minutes), 1440)
    text = f"{rest // 60:02d}:{rest % 60:02d}:00"
    return f"{days}.{text}" if days else text


def _bool(value: str) -> bool:
    return value.lower() == "true"


# The script's $PoolSettings table: property -> (configuration path, read, write).
_SETTINGS: tuple[tuple[str, str, Callable[[str], Any], Callable[[Any], str]], ...] = (
    ("managed_runtime_version", "managedRuntimeVersion", str, str),
    ("pipeline_mode", "managedPipelineMode", str, str),
    ("start_mode", "startMode", str, str),
    ("idle_timeout_minutes", "processModel/idleTimeout", _minutes, _timespan),
    ("load_user_profile", "processModel/loadUserProfile", _bool, lambda v: "true" if v else "false"),
    ("periodic_restart_minutes", "recycling/periodicRestart/time", _minutes, _timespan),
)
_SET = ("iis_app_pool/set",)
_GET_STATE = ("iis_app_pool/get", "iis_app_pool/set", "iis_app_pool/remove")
SCRIPT_FACTS = (
    ScriptFact(
        _SET,
        r"(?s)\$grantedBatchRight = Grant-BatchLogonRight \(\[string\]\$Spec\.identity_user\)"
        r".*\$result = Invoke-IisChange",
        "WAS logs a SpecificUser identity on as a batch job; where a Group Policy has taken 'Log on as a batch job' "
        "from IIS_IUSRS, the worker process never starts (events 5021/5059, HTTP 503): the right is granted before "
        "anything changes (learn.microsoft.com, Understanding Built-In User and Group Accounts in IIS)",
    ),
    ScriptFact(
        _GET_STATE,
        r"if \(Test-AccountRight \$Sid \$BatchLogonRight\) \{ return \$true \}\s+"
        r"return \(\(-not \$ManualGroupMembership\) -and \(Test-AccountRight \$IisIusrsSid \$BatchLogonRight\)\)",
        "WAS adds IIS_IUSRS to the worker's token at logon (LogonUserExExW pTokenGroups) unless "
        "processModel.manualGroupMembership is true (learn.microsoft.com, ProcessModelSettings class), so only then "
        "does the right held by IIS_IUSRS count as the account's; LsaEnumerateAccountRights sees only the SID's own",
    ),
    ScriptFact(
        _GET_STATE,
        r"GetAttributeValue\('manualGroupMembership'\)[\s\S]*\$manual = Get-PoolManualGroupMembership \$Manager "
        r"\$pool\.Name\s+\$state\.batch_logon_right = \[bool\]\(\(Test-BatchLogonRight \$account \$state\.identity_sid "
        r"\$manual\) -and\s+-not \(Test-BatchLogonDenied \$account \$state\.identity_sid\)\)",
        "get reads manualGroupMembership of the pool (or applicationPoolDefaults), and a held "
        "SeDenyBatchLogonRight makes the right not held: it overrides the grant",
    ),
    ScriptFact(
        _SET,
        r"Get-PoolManualGroupMembership \$manager \$name[\s\S]*Grant-BatchLogonRight "
        r"\(\[string\]\$Spec\.identity_user\) \(Get-AccountSid \(\[string\]\$Spec\.identity_user\)\) "
        r"\$manualGroupMembership",
        "set decides with the pool's manualGroupMembership (applicationPoolDefaults' for a new pool)",
    ),
    ScriptFact(
        _SET,
        r"if \(Test-BatchLogonDenied \$Account \$Sid\) \{\s+Stop-Operation -Id 'LogonRightDenied'",
        "an account denied the batch logon (SeDenyBatchLogonRight) is refused before any grant: the deny "
        "overrides it (learn.microsoft.com, Deny log on as a batch job)",
    ),
    ScriptFact(
        _GET_STATE,
        r"try \{\s+Add-Type -TypeDefinition \$AccountRightsSource\s+\} catch \{\s+"
        r"if \(-not \('UsercubeIac\.AccountRights' -as \[type\]\)\) \{ throw \}",
        "parallel requests of the loop (one RunspacePool, one AppDomain) may compile the type at the same time; the "
        "loser's Add-Type fails though the type exists, so the type is checked again (no message text matched)",
    ),
    ScriptFact(_GET_STATE, r"\$IisIusrsSid = 'S-1-5-32-568'", "IIS_IUSRS by its SID (the name is localized)"),
    ScriptFact(_SET, r"Check\(LsaAddAccountRights\(policy, sidBytes, wanted, 1\)\);", "LsaAddAccountRights"),
)
_BUILTIN_ACCOUNTS = {
    "NetworkService": "NT AUTHORITY\\NETWORK SERVICE",
    "LocalSystem": "NT AUTHORITY\\SYSTEM",
    "LocalService": "NT AUTHORITY\\LOCAL SERVICE",
}


def _sid(state_dir: Path, account: str) -> str | None:
    try:
        return accounts.resolve(state_dir, account).sid
    except accounts.IdentityNotMapped:
        return None


def _account(manager: iis.ServerManager, pool: ET.Element) -> str:
    identity = manager.pool_value(pool, "processModel/identityType")
    if identity == "ApplicationPoolIdentity":
        return f"IIS APPPOOL\\{pool.get('name')}"
    return _BUILTIN_ACCOUNTS.get(identity) or manager.pool_value(pool, "processModel/userName")


def _state(manager: iis.ServerManager, name: str) -> dict[str, Any]:
    pool = manager.find_pool(name)
    if pool is None:
        return {"ensure": "absent", "name": name}
    state: dict[str, Any] = {"ensure": "present", "name": pool.get("name")}
    for prop, path, read, _ in _SETTINGS:
        state[prop] = read(manager.pool_value(pool, path))
    identity = manager.pool_value(pool, "processModel/identityType")
    state["identity_type"] = identity
    state["identity_user"] = manager.pool_value(pool, "processModel/userName") if identity == "SpecificUser" else None
    state["state"] = manager.pool_state(name)
    account = _account(manager, pool)
    state["identity_account"] = account
    state["identity_sid"] = _sid(manager.state_dir, account)
    state["batch_logon_right"] = None
    if identity == "SpecificUser" and state["identity_sid"] is not None:
        sid = state["identity_sid"]
        manual = _manual_group_membership(manager, name)
        state["batch_logon_right"] = _batch_right_held(manager.state_dir, sid, manual) and not _batch_logon_denied(
            manager.state_dir, sid
        )
    return state


def _manual_group_membership(manager: iis.ServerManager, name: str) -> bool:
    """Get-PoolManualGroupMembership: the pool's, or applicationPoolDefaults' for a pool not created yet."""
    pool = manager.find_pool(name)
    path = "processModel/manualGroupMembership"
    value = manager.pool_default_value(path) if pool is None else manager.pool_value(pool, path)
    return value == "true"


def _batch_right_held(state_dir: Path, sid: str, manual_group_membership: bool) -> bool:
    """Test-BatchLogonRight: the account itself holds SeBatchLogonRight, or IIS_IUSRS does and the pool uses it."""
    return lsa.holds(state_dir, sid, lsa.BATCH_LOGON_RIGHT) or (
        not manual_group_membership and lsa.holds(state_dir, accounts.IIS_IUSRS, lsa.BATCH_LOGON_RIGHT)
    )


def _batch_logon_denied(state_dir: Path, sid: str) -> bool:
    """Test-BatchLogonDenied."""
    return lsa.holds(state_dir, sid, lsa.DENY_BATCH_LOGON_RIGHT)


def _batch_right_denied(account: str) -> Envelope:
    """Grant-BatchLogonRight's refusal of an account denied the batch logon."""
    return fail(
        "LogonRightDenied",
        f"'{account}' holds 'Deny log on as a batch job' (SeDenyBatchLogonRight), which overrides 'Log on as a "
        f"batch job', so WAS cannot start the pool's worker process (events 5021/5059, HTTP 503); remove "
        f"'{account}' from 'Deny log on as a batch job' in secpol.msc (Local Policies, User Rights Assignment) or in "
        "the Group Policy that sets it, or give the pool another identity_user",
        prop="identity_user",
    )


def _batch_right_not_granted(account: str, error: lsa.LsaError, manual_group_membership: bool) -> Envelope:
    """Grant-BatchLogonRight's failure."""
    missing = f"neither '{account}' nor IIS_IUSRS holds 'Log on as a batch job' (SeBatchLogonRight)"
    if manual_group_membership:
        missing = (
            f"'{account}' does not hold 'Log on as a batch job' (SeBatchLogonRight) (IIS_IUSRS does not count: the "
            "pool sets processModel.manualGroupMembership)"
        )
    return fail(
        "LogonRightNotGranted",
        f"{missing}, so WAS cannot start "
        f"the pool's worker process (events 5021/5059, HTTP 503), and granting it to '{account}' failed: "
        f"{error.text()}. "
        f"Grant it to '{account}' (or IIS_IUSRS) in secpol.msc (Local Policies, User Rights Assignment), or, where a "
        'domain Group Policy sets "Log on as a batch job", in that policy: it replaces a local grant at the next '
        "policy refresh.",
        prop="identity_user",
    )


@operation
def get(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    if not iis.is_installed(fs.root):
        return not_installed()
    return succeed(_state(iis.ServerManager(fs.root), spec["name"]))


@operation
def set_(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    if not iis.is_installed(fs.root):
        return not_installed()
    name = spec["name"]
    specific_user = spec["identity_type"] == "SpecificUser"
    if specific_user and _sid(fs.root, spec["identity_user"]) is None:
        return fail(
            "IdentityNotMapped",
            f"the account '{spec['identity_user']}' does not exist for this host (Some or all identity references "
            "could not be translated); create it or correct identity_user",
            prop="identity_user",
            category="ObjectNotFound",
        )
    # Grant-BatchLogonRight, before anything changes.
    granted_batch_right = False
    if specific_user:
        sid = _sid(fs.root, spec["identity_user"])
        assert sid is not None
        manual = _manual_group_membership(iis.ServerManager(fs.root), name)
        if _batch_logon_denied(fs.root, sid):
            return _batch_right_denied(spec["identity_user"])
        if not _batch_right_held(fs.root, sid, manual):
            try:
                granted_batch_right = lsa.grant_right(fs.root, sid, lsa.BATCH_LOGON_RIGHT)
            except lsa.LsaError as error:
                return _batch_right_not_granted(spec["identity_user"], error, manual)

    def configure(manager: iis.ServerManager) -> list[dict[str, Any]]:
        changes = []
        pool = manager.find_pool(name)
        if pool is None:
            pool = manager.add_pool(name)
            changes.append(change("ensure", "absent", "present"))
        for prop, path, read, write in _SETTINGS:
            before = read(manager.pool_value(pool, path))
            if str(before) != str(spec[prop]):
                manager.set_pool_value(pool, path, write(spec[prop]))
                changes.append(change(prop, before, spec[prop]))
        identity = manager.pool_value(pool, "processModel/identityType")
        if identity != spec["identity_type"]:
            manager.set_pool_value(pool, "processModel/identityType", spec["identity_type"])
            changes.append(change("identity_type", identity, spec["identity_type"]))
        desired_user = spec["identity_user"] if specific_user else ""
        desired_password = (spec["identity_password"] or "") if specific_user else ""
        user = manager.pool_value(pool, "processModel/userName")
        if user != desired_user:
            manager.set_pool_value(pool, "processModel/userName", desired_user)
            changes.append(change("identity_user", user, desired_user))
        if manager.pool_password(pool) != desired_password:
            manager.set_pool_value(pool, "processModel/password", desired_password)
            changes.append(change("identity_password", None, None, secret=True))
        auto_start = spec["state"] == "Started"
        if _bool(manager.pool_value(pool, "autoStart")) != auto_start:
            pool.set("autoStart", "true" if auto_start else "false")
            changes.append(change("auto_start", not auto_start, auto_start))
        if changes:
            manager.commit()
        return changes

    changes: list[dict[str, Any]] = iis.with_retries(fs.root, configure)
    if granted_batch_right:
        changes.append(change("logon_right", None, lsa.BATCH_LOGON_RIGHT))
    manager = iis.ServerManager(fs.root)
    current = manager.pool_state(name)
    identity_changed = any(c["property"] in ("identity_type", "identity_user", "identity_password") for c in changes)
    if identity_changed and spec["state"] == "Started" and current == "Started":
        current = manager.stop_pool(name)  # the script restarts the pool so a wrong password fails now
    if spec["state"] == "Started" and current != "Started":
        now = manager.start_pool(name)
        if now != "Started":
            return fail(
                "AppPoolStartFailed",
                f"application pool '{name}' did not start (state {now}). With SpecificUser the usual cause is a "
                "wrong password or a user without 'Log on as a batch job' (System event log, WAS events "
                "5021/5057); correct identity_user / identity_password",
                prop="identity_password" if specific_user else "identity_type",
            )
        changes.append(change("state", current, "Started"))
    elif spec["state"] == "Stopped" and current != "Stopped":
        changes.append(change("state", current, manager.stop_pool(name)))
    return succeed(_state(manager, name), changes)


@operation
def remove(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    if not iis.is_installed(fs.root):
        return not_installed()
    name = spec["name"]

    def delete(manager: iis.ServerManager) -> list[dict[str, Any]]:
        pool = manager.find_pool(name)
        if pool is None:
            return []
        users = manager.applications_of_pool(str(pool.get("name")))
        if users:
            raise ScriptStop(
                fail(
                    "AppPoolInUse",
                    f"application pool '{name}' is used by {', '.join(users)}; move or delete those applications "
                    "(IisSite) first",
                    prop="name",
                )
            )
        manager.remove_pool(name)
        manager.commit()
        return [change("ensure", "present", "absent")]

    changes: list[dict[str, Any]] = iis.with_retries(fs.root, delete)
    return succeed(_state(iis.ServerManager(fs.root), name), changes)


OPERATIONS = {"iis_app_pool/get": get, "iis_app_pool/set": set_, "iis_app_pool/remove": remove}

"""SIMULATOR: model of providers/windows_service/scripts/{get,set,remove}.ps1 on devhost.scm.

Errors carry the ids and messages the scripts build from Win32_Service return values and from
the Win32Exception of a start or stop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devhost import accounts, fileops, lsa, ps51, scm
from devhost.fs import WindowsFs
from devhost.hooks import Knobs, sim_dir
from devhost.ops import ownership
from devhost.ops.envelope import Envelope, change, fail, require_keys, succeed
from devhost.ps51 import ScriptFact

_KEYS = {
    "name",
    "display_name",
    "image_path",
    "start_type",
    "account",
    "password",
    "apply_password",
    "create",
    "description",
    "failure_actions",
    "state",
    "owner",
    "previous_owner",
}
# set.ps1 / _common.ps1: the ownership marker under the service's key, and the records of creates under way.
OWNER_MARKER = "UsercubeIacOwner"
CREATING_FOLDER = ownership.folder("WindowsService", "creating")
# Knob ``service_set_lock_waits``: [{"on": "<service name>", "owner": "<owner id>"}], one-shot. When a set of that
# service comes to Enter-OwnersLock, another set.ps1 of the same service and values (of ``owner``; without it, of this
# run's own owner) holds the owners lock, and this one waits until that run has gone through to its end: an `up` run
# again after its client was killed while the first run's host process went on, or another stack's `up` of the name.
LOCK_WAIT_KNOB = "service_set_lock_waits"

# Win32 error -> the Win32_Service return value that carries it, with the script's id and fix.
_METHOD_RESULTS = {
    5: (2, "AccessDenied", "run the deployment as a local administrator"),
    1069: (15, "ServiceLogonFailed", "check the password"),
    1072: (
        16,
        "ServiceMarkedForDelete",
        "close services.msc and every program holding the service open, then retry",
    ),
    1078: (19, "DuplicateServiceName", "choose another display_name"),
    123: (20, "InvalidServiceName", "choose another name"),
    87: (21, "InvalidParameter", "check the values"),
    1057: (22, "InvalidServiceAccount", "create the account or fix its name"),
    1073: (23, "ServiceExists", "choose another name, or delete the existing service"),
}
_METHOD_PROPERTY = {"Create": "name", "Delete": "name", "Change": "account"}
_START_ERRORS = {
    2: ("ServiceBinaryNotFound", "binary_path", "put the agent runtime in place first"),
    193: ("ServiceBinaryNotValid", "binary_path", "binary_path must be a Windows program"),
    1058: ("ServiceDisabled", "start_type", "set start_type to Automatic or Manual"),
    1069: (
        "ServiceLogonFailed",
        "password",
        'check the password and that the account holds "Log on as a service" (SeServiceLogonRight)',
    ),
    1072: (
        "ServiceMarkedForDelete",
        "name",
        "close services.msc and every program holding the service open (or restart the host), then retry",
    ),
    1060: (
        "ServiceDeleted",
        "name",
        "another program deleted the service during this run; find what deletes it, then `up --refresh` creates it "
        "again",
    ),
}
_START_NAMES = {
    "LocalSystem": ("LocalSystem", ""),
    "NetworkService": ("NT AUTHORITY\\NetworkService", ""),
    "LocalService": ("NT AUTHORITY\\LocalService", ""),
}
_ACCOUNT_OF_START_NAME = {
    "localsystem": "LocalSystem",
    "nt authority\\system": "LocalSystem",
    "nt authority\\networkservice": "NetworkService",
    "nt authority\\localservice": "LocalService",
}
_CIM_START_MODE = {"Manual": "Manual", "Disabled": "Disabled"}  # anything else: Automatic
_SC_START = {"Automatic": "auto", "AutomaticDelayedStart": "delayed-auto", "Manual": "demand", "Disabled": "disabled"}
# What the reviewed set script passes (SCRIPT_FACTS holds the script to it).
EMPTY_ACTIONS_ARGUMENT = '""'
SC_CALL_EAP = "Continue"
_SET = ("windows_service/set",)
_ALL = ("windows_service/get", "windows_service/set", "windows_service/remove")  # each includes _common.ps1
SCRIPT_FACTS = (
    ScriptFact(
        _SET,
        r"if \(Grant-ServiceLogonRight \(\[string\]\$Spec\.account\)\) \{",
        "Win32_Service Create/Change do not grant 'Log on as a service'; a user or gMSA without it fails to "
        "start with 1069 (learn.microsoft.com, Log on as a service)",
    ),
    ScriptFact(_SET, r"Check\(LsaAddAccountRights\(policy, sidBytes, wanted, 1\)\);", "LsaAddAccountRights"),
    ScriptFact(
        _ALL,
        r"\$deleteFlag = \$Values\.PSObject\.Properties\['DeleteFlag'\]",
        "a service marked for deletion stays listed in Win32_Service, DeleteFlag=1 under its key, until its last "
        "handle closes (learn.microsoft.com DeleteService); read StrictMode-safe, the value is usually absent",
    ),
    ScriptFact(
        _ALL,
        r"\$values = Get-ItemProperty -LiteralPath \$key -ErrorAction SilentlyContinue -ErrorVariable keyErrors\n"
        r"\s+if \(\$null -eq \$values -and \(Test-Path -LiteralPath \$key\)\) \{\n"
        r"\s+if \(\$keyErrors\.Count -gt 0\) \{ throw \$keyErrors\[0\] \}\n"
        r".*\n\s+Stop-Operation -Id 'ServiceKeyUnreadable'",
        "the key of a marked service is deleted when its last handle closes (learn.microsoft.com DeleteService, "
        "Remarks), possibly between Get-CimInstance and the key's read: a key gone is the service absent, not an "
        "ItemNotFound error; a key still there rethrows its error, or without one (no values) stops with an id "
        "(review T5; the model's state read has no such gap to show it)",
    ),
    ScriptFact(
        _ALL,
        r"\$values = Get-ServiceKeyValues \(\[string\]\$service\.Name\)\n"
        r"\s+if \(\$null -eq \$values\) \{\n\s+return \[ordered\]@\{ ensure = 'absent'; name = \$Name \}",
        "Get-ServiceState reports a service whose key went between the two reads as absent",
    ),
    ScriptFact(
        _ALL,
        r"if \(\$Action -eq 'Start' -and \$code -eq 1058\) \{\n"
        r"\s+\$values = Get-ServiceKeyValues \$Name\n"
        r"\s+if \(\$null -eq \$values\) \{\n"
        r"\s+Stop-Operation -Id 'ServiceDeleted'.*\n\s+.*it was deleted while being started.*\n(.*\n){2}"
        r"\s+if \(Test-DeleteFlag \$values\) \{\n"
        r"\s+Stop-Operation -Id 'ServiceMarkedForDelete'",
        "marking a service for deletion makes it Disabled (MS-SCMR 3.1.4.3) and StartService checks Disabled first "
        "(ReactOS RStartServiceW): a start racing a deletion answers 1058 and must be reported as the deletion",
    ),
    ScriptFact(
        _ALL,
        r"if \(\$Action -eq 'Stop' -and \$code -eq 1060 -and \$GoneIsStopped\) \{ return \$sent \}",
        "a marked service goes once stopped: WaitForStatus's query then fails with 1060, which is the stop done only "
        "for a caller that passes -GoneIsStopped (review T1); for any other it is the error ServiceDeleted",
    ),
    ScriptFact(
        ("windows_service/remove",),
        r"if \(Invoke-ServiceControl -Name \$name -Action 'Stop' -GoneIsStopped\) \{\n"
        r"\s+\[void\]\$changes\.Add\(\(New-Change -Property 'state'",
        "remove wants the service gone: a stop that ends with it gone (1060) is done, and a change only when this "
        "stop was sent (review adopt4 E2: gone before it, nothing changed)",
    ),
    ScriptFact(
        _SET,
        r"Invoke-ServiceControl [^\n]*-GoneIsStopped",
        "set must leave the service present and Stopped: a stop that ends with it gone is an error (review T1)",
        present=False,
    ),
    ScriptFact(
        ("windows_service/remove",),
        r"if \(-not \$before\.marked_for_delete\) \{\n"
        r"(.*\n){5}    if \(\$null -ne \$service -and -not \(Test-DeleteFlag \(Get-ServiceKeyValues \$name\)\)\) \{\n"
        r"        Invoke-Win32ServiceMethod -Method 'Delete'",
        "Delete of a service already marked for deletion returns 16 (1072, learn.microsoft.com DeleteService): "
        "remove stops it and leaves it to go by itself; one another program deleted since the first read is not "
        "Deleted (Invoke-Win32ServiceMethod without -Service would call Delete on the class; review T3)",
    ),
    ScriptFact(
        _SET,
        r"if \(\$before\.ensure -eq 'present' -and \$before\.marked_for_delete\) \{\n"
        r"\s+Stop-Operation -Id 'ServiceMarkedForDelete'",
        "a service marked for deletion is never adopted or configured: it vanishes when the last handle closes",
    ),
    ScriptFact(
        _SET,
        r"\n\$lock = Enter-OwnersLock\ntry \{\n(\s+#.*\n)*    \$before = Get-ServiceState \$name\n\n(\s+#.*\n)*"
        r"    if \(\$before\.ensure -eq 'present' -and \$before\.marked_for_delete\) \{\n",
        "the service is read first thing under the owners lock, and every decision is taken on that reading (review "
        "service6 S6-2: one from before the wait can be stale, of a moment another set held the lock)",
    ),
    ScriptFact(
        _SET,
        r"\n\$before = Get-ServiceState \$name\n(.*\n)*?\$lock = Enter-OwnersLock\n",
        "no reading of the service before the owners lock is taken (review service6 S6-2)",
        present=False,
    ),
    ScriptFact(
        _SET,
        r"\(@\('', \[string\]\$Spec\.description\) -ccontains \[string\]\$before\.description\) -and\n"
        r"\s+\(@\(\$noActionsKey, \(Get-FailureActionKey \$Spec\.failure_actions\)\) -ccontains "
        r"\(Get-FailureActionKey \$before\.failure_actions\)\)",
        "an interrupted run of set.ps1 leaves Create's description and recovery actions (none) or the declared "
        "ones (set after Create); a service with others was not made by it and is refused",
    ),
    *ownership.script_facts(_SET),
    ScriptFact(
        _ALL,
        r"\$OwnerMarkerName = 'UsercubeIacOwner'\n(.*\n)*?"
        r"\s+\$marker = \$Values\.PSObject\.Properties\[\$OwnerMarkerName\]"
        r"(.*\n)*?\s+\$key = \"HKLM:\\SYSTEM\\CurrentControlSet\\Services\\\$Name\"\n"
        r"\s+\[void\]\(New-ItemProperty -LiteralPath \$key -Name \$OwnerMarkerName -PropertyType String -Value \$Owner "
        r"-Force\)",
        "the ownership marker is the REG_SZ value UsercubeIacOwner under the service's key, read StrictMode-safe "
        "(scm.Service.key_values; the key goes with the service: DeleteService, Remarks)",
    ),
    ScriptFact(
        _ALL,
        r"\$controller\.Stop\(\) \}\n\s+\$sent = \$true\n\s+\} catch \{\n(\s+#.*\n)*"
        r"\s+if \(-not \(Test-ServiceControlRaced \$_\.Exception \$Action \$controller\)\) \{ throw \}\n\s+\}\n"
        r"\s+\$controller\.WaitForStatus\(\$target, \[TimeSpan\]::FromSeconds\(60\)\)\n"
        r"\s+if \(\$GoneIsStopped\) \{ return \$sent \}",
        "a stop counts as sent only once Stop() returned: a 1060 from Stop() itself is a service gone before it; a "
        "start or stop another program did first (1056, 1062: Test-ServiceControlRaced) is waited for as our own, "
        "and counts as not sent (review-service7 T1)",
    ),
    ScriptFact(
        _ALL,
        r"function Test-ServiceControlRaced\(\$Exception, \[string\] \$Action, \$Controller\) \{\n"
        r"\s+\$raceCode = 1062\n\s+\$passing = @\('Stopped', 'StopPending'\)\n"
        r"\s+if \(\$Action -eq 'Start'\) \{\n\s+\$raceCode = 1056\n\s+\$passing = @\('Running', 'StartPending'\)\n"
        r"\s+\}\n\s+\$win32 = \$Exception\n"
        r"\s+while \(\$null -ne \$win32 -and \$win32 -isnot \[System\.ComponentModel\.Win32Exception\]\) "
        r"\{ \$win32 = \$win32\.InnerException \}\n"
        r"\s+if \(\$null -eq \$win32 -or \$win32\.NativeErrorCode -ne \$raceCode\) \{ return \$false \}\n"
        r"\s+\$Controller\.Refresh\(\)\n\s+return \(\$passing -contains \[string\]\$Controller\.Status\)\n\}",
        "StartService answers 1056 to a service that is not stopped, ControlService(STOP) 1062 to one that is "
        "(learn.microsoft.com StartServiceW, ControlService: Return value), inside ServiceController's "
        "InvalidOperationException: another program's start or stop is done only when the service, read again, is "
        "Running or StartPending (Stopped or StopPending); a stopping or paused service stays a failed start",
    ),
    ScriptFact(
        _SET,
        r"Initialize-OwnersFolder \$creatingFolder\n(.*\n)*?"
        r"\s+\$leftByOwnCreate = \(\$marker -eq ''\) -and \(\$null -ne \$creating\) -and "
        r"\(\[string\]\$creating\.name -eq \$name\) -and\n",
        "a create adopts an unmarked service only when this owner's record of a create under way names it (review A3: "
        "the manual's `sc.exe create` by hand is refused)",
    ),
    ScriptFact(
        _SET,
        r"\$fromBeforeMarkers = \(\$marker -eq ''\) -and \(\$previous -eq ''\)\n"
        r"\s+\$moved = \(\$marker -ne ''\) -and \(\$marker -ceq \$previous\)\n"
        r"\s+if \(-not \(\$fromBeforeMarkers -or \$moved\)\) \{\n\s+Stop-Operation -Id 'ServiceNotOwned'",
        "an update takes an unmarked service only for a state from before markers, and another marker only when it is "
        "the state's own previous id",
    ),
    ScriptFact(
        _SET,
        r"Write-OwnersJson \$creatingPath \(\[ordered\]@\{ owner = \$owner; name = \$name \}\)\n(.*\n)*?"
        r"\s+\$createResult = Get-Win32ServiceResult -Method 'Create' -Arguments \$arguments\n"
        r"\s+\} catch \{\n(\s+#.*\n)*"
        r"\s+if \(\(Get-ServiceState \$name\)\.ensure -eq 'absent'\) \{ "
        r"\[System\.IO\.File\]::Delete\(\$creatingPath\) \}\n"
        r"\s+throw\n\s+\}\n"
        r"\s+if \(\$createResult -ne 0\) \{\n(\s+#.*\n)*"
        r"\s+\$recordLeft = ''\n"
        r"\s+try \{\n\s+\[System\.IO\.File\]::Delete\(\$creatingPath\)\n\s+\} catch \{\n"
        r"\s+\$failure = \$_\.Exception\n"
        r"\s+if \(\$null -ne \$failure\.InnerException\) \{ \$failure = \$failure\.InnerException \}\n"
        r"\s+\$recordLeft = \"; and the record of this create under way could not be deleted "
        r"\(\$\(\$failure\.Message\)\): \" \+\n"
        r"\s+\"delete \$creatingPath by hand before the next ``up``, "
        r"which would otherwise adopt the service that \" \+\n"
        r"\s+'holds the name as the one its own Create left'\n\s+\}\n"
        r"\s+Assert-Win32ServiceResult -Method 'Create' -Code \$createResult -Detail \$recordLeft\n\s+\}\n(\s+#.*\n)*"
        r"\s+Set-OwnerMarker \$name \$owner\n(.*\n)*?"
        r"    \}\n    # Marked .*\n    \[System\.IO\.File\]::Delete\(\$creatingPath\)\n\} finally \{",
        "the record of the create under way is written before Create; whatever Create answers (a return value) it goes "
        "before the error, since Create created nothing then even when a service of that name is there (1073: "
        "installed by hand since the read; review S1), and a record that cannot be deleted is named in Create's own "
        "error, which stays the one reported (review service6 S6-5, _record_left); with no answer (a CIM error) it "
        "stays if a service of that name exists; on success the marker is written right after Create and the record "
        "goes only after the marker, nothing else going in between (write_creating_record, _set_owner_marker)",
    ),
    ScriptFact(
        _ALL,
        r"function Assert-Win32ServiceResult \{\n\s+param\(\[string\] \$Method, \[int\] \$Code, "
        r"\[string\] \$Property = \$null, \[string\] \$Detail = ''\)\n\s+if \(\$Code -eq 0\) \{ return \}\n(.*\n){3}"
        r"\s+Stop-Operation -Id \$known\[0\] -Property \$Property -Message "
        r"\"Win32_Service\.\$Method returned \$\{Code\}: \$\(\$known\[1\]\); \$\(\$known\[2\]\)\$Detail\"\n\}\n\n"
        r"function Invoke-Win32ServiceMethod \{\n.*\n"
        r"\s+Assert-Win32ServiceResult -Method \$Method -Code \(Get-Win32ServiceResult -Method \$Method "
        r"-Arguments \$Arguments -Service \$Service\) -Property \$Property\n\}",
        "a Win32_Service return value other than 0 stops with its id and 'Win32_Service.<method> returned <n>: "
        "<error>; <fix><detail>' (_method_failed), for Create as for every other method",
    ),
    ScriptFact(
        ("windows_service/remove",),
        r"if \(-not \(\(\$owner -ne '' -and \$marker -ceq \$owner\) -or "
        r"\(\$owner -eq '' -and \$marker -eq ''\)\)\) \{\n"
        r"\s+Complete-Operation -State \$before\n",
        "remove stops and deletes only a service carrying this resource's marker, or none for a state from before "
        "markers (owner empty)",
    ),
    ScriptFact(
        _SET,
        r"if \(\$text -eq ''\) \{ return '\"\"' \}",
        'no failure actions must reach sc.exe as `actions= ""`: Windows PowerShell 5.1 drops an empty-string '
        "argument to a native program (PowerShell/PowerShell#15143, #16639), leaving `actions=` without a value",
    ),
    ScriptFact(
        _SET,
        r"\$ErrorActionPreference = 'Continue'\n    \$output = & sc\.exe @Arguments 2>&1",
        "under 'Stop', 5.1 makes a redirected stderr line of sc.exe a terminating NativeCommandError before "
        "$LASTEXITCODE is read (PowerShell/PowerShell#3996, #14273)",
    ),
)
_SID_OF_ACCOUNT = {"LocalSystem": "S-1-5-18", "LocalService": "S-1-5-19", "NetworkService": "S-1-5-20"}


class _Stop(Exception):
    """Stop-Operation in the script: carries the failure envelope."""

    def __init__(self, envelope: Envelope) -> None:
        self.envelope = envelope


def _method_failed(method: str, error: scm.ScmError, detail: str = "") -> _Stop:
    """Assert-Win32ServiceResult (``detail``: its -Detail, appended to the message)."""
    if error.code not in _METHOD_RESULTS:
        raise error  # a Win32 error Win32_Service does not return for this call: not modelled
    value, error_id, fix = _METHOD_RESULTS[error.code]
    text = f"{scm.WIN32_MESSAGES[error.code]} ({error.code})"
    message = f"Win32_Service.{method} returned {value}: {text}; {fix}{detail}"
    return _Stop(fail(error_id, message, prop=_METHOD_PROPERTY[method]))


def _control_failed(name: str, action: str, error: scm.ScmError) -> _Stop:
    error_id, prop, fix = _START_ERRORS.get(error.code, (f"Service{action}Failed", "state", "see the System event log"))
    message = f"{action.lower()} of service '{name}' failed: {scm.WIN32_MESSAGES[error.code]} ({error.code}); {fix}"
    return _Stop(fail(error_id, message, prop=prop))


def _account_sid(state_dir: Path, account: str) -> str | None:
    if account in _SID_OF_ACCOUNT:
        return _SID_OF_ACCOUNT[account]
    try:
        return accounts.resolve(state_dir, account).sid
    except accounts.IdentityNotMapped:
        return None


def _state(state_dir: Path, name: str) -> dict[str, Any]:
    service = scm.get(state_dir, name)
    if service is None:
        return {"ensure": "absent", "name": name}
    start_type = {"Auto": "Automatic", "Manual": "Manual", "Disabled": "Disabled"}.get(
        service.start_mode, service.start_mode
    )
    if service.start_mode == "Auto" and service.delayed_auto_start:
        start_type = "AutomaticDelayedStart"
    account = _ACCOUNT_OF_START_NAME.get(service.start_name.lower(), service.start_name)
    return {
        "ensure": "present",
        "name": service.name,
        "display_name": service.display_name,
        "image_path": service.image_path,
        "start_type": start_type,
        "account": account,
        "description": service.description,
        "failure_actions": {
            "actions": [dict(a) for a in service.failure_actions.get("actions", [])],
            "reset_period_seconds": int(service.failure_actions.get("reset_period_seconds", 0)),
        },
        "state": service.state,
        "service_sid": accounts.virtual_sid(scm.SERVICE_DOMAIN_RID, service.name),
        "account_sid": _account_sid(state_dir, account),
        "marked_for_delete": service.marked_for_delete,  # Get-ServiceState: the DeleteFlag value, 1
        "owner_marker": service.key_values.get(OWNER_MARKER, ""),  # Get-OwnerMarker
    }


def _left_by_own_create(before: dict[str, Any], spec: dict[str, Any], creating: Any) -> bool:
    """Unmarked, named by this owner's record of a create under way (``creating``, written before Create), and as
    set.ps1's own Win32_Service.Create makes it (program, display name, account, start mode; -ceq for the strings, -eq
    for the account), its description and recovery actions Create's (none) or the declared ones: what an interrupted
    create left, adopted instead of refused."""
    create_mode = _CIM_START_MODE.get(spec["start_type"], "Automatic")
    before_mode = "Automatic" if before.get("start_type") == "AutomaticDelayedStart" else before.get("start_type")
    no_actions = _failure_key({"actions": [], "reset_period_seconds": 0})
    return (
        before["ensure"] == "present"
        and before["owner_marker"] == ""
        and creating is not None
        and str(creating["name"]).lower() == str(spec["name"]).lower()
        and before["image_path"] == spec["image_path"]
        and before["display_name"] == spec["display_name"]
        and str(before["account"]).lower() == str(spec["account"]).lower()
        and before_mode == create_mode
        and before["description"] in ("", spec["description"] or "")
        and _failure_key(before["failure_actions"]) in (no_actions, _failure_key(spec["failure_actions"]))
    )


def write_creating_record(fs: WindowsFs, name: str, owner: str) -> None:
    """set.ps1's record of a create under way, written (under the owners lock, its folder initialized) BEFORE
    Win32_Service.Create: what lets the next create adopt the unmarked service a kill right after Create leaves."""
    ownership.initialize(fs, CREATING_FOLDER)  # (already done by _set; for a test that plays the interrupted run)
    ownership.write(fs, ownership.record_path(CREATING_FOLDER, owner), {"owner": owner, "name": name})


def _delete_record(fs: WindowsFs, path: str) -> None:
    """[System.IO.File]::Delete of the record, outside any try: a failure (devhost.fileops: a file another program
    holds open, knob ``files_held_open``) ends the operation through the prelude's trap."""
    try:
        fileops.delete_file(fs, path)
    except fileops.DotNetError as error:
        raise _Stop(fail("UnexpectedError", error.called("Delete", 1), category="NotSpecified")) from None


def _record_left(fs: WindowsFs, path: str) -> str:
    """set.ps1 after a refused Create: [System.IO.File]::Delete of the record in a try whose catch keeps the .NET
    exception's message (the InnerException of PowerShell's MethodInvocationException) for Create's error."""
    try:
        fileops.delete_file(fs, path)
    except fileops.DotNetError as error:
        return (
            f"; and the record of this create under way could not be deleted ({error.message}): delete {path} by hand "
            "before the next `up`, which would otherwise adopt the service that holds the name as the one its own "
            "Create left"
        )
    return ""


def _failure_key(value: dict[str, Any]) -> str:
    parts = [f"{a['action']}:{a['delay_seconds']}" for a in value["actions"]]
    return f"{value['reset_period_seconds']};" + ",".join(parts)


def _set_owner_marker(state_dir: Path, name: str, owner: str) -> None:
    """Set-OwnerMarker. With the service's key gone (the service deleted since it was read or created), New-ItemProperty
    writes PowerShell's ItemNotFoundException (scm.RegistryKeyNotFound); EAP=Stop makes it terminating, and the
    prelude's trap reports it as UnexpectedError with the error record's category and the exception's message."""
    try:
        scm.set_key_value(state_dir, name, OWNER_MARKER, owner)
    except scm.RegistryKeyNotFound as error:
        raise _Stop(fail("UnexpectedError", str(error), category=error.category)) from None


def _credential(account: str, password: str | None) -> tuple[str, str | None]:
    if account in _START_NAMES:
        return _START_NAMES[account]
    if account.endswith("$"):
        return account, None
    return account, password or ""


def _raced(state_dir: Path, name: str, action: str, error: scm.ScmError) -> bool:
    """Test-ServiceControlRaced (review-service7 T1): the start met 1056 or the stop 1062 because another program did
    it first, and the service is (or is on its way to) what was asked. Its Refresh() of a service gone meets 1060."""
    code, passing = (1056, ("Running", "StartPending")) if action == "Start" else (1062, ("Stopped", "StopPending"))
    if error.code != code:
        return False
    service = scm.get(state_dir, name)
    if service is None:
        raise scm.ScmError(1060)
    return service.state in passing


def _wait_for_status(state_dir: Path, name: str, target: str) -> None:
    """WaitForStatus(target, 60 s): a pending state on its way to ``target`` ends within it (scm.settle). A service
    gone meets 1060: a marked service goes once stopped, and WaitForStatus's status query finds no service (OpenService
    1060: microsoft/referencesource ServiceController.GetServiceHandle)."""
    service = scm.get(state_dir, name)
    if service is not None and service.state != target and scm.PENDING_END.get(service.state) == target:
        scm.settle(state_dir, name)
        service = scm.get(state_dir, name)
    if service is None:
        raise scm.ScmError(1060)
    if service.state != target:
        raise ValueError(f"SIMULATOR: service {name} is {service.state} after its wait for {target}: not modelled")


def _control(state_dir: Path, name: str, action: str, *, gone_is_stopped: bool = False) -> bool:
    """Invoke-ServiceControl; ``gone_is_stopped`` is its -GoneIsStopped switch (remove.ps1 only). Returns whether the
    control was sent: False when the service was gone before it (Stop() itself meets 1060, from ServiceController's
    GenerateNames, NoService), or another program had started or stopped it first (1056 or 1062: ``_raced``, then
    waited for as our own)."""
    sent = False
    try:
        try:
            if action == "Start":
                scm.start(state_dir, name)
            else:
                scm.control_stop(state_dir, name)
            sent = True
        except scm.ScmError as error:
            if not _raced(state_dir, name, action, error):
                raise
        _wait_for_status(state_dir, name, "Running" if action == "Start" else "Stopped")
    except scm.ScmError as error:
        if action == "Stop" and error.code == 1060 and gone_is_stopped:
            return sent  # gone before or by the stop: for remove, the stop done
        service = scm.get(state_dir, name)
        if action == "Start" and error.code == 1058 and service is None:
            # Invoke-ServiceControl: marked (so Disabled) when started, and its key gone before the DeleteFlag read.
            raise _Stop(
                fail(
                    "ServiceDeleted",
                    f"start of service '{name}' failed: it was deleted while being started (1058); find what deletes "
                    "it, then `up --refresh` creates it again",
                    prop="name",
                )
            ) from None
        if action == "Start" and error.code == 1058 and service is not None and service.marked_for_delete:
            # Invoke-ServiceControl: marking made it Disabled; the DeleteFlag names the deletion.
            raise _Stop(
                fail(
                    "ServiceMarkedForDelete",
                    f"start of service '{name}' failed: it is marked for deletion (DeleteFlag=1), which also made it "
                    "Disabled (1058), and goes when the last handle to it closes; close services.msc and every program "
                    "holding the service open (or restart the host), then retry",
                    prop="name",
                )
            ) from None
        raise _control_failed(name, action, error) from None
    return sent


def get(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    return succeed(_state(fs.root, spec["name"]))


def set_(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    try:
        return _set(fs.root, spec)
    except _Stop as stop:
        return stop.envelope


def _set(state_dir: Path, spec: dict[str, Any]) -> Envelope:
    name = spec["name"]
    owner = str(spec["owner"])
    if not owner:
        raise _Stop(
            fail(
                "OwnerMissing",
                "the owner id is empty; the WindowsService resource sets it: declare the service through it",
                prop="owner",
            )
        )
    start_name, password = _credential(spec["account"], spec["password"])
    changes: list[dict[str, Any]] = []
    created = False
    fs = WindowsFs(state_dir)
    creating_path = ownership.record_path(CREATING_FOLDER, owner)
    _run_holding_the_lock_first(state_dir, spec)
    with ownership.host_lock(fs):
        # Read under the lock, and decided on this reading only (review service6 S6-2): a reading from before the wait
        # could be of a moment another set held the lock, before its Create or between its Create and its marker.
        before = _state(state_dir, name)
        if before["ensure"] == "present" and before["marked_for_delete"]:
            raise _Stop(
                fail(
                    "ServiceMarkedForDelete",
                    f"service '{name}' is marked for deletion (1072) and goes when the last handle to it closes; "
                    "close services.msc and every program holding the service open (or restart the host), then retry",
                    prop="name",
                )
            )
        ownership.initialize(fs, CREATING_FOLDER)
        if before["ensure"] == "present" and before["owner_marker"] != owner:
            marker = before["owner_marker"]
            whose = f"carries the ownership marker of '{marker}'" if marker else "carries no ownership marker"
            if spec["create"]:
                if not _left_by_own_create(before, spec, ownership.read(fs, creating_path)):
                    raise _Stop(
                        fail(
                            "ServiceExists",
                            f"service '{name}' already exists (1073) and this resource did not create it: it {whose} "
                            f"(HKLM\\SYSTEM\\CurrentControlSet\\Services\\{name}, value {OWNER_MARKER}), e.g. an agent "
                            f"installed by hand. Delete it (sc.exe stop {name}, then sc.exe delete {name}) and run "
                            "`up` again to have it created here, or choose another name",
                            prop="name",
                        )
                    )
            else:
                previous = str(spec["previous_owner"])
                from_before_markers = marker == "" and previous == ""
                moved = marker != "" and marker == previous
                if not (from_before_markers or moved):
                    raise _Stop(
                        fail(
                            "ServiceNotOwned",
                            f"service '{name}' is no longer the one this resource created: it {whose} (deleted and "
                            "installed again by someone else?). Delete it by hand and run `up --refresh` to have it "
                            "created again, or choose another name",
                            prop="name",
                        )
                    )
            _set_owner_marker(state_dir, name, owner)
            changes.append(change("owner_marker", marker, owner))
        elif before["ensure"] == "absent":
            write_creating_record(fs, name, owner)
            try:
                scm.create(
                    state_dir,
                    name=name,
                    display_name=spec["display_name"],
                    image_path=spec["image_path"],
                    start_mode="Auto" if _CIM_START_MODE.get(spec["start_type"]) is None else spec["start_type"],
                    start_name=start_name,
                    password=password,
                )
            except scm.ScmError as error:
                # Create answered (a return value) and refused: it created nothing, whatever holds the name now (1073:
                # a service installed since the read under the lock, e.g. by hand). CreateService deletes a partly made
                # record when it fails (NT5 RCreateServiceW cleanup, base/screg/sc/server/cfgapi.cxx: "Delete partially
                # created service record"; devhost.scm.create checks before it makes anything); Win32_Service.Create
                # returns CreateService's errors (learn.microsoft.com, "Create method of the Win32_Service class": 23,
                # Status Service Exists), and that its WMI provider leaves nothing either is unverified. The record goes
                # before the error, or the next create would adopt that service as the one its own Create left (review
                # S1); Create's error stays the one reported when the record cannot go (review service6 S6-5).
                raise _method_failed("Create", error, _record_left(fs, creating_path)) from None
            # Set-OwnerMarker, right after Create; the record goes only after it (below): a run broken off between
            # them leaves the record, and the next create adopts the unmarked service its own Create made.
            _set_owner_marker(state_dir, name, owner)
            changes.append(change("ensure", "absent", "present"))
            created = True
        _delete_record(fs, creating_path)  # marked (or already ours): the record has done its job
    before = _state(state_dir, name)

    config: dict[str, Any] = {}
    reconfigured = False
    if before["display_name"] != spec["display_name"]:
        config["display_name"] = spec["display_name"]
        changes.append(change("display_name", before["display_name"], spec["display_name"]))
    if before["image_path"] != spec["image_path"]:
        config["image_path"] = spec["image_path"]
        reconfigured = True
        changes.append(change("image_path", before["image_path"], spec["image_path"]))
    account_differs = before["account"].lower() != spec["account"].lower()
    if account_differs or (spec["apply_password"] and not created):
        config["start_name"] = start_name
        if password is not None:
            config["password"] = password
        reconfigured = True
        if account_differs:
            changes.append(change("account", before["account"], spec["account"]))
        if spec["password"] is not None:
            changes.append(change("password", None, None, secret=True))
    if config:
        try:
            scm.change(state_dir, name, **config)
        except scm.ScmError as error:
            raise _method_failed("Change", error) from None

    if before["start_type"].lower() != spec["start_type"].lower():
        _invoke_sc(state_dir, "start_type", ["config", name, "start=", _SC_START[spec["start_type"]]])
        if not created:
            changes.append(change("start_type", before["start_type"], spec["start_type"]))
    if before["description"] != spec["description"]:
        scm.change(state_dir, name, description=spec["description"])
        changes.append(change("description", before["description"], spec["description"]))
    before_key, desired_key = _failure_key(before["failure_actions"]), _failure_key(spec["failure_actions"])
    if before_key != desired_key:
        wanted = spec["failure_actions"]
        _invoke_sc(
            state_dir,
            "failure_actions",
            ["failure", name, "reset=", str(wanted["reset_period_seconds"]), "actions=", _failure_action_text(wanted)],
        )
        changes.append(change("failure_actions", before_key, desired_key))

    if spec["account"] not in _SID_OF_ACCOUNT:
        # Grant-ServiceLogonRight: Win32_Service does not grant "Log on as a service".
        sid = _account_sid(state_dir, spec["account"])
        if sid is None:
            raise _Stop(
                fail(
                    "LogonRightNotGranted",
                    f"cannot grant 'Log on as a service' (SeServiceLogonRight) to '{spec['account']}': the account "
                    "does not resolve to a SID; create it first",
                    prop="account",
                )
            )
        try:
            if lsa.grant_right(state_dir, sid, scm.SERVICE_LOGON_RIGHT):
                changes.append(change("logon_right", None, scm.SERVICE_LOGON_RIGHT))
        except lsa.LsaError as error:
            raise _Stop(
                fail(
                    "LogonRightNotGranted",
                    f"granting 'Log on as a service' (SeServiceLogonRight) to '{spec['account']}' failed: "
                    f"{error.text()} "
                    "Grant it in secpol.msc (Local Policies, User Rights Assignment) or in the Group Policy that "
                    "sets it.",
                    prop="account",
                )
            ) from None

    if spec["state"] == "Running":
        if before["state"] != "Running":
            _control(state_dir, name, "Start")
            changes.append(change("state", before["state"], "Running"))
        elif reconfigured:
            _control(state_dir, name, "Stop")
            _control(state_dir, name, "Start")
            changes.append(change("state", "Running", "Running (restarted)"))
    elif spec["state"] == "Stopped":
        if before["state"] != "Stopped":
            _control(state_dir, name, "Stop")
            changes.append(change("state", before["state"], "Stopped"))
    else:
        raise ValueError(f"SIMULATOR: the set script does not handle state {spec['state']!r}")
    return succeed(_state(state_dir, name), changes)


def _run_holding_the_lock_first(state_dir: Path, spec: dict[str, Any]) -> None:
    """LOCK_WAIT_KNOB: the other set.ps1 that holds the owners lock while this one waits runs to its end first (its
    lock taken and released before this one's wait returns); it must succeed, or the test set the scene wrong."""
    queued = Knobs(sim_dir(state_dir) / "knobs.json").take_fault(spec["name"], key=LOCK_WAIT_KNOB)
    if queued is None:
        return
    try:
        ahead = _set(state_dir, spec | {"owner": str(queued.get("owner") or spec["owner"])})
    except _Stop as stop:
        ahead = stop.envelope
    if not ahead.ok:
        raise ValueError(f"SIMULATOR: the set run ahead of this one ({LOCK_WAIT_KNOB}) failed: {ahead.error}")


def _failure_action_text(value: dict[str, Any]) -> str:
    """ConvertTo-FailureActionText: action/delay-ms pairs joined by '/', and '""' for no actions."""
    parts: list[str] = []
    for item in value["actions"]:
        if item["action"] not in ("Restart", "Reboot", "None"):
            raise ValueError(f"SIMULATOR: the script does not pass the action {item['action']!r} to sc.exe")
        parts += [
            {"Restart": "restart", "Reboot": "reboot"}.get(item["action"], ""),
            str(int(item["delay_seconds"]) * 1000),
        ]
    return "/".join(parts) or EMPTY_ACTIONS_ARGUMENT


def _invoke_sc(state_dir: Path, prop: str, arguments: list[str]) -> None:
    """Invoke-Sc: `& sc.exe @Arguments 2>&1` with a local $ErrorActionPreference = 'Continue'; the
    arguments reach sc.exe as 5.1's legacy argument passing leaves them (ps51.native_argv)."""
    code, stdout, stderr = scm.sc_exe(state_dir, ps51.native_argv(arguments))
    output = ps51.native_call_output(stdout, stderr, eap=SC_CALL_EAP)
    if code != 0:
        message = f"sc.exe {arguments[0]} failed with {code}: {output.strip()}"
        raise _Stop(fail("ScFailed", message, prop=prop))


def remove(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    state_dir, name = fs.root, spec["name"]
    before = _state(state_dir, name)
    if before["ensure"] == "absent":
        return succeed(before)
    owner, marker = str(spec["owner"]), before["owner_marker"]
    if not ((owner != "" and marker == owner) or (owner == "" and marker == "")):
        return succeed(before)  # not created by this resource: left as it is
    changes = []
    try:
        if before["state"] != "Stopped" and _control(state_dir, name, "Stop", gone_is_stopped=True):
            changes.append(change("state", before["state"], "Stopped"))
        # A marked service goes by itself; its Delete would return 16 (1072). One another program deleted since the
        # first read (Get-CimInstance finds none) has nothing left to delete.
        # The DeleteFlag read again before Delete: marked since the first read (services.msc holds it open), it goes
        # by itself (review adopt4 E4).
        service = scm.get(state_dir, name)
        if not before["marked_for_delete"] and service is not None and not service.marked_for_delete:
            try:
                scm.delete(state_dir, name)
            except scm.ScmError as error:
                raise _method_failed("Delete", error) from None
            changes.append(change("ensure", "present", "absent"))
    except _Stop as stop:
        return stop.envelope
    return succeed(_state(state_dir, name), changes)


OPERATIONS = {
    "windows_service/get": get,
    "windows_service/set": set_,
    "windows_service/remove": remove,
}

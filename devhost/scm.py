"""SIMULATOR: the service control manager of the simulated host.

Services live in ``<state>/_sim/services.json`` (one object per service: configuration, stored
password hash, running state), so tests and the admin CLI can change them out of band.
System services (W3SVC, WAS) are added by the feature model while IIS is installed.

Modelled Windows rules, with the Win32 error each raises:
- create: a name with '/' or '\\' (123), a name or display name already in use (1073 / 1078),
  an account that does not exist or is a group (1057);
- start: a disabled service (1058), an image path whose program is missing (2) or is not a
  Windows program (193: the file must start with 'MZ'), a wrong or missing password, or a
  password given for a gMSA, a user or gMSA without "Log on as a service" (1069);
- start of a service that depends on others (``dependencies``, lpDependencies of ChangeServiceConfig)
  starts those first: one that does not exist or is marked for deletion fails it with 1075
  (ERROR_SERVICE_DEPENDENCY_DELETED), one that cannot start with 1068 (ERROR_SERVICE_DEPENDENCY_FAIL;
  learn.microsoft.com StartService, return codes); start of a service that is not Stopped (Running, Paused,
  or any pending state) fails with 1056 (ERROR_SERVICE_ALREADY_RUNNING: StartService needs a stopped service;
  a dependency already running is left as it is);
- stop through ``control_stop`` (ControlService): a stopped service fails with 1062 (ERROR_SERVICE_NOT_ACTIVE);
- one-shot races (knobs ``service_start_races``, ``service_stop_races``): another program starts or stops the service
  just before this start or stop, which then meets 1056 or 1062;
- the states of SERVICE_STATUS (learn.microsoft.com SERVICE_STATUS, dwCurrentState): Stopped, StartPending,
  StopPending, Running, ContinuePending, PausePending, Paused; a pending state ends with ``settle``;
- delete of a running service, or of one a program holds a handle to (services.msc, an EDR tool:
  ``admin_open_handle``), only marks it for deletion: it stays listed, with DeleteFlag=1 under its key and its
  start type set to Disabled (MS-SCMR 3.1.4.3 RDeleteService), later changes, a second delete and a create of
  its name fail with 1072, a start with 1058 (the start type is checked first), and it goes once it is stopped
  and the last handle is closed (learn.microsoft.com DeleteService, Remarks; CreateService, return codes).
A program that starts is taken to answer the service control manager (no 1053 is modelled).
Per-service SIDs (``NT SERVICE\\<name>``) resolve while the service exists.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from devhost import accounts, lsa
from devhost.fs import WindowsFs, WindowsPathError
from devhost.hooks import Knobs, sim_dir

WIN32_MESSAGES = {
    2: "The system cannot find the file specified.",
    5: "Access is denied.",
    87: "The parameter is incorrect.",
    123: "The filename, directory name, or volume label syntax is incorrect.",
    193: "%1 is not a valid Win32 application.",
    1057: "The account name is invalid or does not exist, or the password is invalid for the account name specified.",
    1056: "An instance of the service is already running.",
    1058: "The service cannot be started, either because it is disabled or because it has no enabled devices "
    "associated with it.",
    1060: "The specified service does not exist as an installed service.",
    1061: "The service cannot accept control messages at this time.",
    1062: "The service has not been started.",
    1068: "The dependency service or group failed to start.",
    1069: "The service did not start due to a logon failure.",
    1072: "The specified service has been marked for deletion.",
    1073: "The specified service already exists.",
    1075: "The dependency service does not exist or has been marked for deletion.",
    1078: "The name is already in use as either a service name or a service display name.",
}

# Win32_Service's own names for the built-in accounts (StartName), and their SIDs.
BUILTIN_START_NAMES = {
    "localsystem": "S-1-5-18",
    "nt authority\\system": "S-1-5-18",
    "nt authority\\localservice": "S-1-5-19",
    "nt authority\\networkservice": "S-1-5-20",
}
SERVICE_DOMAIN_RID = 80  # NT SERVICE\<name>: S-1-5-80-<SHA-1 of the upper-cased name>
# Knob ``service_create_races``: [{"on": "<service name>"}], one-shot: someone installs that service by hand (the
# manual's `sc.exe create`, with the very values of the create under way) just before a create's CreateService,
# which then finds the name taken (1073).
CREATE_RACE_KNOB = "service_create_races"
# Knob ``service_start_races``: [{"on": "<service name>", "pending": bool}], one-shot: another program (a second run
# of the same resource past the owners lock, an administrator) starts that service just before a StartService, which
# then answers 1056 (the service is no longer stopped); with ``pending`` its program has not reported Running yet
# (StartPending). Knob ``service_stop_races``: [{"on": "<service name>"}], one-shot: another program stops it just
# before a ControlService(STOP) of ``control_stop``, which then answers 1062.
START_RACE_KNOB = "service_start_races"
STOP_RACE_KNOB = "service_stop_races"


class ScmError(Exception):
    """A Win32 error of the service control manager (code and its system message)."""

    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__(WIN32_MESSAGES[code])


@dataclass
class Service:
    name: str
    display_name: str
    image_path: str
    start_mode: str = "Auto"  # as Win32_Service shows it: Auto, Manual, Disabled
    delayed_auto_start: bool = False
    start_name: str = "LocalSystem"
    password_sha256: str | None = None
    description: str = ""
    failure_actions: dict[str, Any] = field(default_factory=lambda: {"actions": [], "reset_period_seconds": 0})
    dependencies: list[str] = field(default_factory=list)  # the services it needs running (names)
    state: str = "Stopped"  # one of STATES (ServiceControllerStatus's names)
    process_id: int = 0
    started_at: float = 0.0  # when it last started (its program loads its images then; see devhost.fileops)
    system: bool = False
    marked_for_delete: bool = False  # the DeleteFlag=1 value under its registry key
    open_handles: int = 0  # handles other programs hold to it (OpenService without CloseServiceHandle)
    # Values a program wrote under its key, HKLM\SYSTEM\CurrentControlSet\Services\<name>, beside the service control
    # manager's own (learn.microsoft.com, "HKLM\SYSTEM\CurrentControlSet\Services registry tree"): REG_SZ by name.
    # They go with the key when the service is deleted (DeleteService, Remarks); CreateService writes none.
    key_values: dict[str, str] = field(default_factory=dict)


# SERVICE_STATUS.dwCurrentState, by ServiceControllerStatus's names (learn.microsoft.com SERVICE_STATUS).
STATES = ("Stopped", "StartPending", "StopPending", "Running", "ContinuePending", "PausePending", "Paused")
# Where a pending state ends when the service finishes it.
PENDING_END = {
    "StartPending": "Running",
    "ContinuePending": "Running",
    "PausePending": "Paused",
    "StopPending": "Stopped",
}


# What the service control manager keeps about a running service, which no setting changes.
_RUNTIME_FIELDS = (
    "name",
    "state",
    "process_id",
    "started_at",
    "system",
    "marked_for_delete",
    "open_handles",
    "key_values",  # not settings of ChangeServiceConfig: set_key_value writes them
)


def _path(state_dir: Path) -> Path:
    return state_dir / "_sim" / "services.json"


def load(state_dir: Path) -> dict[str, Service]:
    path = _path(state_dir)
    if not path.exists():
        return {}
    return {item["name"].lower(): Service(**item) for item in json.loads(path.read_text(encoding="utf-8"))}


def save(state_dir: Path, services: dict[str, Service]) -> None:
    path = _path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    items = [asdict(s) for s in sorted(services.values(), key=lambda s: s.name.lower())]
    temporary.write_text(json.dumps(items, indent=2), encoding="utf-8")
    os.replace(temporary, path)


def get(state_dir: Path, name: str) -> Service | None:
    return load(state_dir).get(name.lower())


def service_names(state_dir: Path) -> list[str]:
    return [s.name for s in load(state_dir).values()]


accounts.register_virtual_domain("NT SERVICE", SERVICE_DOMAIN_RID, service_names)


def hash_password(password: str | None) -> str | None:
    return hashlib.sha256(password.encode()).hexdigest() if password else None


def account_sid(state_dir: Path, start_name: str) -> str | None:
    """The SID the account translates to, or None when it does not (or no longer) exist."""
    builtin = BUILTIN_START_NAMES.get(start_name.lower())
    if builtin:
        return builtin
    try:
        return accounts.resolve(state_dir, start_name).sid
    except accounts.IdentityNotMapped:
        return None


def _check_account(state_dir: Path, start_name: str) -> None:
    if start_name.lower() in BUILTIN_START_NAMES:
        return
    try:
        account = accounts.resolve(state_dir, start_name)
    except accounts.IdentityNotMapped:
        raise ScmError(1057) from None
    if account.kind == "group":
        raise ScmError(1057)


def _check_names(services: dict[str, Service], name: str, display_name: str, *, itself: str | None = None) -> None:
    for other in services.values():
        if other.name.lower() == (itself or "").lower():
            continue
        if display_name.lower() in (other.name.lower(), other.display_name.lower()):
            raise ScmError(1078)


def create(
    state_dir: Path,
    *,
    name: str,
    display_name: str,
    image_path: str,
    start_mode: str,
    start_name: str,
    password: str | None,
) -> Service:
    """CreateService (what Win32_Service.Create calls)."""
    if not name or len(name) > 256 or "/" in name or "\\" in name:
        raise ScmError(123)
    service = Service(
        name=name,
        display_name=display_name,
        image_path=image_path,
        start_mode=start_mode,
        start_name=start_name,
        password_sha256=hash_password(password),
    )
    if Knobs(sim_dir(state_dir) / "knobs.json").take_fault(name, key=CREATE_RACE_KNOB) is not None:
        # The racing hand install: the same service, made by someone else just before this CreateService.
        raced = load(state_dir)
        raced[name.lower()] = service
        save(state_dir, raced)
    services = load(state_dir)
    if name.lower() in services:
        # "already exists in this database and has been marked for deletion" (CreateService, return codes)
        raise ScmError(1072 if services[name.lower()].marked_for_delete else 1073)
    if any(s.display_name.lower() == name.lower() for s in services.values()):
        raise ScmError(1078)
    _check_names(services, name, display_name)
    _check_account(state_dir, start_name)
    services[name.lower()] = service
    save(state_dir, services)
    return service


def _existing(services: dict[str, Service], name: str) -> Service:
    service = services.get(name.lower())
    if service is None:
        raise ScmError(1060)
    if service.marked_for_delete:
        raise ScmError(1072)
    return service


def change(state_dir: Path, name: str, **values: Any) -> Service:
    """ChangeServiceConfig(2): the given fields only (Win32_Service.Change, sc.exe config/failure, descriptions).

    ``start_name`` with ``password`` (None: leave the stored password) checks the account (1057).
    """
    services = load(state_dir)
    service = _existing(services, name)
    if "display_name" in values:
        _check_names(services, name, values["display_name"], itself=name)
    if "start_name" in values:
        _check_account(state_dir, values["start_name"])
        if values["start_name"].lower() in BUILTIN_START_NAMES:
            service.password_sha256 = None
    if "password" in values:
        password = values.pop("password")
        if password is not None:
            service.password_sha256 = hash_password(password)
    for key, value in values.items():
        if not hasattr(service, key) or key in _RUNTIME_FIELDS:
            raise ValueError(f"SIMULATOR: the service control manager has no setting {key!r}")
        setattr(service, key, value)
    save(state_dir, services)
    return service


SERVICES_KEY = "HKLM:\\SYSTEM\\CurrentControlSet\\Services"  # each service's key, as the scripts spell it


class RegistryKeyNotFound(Exception):
    """PowerShell's ItemNotFoundException for a registry key that does not exist: "occurs when the path contained no
    wildcard characters and an item at that path could not be found" (learn.microsoft.com, ItemNotFoundException
    Class, System.Management.Automation). Its message is SessionStateStrings.PathNotFound of PowerShell, "Cannot find
    path '{0}' because it does not exist.", the path as the script gave it; its error record's category is
    ObjectNotFound (errorId PathNotFound)."""

    category = "ObjectNotFound"

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"Cannot find path '{path}' because it does not exist.")


def set_key_value(state_dir: Path, name: str, value_name: str, value: str) -> None:
    """New-ItemProperty -LiteralPath <the service's key> -PropertyType String -Force (RegSetValueEx): the key is there
    as long as the service is listed, marked for deletion or not. Once it is gone (DeleteService, Remarks: "deleting
    the service key and its subkeys") the write fails with RegistryKeyNotFound: -Force creates no key, it only lets
    the value be overwritten (learn.microsoft.com New-ItemProperty, -Force; New-Item creates keys)."""
    services = load(state_dir)
    service = services.get(name.lower())
    if service is None:
        raise RegistryKeyNotFound(f"{SERVICES_KEY}\\{name}")
    service.key_values[value_name] = value
    save(state_dir, services)


# -- sc.exe, as the program sees its argv ---------------------------------------------------------

SC_USAGE_EXIT = 1639  # ERROR_INVALID_COMMAND_LINE; *unverified* which code sc.exe returns with its usage text
_SC_START = {"auto": ("Auto", False), "delayed-auto": ("Auto", True), "demand": ("Manual", False)}
_SC_START["disabled"] = ("Disabled", False)
_SC_ACTIONS = {"": "None", "restart": "Restart", "reboot": "Reboot"}


def _sc_options(argv: list[str]) -> dict[str, str] | None:
    """sc.exe's `name= value` pairs (learn.microsoft.com sc-config / sc-failure: "option= value", the
    value a separate argument); None when an option has no value after it (usage error)."""
    options: dict[str, str] = {}
    index = 0
    while index < len(argv):
        option = argv[index]
        if not option.endswith("=") or index + 1 >= len(argv):
            return None
        options[option[:-1].lower()] = argv[index + 1]
        index += 2
    return options


def sc_exe(state_dir: Path, argv: list[str]) -> tuple[int, str, str]:
    """``sc.exe <argv>`` for `config <svc> start= <type>` and `failure <svc> reset= <s> actions= <list>`:
    (exit code, stdout, stderr). sc.exe writes its messages, failures included, to stdout."""
    if len(argv) < 2 or argv[0].lower() not in ("config", "failure"):
        raise ValueError(f"SIMULATOR: sc.exe {argv[:1]} is not modelled")
    options = _sc_options(argv[2:])
    usage = (
        f"DESCRIPTION:\r\n        Modifies a service entry ({argv[0]}).\r\n"
        f"USAGE:\r\n        sc <server> {argv[0]} ...\r\n"
    )
    if options is None:
        return SC_USAGE_EXIT, usage, ""
    name = argv[1]
    if get(state_dir, name) is None:
        return 1060, f"[SC] OpenService FAILED 1060:\r\n\r\n{WIN32_MESSAGES[1060]}\r\n\r\n", ""
    if argv[0].lower() == "config":
        if set(options) != {"start"} or options["start"].lower() not in _SC_START:
            raise ValueError(f"SIMULATOR: sc.exe config {options} is not modelled")
        mode, delayed = _SC_START[options["start"].lower()]
        change(state_dir, name, start_mode=mode, delayed_auto_start=delayed)
        return 0, "[SC] ChangeServiceConfig SUCCESS\r\n", ""
    if set(options) != {"reset", "actions"}:
        raise ValueError(f"SIMULATOR: sc.exe failure {options} is not modelled")
    # actions= "" removes every action; otherwise action/delay-ms pairs joined by '/'.
    parts = options["actions"].split("/") if options["actions"] else []
    if len(parts) % 2 or any(p.lower() not in _SC_ACTIONS for p in parts[0::2]):
        return SC_USAGE_EXIT, usage, ""
    actions = [
        {"action": _SC_ACTIONS[kind.lower()], "delay_seconds": int(delay) // 1000}
        for kind, delay in zip(parts[0::2], parts[1::2], strict=True)
    ]
    change(state_dir, name, failure_actions={"actions": actions, "reset_period_seconds": int(options["reset"])})
    return 0, "[SC] ChangeServiceConfig2 SUCCESS\r\n", ""


def executable_of(image_path: str) -> str:
    """The program CreateProcess runs for an ImagePath (quoted, or up to the first space)."""
    text = image_path.strip()
    if text.startswith('"'):
        return text[1:].split('"', 1)[0]
    return text.split(" ", 1)[0]


def dependents_of(state_dir: Path, name: str) -> list[Service]:
    """The services that depend on ``name`` directly (lpDependencies)."""
    return [s for s in load(state_dir).values() if name.lower() in (d.lower() for d in s.dependencies)]


def enum_dependent_services(state_dir: Path, name: str) -> list[Service]:
    """EnumDependentServices(SERVICE_STATE_ALL): every service that depends on ``name``, directly or through
    another, "in reverse order of start order" (learn.microsoft.com EnumDependentServices): a service comes
    before those it depends on."""
    ordered: list[Service] = []

    def visit(service_name: str) -> None:
        for dependent in dependents_of(state_dir, service_name):
            if all(s.name.lower() != dependent.name.lower() for s in ordered):
                visit(dependent.name)  # what depends on it first
                ordered.append(dependent)

    visit(name)
    return ordered


def start(state_dir: Path, name: str) -> Service:
    """StartService, with the checks Windows makes before the program runs."""
    race = Knobs(sim_dir(state_dir) / "knobs.json").take_fault(name, key=START_RACE_KNOB)
    if race is not None:
        _racing_start(state_dir, name, pending=bool(race.get("pending")))
    services = load(state_dir)
    service = services.get(name.lower())
    if service is None:
        raise ScmError(1060)
    # The order of RStartServiceW and ScmLoadService in ReactOS (reactos/reactos base/system/services/rpcserver.c
    # and database.c): Disabled (1058), then marked for deletion (1072), then not stopped (1056). Marking sets the
    # start type to Disabled (delete, below), so a start of a marked service answers 1058, as Windows does:
    # "CreateService FAILED 1072 ... StartService FAILED 1058 ... DeleteService FAILED 1072" on a service marked for
    # deletion (Flowseal/zapret-discord-youtube#8521; #12070 shows the same start).
    if service.start_mode == "Disabled":
        raise ScmError(1058)
    if service.marked_for_delete:
        raise ScmError(1072)
    if service.state != "Stopped":
        raise ScmError(1056)
    for dependency in service.dependencies:
        needed = services.get(dependency.lower())
        if needed is None or needed.marked_for_delete:
            raise ScmError(1075)
        if needed.state != "Stopped":
            continue  # (running already, or on its way: 1056 is the dependency's own answer, not this start's)
        try:
            start(state_dir, dependency)
        except ScmError:
            raise ScmError(1068) from None
    services = load(state_dir)  # (the dependencies started above were saved)
    service = services[name.lower()]
    if not service.system:
        _check_logon(state_dir, service)
        try:
            program = WindowsFs(state_dir).resolve(executable_of(service.image_path))
        except WindowsPathError:
            raise ScmError(2) from None
        if not program.is_file():
            raise ScmError(2)
        with program.open("rb") as handle:
            if handle.read(2) != b"MZ":
                raise ScmError(193)
    service.state = "Running"
    service.process_id = 1000 + int(hashlib.sha256(service.name.lower().encode()).hexdigest()[:4], 16)
    service.started_at = time.time()
    save(state_dir, services)
    return service


def _racing_start(state_dir: Path, name: str, *, pending: bool) -> None:
    """START_RACE_KNOB: the other program's StartService, just before this one (a start of its that fails leaves the
    service stopped, and this start meets the same failure)."""
    try:
        start(state_dir, name)
    except ScmError:
        return
    if pending:
        set_state(state_dir, name, "StartPending")


# -- user rights: devhost.lsa holds them; a service logon needs "Log on as a service" ------------------------

SERVICE_LOGON_RIGHT = lsa.SERVICE_LOGON_RIGHT


def _check_logon(state_dir: Path, service: Service) -> None:
    if service.start_name.lower() in BUILTIN_START_NAMES:
        return
    try:
        account = accounts.resolve(state_dir, service.start_name)
    except accounts.IdentityNotMapped:
        raise ScmError(1069) from None
    if account.kind == "gmsa":
        if service.password_sha256 is not None:  # a gMSA's password is the domain's, never a typed one
            raise ScmError(1069)
    elif (
        account.kind != "user" or account.password_sha256 is None or service.password_sha256 != account.password_sha256
    ):
        raise ScmError(1069)
    # A user or gMSA needs "Log on as a service"; without it the start fails with 1069 (event 7041,
    # "the user has not been granted the requested logon type"; learn.microsoft.com "Log on as a service").
    if not lsa.holds(state_dir, account.sid, SERVICE_LOGON_RIGHT):
        raise ScmError(1069)


def stop_pending(state_dir: Path, name: str) -> None:
    """A service that accepted the stop control and does not finish stopping (its process goes on)."""
    services = load(state_dir)
    _existing(services, name).state = "StopPending"
    save(state_dir, services)


def set_state(state_dir: Path, name: str, state: str) -> None:
    """What the service itself reports (SetServiceStatus): e.g. StartPending while a delayed automatic start is
    under way, Paused after a pause control, or StopPending for a stop it has not finished."""
    if state not in STATES:
        raise ValueError(f"SIMULATOR: no service state {state!r}")
    services = load(state_dir)
    service = _existing(services, name)
    if service.state == "Stopped" and state != "Stopped":  # its process starts (and loads its images) now
        service.process_id = 1000 + int(hashlib.sha256(service.name.lower().encode()).hexdigest()[:4], 16)
        service.started_at = time.time()
    service.state = state
    save(state_dir, services)


def settle(state_dir: Path, name: str) -> str:
    """The service finishes its pending state (PENDING_END); returns its state."""
    service = get(state_dir, name)
    if service is None:
        raise ScmError(1060)
    if service.state == "StopPending":
        stop(state_dir, name)
        return "Stopped"
    if service.state in PENDING_END:
        set_state(state_dir, name, PENDING_END[service.state])
    return PENDING_END.get(service.state, service.state)


def stop(state_dir: Path, name: str) -> Service | None:
    """ControlService(STOP); a service marked for deletion goes away once stopped (returns None)."""
    services = load(state_dir)
    service = services.get(name.lower())
    if service is None:
        raise ScmError(1060)
    if service.state != "Stopped":
        service.state = "Stopped"
        service.process_id = 0
    if service.marked_for_delete and service.open_handles == 0:
        del services[name.lower()]
        save(state_dir, services)
        return None
    save(state_dir, services)
    return service


def control_stop(state_dir: Path, name: str) -> Service | None:
    """ControlService(SERVICE_CONTROL_STOP) as the service's own ServiceController.Stop() sends it: a stopped service
    answers ERROR_SERVICE_NOT_ACTIVE (1062; learn.microsoft.com ControlService, Return value; ReactOS
    base/system/services/rpcserver.c RControlService checks SERVICE_STOPPED first), one gone 1060; otherwise
    ``stop`` (which takes a stopped service as done: the tests' and the other models' stop, not ControlService).
    STOP_RACE_KNOB: another program's stop comes first."""
    if Knobs(sim_dir(state_dir) / "knobs.json").take_fault(name, key=STOP_RACE_KNOB) is not None:
        stop(state_dir, name)
    service = get(state_dir, name)
    if service is None:
        raise ScmError(1060)
    if service.state == "Stopped":
        raise ScmError(1062)
    return stop(state_dir, name)


def delete(state_dir: Path, name: str) -> bool:
    """DeleteService: gone at once when stopped and no other handle is open, else marked for deletion (returns
    whether it is gone)."""
    services = load(state_dir)
    service = _existing(services, name)
    if service.state != "Stopped" or service.open_handles > 0:
        # MS-SCMR 3.1.4.3 RDeleteService: "The server MUST change the Start in the service record to
        # SERVICE_DISABLED" and "MUST set the Deleted field to TRUE" (learn.microsoft.com/openspecs/
        # windows_protocols/ms-scmr/6744cdb8-f162-4be0-bb31-98996b6495be): Win32_Service then shows Disabled.
        service.start_mode = "Disabled"
        service.marked_for_delete = True
        save(state_dir, services)
        return False
    del services[name.lower()]
    save(state_dir, services)
    return True


def add_system_service(state_dir: Path, name: str, display_name: str, image_path: str) -> None:
    """A service that comes with Windows or a role (W3SVC, WAS): running, as LocalSystem."""
    services = load(state_dir)
    services.setdefault(
        name.lower(),
        Service(name=name, display_name=display_name, image_path=image_path, state="Running", system=True),
    )
    save(state_dir, services)


def remove_system_service(state_dir: Path, name: str) -> None:
    services = load(state_dir)
    services.pop(name.lower(), None)
    save(state_dir, services)


# -- out-of-band changes (devhost admin CLI) ---------------------------------------------------


def admin_edit_service(state_dir: Path, name: str, **values: Any) -> None:
    """An administrator edits a service in services.msc: display_name, start_mode ('Auto', 'Manual',
    'Disabled'), delayed_auto_start, start_name, description, image_path, failure_actions."""
    change(state_dir, name, **values)


def admin_stop_service(state_dir: Path, name: str) -> None:
    """An administrator stops a service (Stop-Service)."""
    stop(state_dir, name)


def admin_open_handle(state_dir: Path, name: str) -> None:
    """A program opens the service and keeps the handle (services.msc showing it, an EDR tool watching it)."""
    services = load(state_dir)
    service = services.get(name.lower())
    if service is None:
        raise ScmError(1060)
    service.open_handles += 1
    save(state_dir, services)


def admin_close_handles(state_dir: Path, name: str) -> None:
    """That program closes its handles (services.msc closed): a stopped service marked for deletion goes now."""
    services = load(state_dir)
    service = services.get(name.lower())
    if service is None:
        return
    service.open_handles = 0
    if service.marked_for_delete and service.state == "Stopped":
        del services[name.lower()]
    save(state_dir, services)


def admin_delete_service(state_dir: Path, name: str) -> None:
    """An administrator deletes a service (sc.exe delete), stopping it first."""
    stop(state_dir, name)
    delete(state_dir, name)

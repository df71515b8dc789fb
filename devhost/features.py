"""SIMULATOR: Windows Server roles and features (what Get-/Install-/Uninstall-WindowsFeature see).

State lives in ``<state>/_sim/features.json``: the operating system (a client OS has no
ServerManager), the installed feature names and whether a restart is pending. The catalog below
holds the real names (Windows Server 2019/2022) of the features this project deals with, with
their parents; any other name is unknown, as a misspelt name is on Windows.

Modelled rules: installing a feature installs its parents, its dependencies and its default
sub-features (Web-Server brings the default role services); -IncludeManagementTools adds the
feature's tools; uninstalling removes the feature, what lies below it and what depends on it.
Installing Web-Server installs IIS (``devhost.iis``) and its services W3SVC and WAS.

As on Windows (Get-WindowsFeature's Feature.InstallState, learn.microsoft.com
Microsoft.Windows.ServerManager.Commands): a feature that needs a restart to finish is
``InstallPending`` (``Installed`` False) until ``admin_restart``; an uninstall that needs one
leaves it ``UninstallPending``. ``RestartNeeded`` of the result is a RestartState, ``Yes``, ``No``
or ``Maybe`` (``features.json`` key ``next_restart_answer`` makes the next one ``Maybe``). A failed
install is an error record, not a result (``install_failures``: feature name -> the error text).
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devhost import scm


@dataclass(frozen=True)
class Feature:
    name: str
    display_name: str
    parent: str | None = None
    default: bool = False  # installed with its parent when the parent is installed by name
    depends_on: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()  # what -IncludeManagementTools adds
    restart_on_install: bool = False
    restart_on_uninstall: bool = False


def _f(name: str, display: str, parent: str | None = None, **kwargs: Any) -> Feature:
    return Feature(name, display, parent, **kwargs)


CATALOG: dict[str, Feature] = {
    f.name.lower(): f
    for f in (
        _f(
            "Web-Server",
            "Web Server (IIS)",
            tools=("Web-Mgmt-Console",),
            restart_on_uninstall=True,
        ),
        _f("Web-WebServer", "Web Server", "Web-Server", default=True),
        _f("Web-Common-Http", "Common HTTP Features", "Web-WebServer", default=True),
        _f("Web-Default-Doc", "Default Document", "Web-Common-Http", default=True),
        _f("Web-Dir-Browsing", "Directory Browsing", "Web-Common-Http", default=True),
        _f("Web-Http-Errors", "HTTP Errors", "Web-Common-Http", default=True),
        _f("Web-Static-Content", "Static Content", "Web-Common-Http", default=True),
        _f("Web-Http-Redirect", "HTTP Redirection", "Web-Common-Http"),
        _f("Web-Health", "Health and Diagnostics", "Web-WebServer", default=True),
        _f("Web-Http-Logging", "HTTP Logging", "Web-Health", default=True),
        _f("Web-Performance", "Performance", "Web-WebServer", default=True),
        _f("Web-Stat-Compression", "Static Content Compression", "Web-Performance", default=True),
        _f("Web-Dyn-Compression", "Dynamic Content Compression", "Web-Performance"),
        _f("Web-Security", "Security", "Web-WebServer", default=True),
        _f("Web-Filtering", "Request Filtering", "Web-Security", default=True),
        _f("Web-Windows-Auth", "Windows Authentication", "Web-Security"),
        _f("Web-App-Dev", "Application Development", "Web-WebServer"),
        _f("Web-AppInit", "Application Initialization", "Web-App-Dev"),
        _f("Web-WebSockets", "WebSocket Protocol", "Web-App-Dev"),
        _f("Web-Mgmt-Tools", "Management Tools", "Web-Server"),
        _f("Web-Mgmt-Console", "IIS Management Console", "Web-Mgmt-Tools"),
        _f("Web-Scripting-Tools", "IIS Management Scripts and Tools", "Web-Mgmt-Tools"),
        _f("NET-Framework-45-Features", ".NET Framework 4.8 Features"),
        _f("NET-Framework-45-Core", ".NET Framework 4.8", "NET-Framework-45-Features", default=True),
        _f("NET-WCF-Services45", "WCF Services", "NET-Framework-45-Features"),
        _f("RSAT", "Remote Server Administration Tools"),
        _f("RSAT-Role-Tools", "Role Administration Tools", "RSAT"),
        _f("RSAT-AD-Tools", "AD DS and AD LDS Tools", "RSAT-Role-Tools"),
        _f("RSAT-AD-PowerShell", "Active Directory module for Windows PowerShell", "RSAT-AD-Tools"),
        _f("RSAT-ADDS", "AD DS Tools", "RSAT-AD-Tools"),
        _f("RSAT-AD-AdminCenter", "Active Directory Administrative Center", "RSAT-ADDS"),
        _f("RSAT-ADDS-Tools", "AD DS Snap-Ins and Command-Line Tools", "RSAT-ADDS"),
        _f("Containers", "Containers", restart_on_install=True, restart_on_uninstall=True),
        _f("Telnet-Client", "Telnet Client"),
        _f("PowerShellRoot", "Windows PowerShell"),
        _f("PowerShell", "Windows PowerShell 5.1", "PowerShellRoot", default=True),
        _f("WoW64-Support", "WoW64 Support"),
    )
}

# What a fresh Windows Server 2022 installation has.
_FRESH = [
    "NET-Framework-45-Features",
    "NET-Framework-45-Core",
    "NET-WCF-Services45",
    "PowerShellRoot",
    "PowerShell",
    "WoW64-Support",
]
SERVER_OS: dict[str, Any] = {"caption": "Microsoft Windows Server 2022 Datacenter (SIMULATED)", "product_type": 3}

# Services that exist while IIS is installed (W3SVC depends on WAS).
_IIS_SERVICES = (
    ("WAS", "Windows Process Activation Service", "C:\\Windows\\system32\\svchost.exe -k iissvcs"),
    ("W3SVC", "World Wide Web Publishing Service", "C:\\Windows\\system32\\svchost.exe -k iissvcs"),
)


class UnknownFeature(Exception):
    """Install-WindowsFeature's ArgumentNotValid for a name it does not know."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        super().__init__(
            "ArgumentNotValid: The role, role service, or feature name is not valid: '"
            + "', '".join(names)
            + "'. The name was not found. Use the Name column of Get-WindowsFeature."
        )


class FeatureInstallError(Exception):
    """The error record Install-WindowsFeature writes for a failed install (its exception's message)."""


@dataclass
class Result:
    """What Install-/Uninstall-WindowsFeature return: the features changed and RestartNeeded."""

    features: list[str]
    restart: str  # RestartState: "Yes", "No" or "Maybe"

    @property
    def restart_needed(self) -> bool:
        return self.restart != "No"


def _restart_answer(data: dict[str, Any], needed: bool) -> str:
    answer = data.pop("next_restart_answer", None)
    if answer is not None:
        if answer not in ("Yes", "No", "Maybe"):
            raise ValueError(f"SIMULATOR: RestartNeeded {answer!r} is not a RestartState")
        return str(answer)
    return "Yes" if needed else "No"


def install_state(state_dir: Path, name: str) -> str:
    """Get-WindowsFeature's InstallState: Installed, InstallPending, UninstallPending or Available."""
    data = load(state_dir)
    lowered = name.lower()
    if lowered in {n.lower() for n in data.get("install_pending", [])}:
        return "InstallPending"
    if lowered in {n.lower() for n in data.get("uninstall_pending", [])}:
        return "UninstallPending"
    return "Installed" if lowered in {n.lower() for n in data["installed"]} else "Available"


def _path(state_dir: Path) -> Path:
    return state_dir / "_sim" / "features.json"


def load(state_dir: Path) -> dict[str, Any]:
    path = _path(state_dir)
    if not path.exists():
        return {"os": dict(SERVER_OS), "installed": list(_FRESH), "restart_pending": False}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def save(state_dir: Path, data: dict[str, Any]) -> None:
    path = _path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(temporary, path)


def is_server(state_dir: Path) -> bool:
    return int(load(state_dir)["os"]["product_type"]) != 1


def os_caption(state_dir: Path) -> str:
    return str(load(state_dir)["os"]["caption"])


def canonical(names: list[str]) -> list[str]:
    """The catalog spelling of each name; raises UnknownFeature like Install-WindowsFeature."""
    unknown = [n for n in names if n.lower() not in CATALOG]
    if unknown:
        raise UnknownFeature(unknown)
    return [CATALOG[n.lower()].name for n in names]


def installed(state_dir: Path) -> set[str]:
    """Names (lower case) that are Installed or InstallPending."""
    return {n.lower() for n in load(state_dir)["installed"]}


def fully_installed(state_dir: Path) -> set[str]:
    """Names (lower case) whose Installed property is True: InstallPending ones are not."""
    pending = {n.lower() for n in load(state_dir).get("install_pending", [])}
    return installed(state_dir) - pending


def children(name: str) -> list[Feature]:
    return [f for f in CATALOG.values() if f.parent and f.parent.lower() == name.lower()]


def subtree(name: str) -> list[str]:
    """The feature and everything below it, as Get-WindowsFeature's SubFeatures walk gives them."""
    names, queue = [], [name]
    while queue:
        current = CATALOG[queue.pop(0).lower()]
        names.append(current.name)
        queue.extend(child.name for child in children(current.name))
    return names


def _with_defaults(name: str) -> list[str]:
    names = [name]
    for child in children(name):
        if child.default:
            names.extend(_with_defaults(child.name))
    return names


def _ancestors(name: str) -> list[str]:
    parent = CATALOG[name.lower()].parent
    return [*_ancestors(parent), parent] if parent else []


def install(state_dir: Path, names: list[str], *, include_management_tools: bool = False) -> Result:
    """Install-WindowsFeature -Name names [-IncludeManagementTools]."""
    wanted: list[str] = []
    for name in canonical(names):
        feature = CATALOG[name.lower()]
        extra = list(feature.tools) if include_management_tools else []
        for item in [name, *feature.depends_on, *extra]:
            for part in [*_ancestors(item), *_with_defaults(item)]:
                if part not in wanted:
                    wanted.append(part)
    data = load(state_dir)
    present = {n.lower() for n in data["installed"]}
    new = [n for n in wanted if n.lower() not in present]
    data = load(state_dir)
    failures = data.get("install_failures", {})
    failed = [n for n in new if n in failures]
    if failed:
        raise FeatureInstallError(str(failures[failed[0]]))
    if any(n.lower() == "web-server" for n in new):
        _install_iis(state_dir)
    pending = [n for n in new if CATALOG[n.lower()].restart_on_install]
    data = load(state_dir)  # the IIS model may have written files; features.json is ours alone
    data["installed"] = [*data["installed"], *new]
    data["install_pending"] = [*data.get("install_pending", []), *pending]
    answer = _restart_answer(data, bool(pending))
    data["restart_pending"] = bool(data.get("restart_pending")) or answer != "No"
    save(state_dir, data)
    return Result(new, answer)


def uninstall(state_dir: Path, names: list[str]) -> Result:
    """Uninstall-WindowsFeature -Name names: each feature, what lies below it and what depends on it."""
    data = load(state_dir)
    present = {n.lower() for n in data["installed"]}
    doomed: list[str] = []
    for name in canonical(names):
        for part in subtree(name):
            if part.lower() in present and part not in doomed:
                doomed.append(part)
    for feature in CATALOG.values():
        if feature.name.lower() in present and any(
            d.lower() in {x.lower() for x in doomed} for d in feature.depends_on
        ):
            doomed.extend(n for n in subtree(feature.name) if n.lower() in present and n not in doomed)
    if any(n.lower() == "web-server" for n in doomed):
        _remove_iis(state_dir)
    pending = [n for n in doomed if CATALOG[n.lower()].restart_on_uninstall]
    gone = {n.lower() for n in doomed}
    data = load(state_dir)
    data["installed"] = [n for n in data["installed"] if n.lower() not in gone]
    data["install_pending"] = [n for n in data.get("install_pending", []) if n.lower() not in gone]
    data["uninstall_pending"] = [*data.get("uninstall_pending", []), *pending]
    answer = _restart_answer(data, bool(pending))
    data["restart_pending"] = bool(data.get("restart_pending")) or answer != "No"
    save(state_dir, data)
    return Result(doomed, answer)


def _iis_function(name: str) -> Callable[[Path], object]:
    # Imported when needed: the IIS model is a separate module, and features without IIS work without it.
    try:
        iis = importlib.import_module("devhost.iis")
    except ImportError as error:
        raise RuntimeError(
            f"SIMULATOR: (un)installing Web-Server needs the IIS model devhost/iis.py ({name}), which is not "
            "present; the simulator refuses to pretend IIS is there"
        ) from error
    function = getattr(iis, name, None)
    if not callable(function):
        raise RuntimeError(f"SIMULATOR: devhost.iis has no {name}(state_dir); refusing to fake the IIS change")
    return function  # type: ignore[no-any-return]


def _install_iis(state_dir: Path) -> None:
    _iis_function("ensure_installed")(state_dir)
    for name, display, image in _IIS_SERVICES:
        scm.add_system_service(state_dir, name, display, image)


def _remove_iis(state_dir: Path) -> None:
    _iis_function("ensure_removed")(state_dir)
    for name, _, _ in _IIS_SERVICES:
        scm.remove_system_service(state_dir, name)


# -- out-of-band changes (devhost admin CLI) ---------------------------------------------------


def admin_remove_feature(state_dir: Path, name: str) -> None:
    """An administrator removes one feature by hand (Server Manager), nothing else."""
    data = load(state_dir)
    data["installed"] = [n for n in data["installed"] if n.lower() != name.lower()]
    save(state_dir, data)


def admin_restart(state_dir: Path) -> None:
    """The server restarts: pending feature changes complete."""
    data = load(state_dir)
    data["restart_pending"] = False
    data["install_pending"] = []
    data["uninstall_pending"] = []
    save(state_dir, data)


def admin_fail_install(state_dir: Path, name: str, message: str) -> None:
    """Make installing ``name`` fail as DISM does (e.g. missing source files), until cleared with ''."""
    data = load(state_dir)
    failures = dict(data.get("install_failures", {}))
    if message:
        failures[CATALOG[name.lower()].name] = message
    else:
        failures.pop(CATALOG[name.lower()].name, None)
    data["install_failures"] = failures
    save(state_dir, data)


def admin_set_os(state_dir: Path, caption: str, product_type: int) -> None:
    """Make the simulated host a client OS (product_type 1) or a server (3), e.g. to test the refusal."""
    data = load(state_dir)
    data["os"] = {"caption": caption, "product_type": product_type}
    save(state_dir, data)

"""SIMULATOR: IIS 10 on the simulated host.

State, split as Windows splits it:
- configuration: ``applicationHost.config`` at its real place (``C:\\Windows\\System32\\inetsrv\\config``),
  in IIS's own schema (``system.applicationHost/applicationPools``, ``sites``,
  ``system.webServer/globalModules``), so an administrator-style edit of the file is drift;
- runtime state WAS keeps (pool/site started or stopped, the last start failure):
  ``_sim/iis_runtime.json``; it is not configuration, as on Windows;
- HTTP.sys certificate bindings (``netsh http show sslcert``): ``_sim/http_sslcert.json``;
  applicationHost.config never holds certificate hashes;
- registry values (InetStp, the ASP.NET Core shared framework): ``_sim/registry.json``.

``ServerManager`` behaves as Microsoft.Web.Administration's: it reads the file once, at the first
section access, and a commit comes a script's work later (``SCRIPT_WORK_S``); ``commit``
fails with the real error when another writer committed in between, applies HTTP.sys bindings
(failing like Windows when the certificate is not in the store), and makes WAS start new pools
and sites. Values are read with IIS's inheritance: the element, then ``*Defaults``, then the
schema default. Anything this model does not know raises instead of being accepted.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import random
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from devhost import accounts, lsa, scm
from devhost.fs import WindowsFs
from devhost.hooks import Journal, read_knobs, sim_dir

T = TypeVar("T")

CONFIG_PATH = "C:\\Windows\\System32\\inetsrv\\config\\applicationHost.config"
INETSTP = "HKLM:\\SOFTWARE\\Microsoft\\InetStp"
ASPNETCORE_SHARED_FRAMEWORK = "HKLM:\\SOFTWARE\\Microsoft\\ASP.NET Core\\Shared Framework"
# The .NET runtime's installer records each version as a value named after it, in the 32-bit registry view (seen
# from 64 bits under WOW6432Node; dotnet/project-system NetCoreRuntimeVersionsRegistryReader.cs reads it there).
NETCORE_APP_VERSIONS = (
    "HKLM:\\SOFTWARE\\WOW6432Node\\dotnet\\Setup\\InstalledVersions\\x64\\sharedfx\\Microsoft.NETCore.App"
)
ASPNETCORE_MODULE = "AspNetCoreModuleV2"
ASPNETCORE_MODULE_IMAGE = "%ProgramFiles%\\IIS\\Asp.Net Core Module\\V2\\aspnetcorev2.dll"
DEFAULT_POOL = "DefaultAppPool"
DEFAULT_SITE = "Default Web Site"
DEFAULT_SITE_PATH = "%SystemDrive%\\inetpub\\wwwroot"
# Reading and parsing the real file takes tens of milliseconds.
LOAD_LATENCY_S = 0.03
# What a script does between ServerManager's load of applicationHost.config and its CommitChanges (finding
# the pool or site, comparing a dozen attributes through COM interop, reading HTTP.sys and the certificate
# store, setting what differs): tens to hundreds of milliseconds of Windows PowerShell on a real server. The
# models do the same work in microseconds, so a commit waits until this long after the load (knob
# ``iis_script_work_ms``): two operations on one host then interleave between read and commit as on Windows.
SCRIPT_WORK_S = 0.1

# What the Web-Server role's default role services register (IIS 10, Windows Server 2019/2022).
_DEFAULT_MODULES = (
    ("HttpLoggingModule", "%windir%\\System32\\inetsrv\\loghttp.dll"),
    ("UriCacheModule", "%windir%\\System32\\inetsrv\\cachuri.dll"),
    ("FileCacheModule", "%windir%\\System32\\inetsrv\\cachfile.dll"),
    ("TokenCacheModule", "%windir%\\System32\\inetsrv\\cachtokn.dll"),
    ("HttpCacheModule", "%windir%\\System32\\inetsrv\\cachhttp.dll"),
    ("StaticCompressionModule", "%windir%\\System32\\inetsrv\\compstat.dll"),
    ("DefaultDocumentModule", "%windir%\\System32\\inetsrv\\defdoc.dll"),
    ("DirectoryListingModule", "%windir%\\System32\\inetsrv\\dirlist.dll"),
    ("ProtocolSupportModule", "%windir%\\System32\\inetsrv\\protsup.dll"),
    ("StaticFileModule", "%windir%\\System32\\inetsrv\\static.dll"),
    ("AnonymousAuthenticationModule", "%windir%\\System32\\inetsrv\\authanon.dll"),
    ("RequestFilteringModule", "%windir%\\System32\\inetsrv\\modrqflt.dll"),
    ("CustomErrorModule", "%windir%\\System32\\inetsrv\\custerr.dll"),
)

# Schema defaults (IIS_schema.xml) of the attributes this model reads; the rest is refused.
_POOL_SCHEMA: dict[str, str] = {
    "managedRuntimeVersion": "v4.0",
    "managedPipelineMode": "Integrated",
    "startMode": "OnDemand",
    "autoStart": "true",
    "processModel/identityType": "ApplicationPoolIdentity",
    "processModel/userName": "",
    "processModel/password": "",
    "processModel/idleTimeout": "00:20:00",
    "processModel/loadUserProfile": "false",
    "processModel/shutdownTimeLimit": "00:01:30",
    # IIS_schema.xml: <attribute name="manualGroupMembership" type="bool" defaultValue="false" />
    "processModel/manualGroupMembership": "false",
    "recycling/periodicRestart/time": "1.05:00:00",
}
_IDENTITY_TYPES = ("ApplicationPoolIdentity", "NetworkService", "LocalSystem", "LocalService", "SpecificUser")
_ENUMS = {
    "managedPipelineMode": ("Integrated", "Classic"),
    "startMode": ("OnDemand", "AlwaysRunning"),
    "processModel/identityType": _IDENTITY_TYPES,
}

# --- errors, with the messages Windows gives ------------------------------------------------------


class IisError(Exception):
    """An exception Microsoft.Web.Administration / the configuration system raises (message as on Windows).

    ``dotnet_type`` and ``hresult`` are what a script can rely on; the message is translated on a
    localized Windows, so no model decision may depend on it."""

    dotnet_type = "System.Runtime.InteropServices.COMException"
    hresult = 0x80004005


class ConfigChangedOnDisk(IisError):
    """System.IO.FileLoadException from ServerManager.CommitChanges after another writer committed
    (microsoft/IIS.Administration#324 shows the type and message)."""

    dotnet_type = "System.IO.FileLoadException"

    def __init__(self) -> None:
        super().__init__(
            f"Filename: \\\\?\\{CONFIG_PATH}\r\nError: Cannot commit configuration changes because the file has "
            "changed on disk\r\n\r\n"
        )


class DuplicateEntry(IisError):
    """COMException 0x800700B7 of a collection add with an existing unique key."""

    def __init__(self, kind: str, keys: str, values: str) -> None:
        super().__init__(
            f"Cannot add duplicate collection entry of type '{kind}' with unique key attribute '{keys}' "
            f"set to '{values}'"
        )


class LogonSessionMissing(IisError):
    """What HTTP.sys returns (ERROR_NO_SUCH_LOGON_SESSION) for a certificate that is not in the store."""

    def __init__(self) -> None:
        super().__init__(
            "A specified logon session does not exist. It may already have been terminated. "
            "(Exception from HRESULT: 0x80070520)"
        )


class EndpointInUse(IisError):
    """Starting a site whose binding another started site holds (HTTP.sys URL reservation)."""

    hresult = 0x80070020

    def __init__(self) -> None:
        super().__init__(
            "The process cannot access the file because it is being used by another process. "
            "(Exception from HRESULT: 0x80070020)"
        )


class UndefinedSslFlags(IisError):
    """PowerShell's ``[Microsoft.Web.Administration.SslFlags]<int>`` cast of an integer with a bit the enum does
    not define. The enum defines None=0, Sni=1, CentralCertStore=2 (learn.microsoft.com, "SslFlags Enum"); Server
    2022's schema adds DisableHTTP2, DisableOCSPStp, DisableQUIC, DisableTLS13, DisableLegacyTLS
    (dsccommunity/WebAdministrationDsc#627). For a [Flags] enum, LanguagePrimitives'
    EnumSingleTypeConverter.ThrowForUndefinedEnum throws on any bit outside the defined ones
    (PowerShell/PowerShell src/System.Management.Automation/engine/LanguagePrimitives.cs)."""

    dotnet_type = "System.Management.Automation.PSInvalidCastException"

    def __init__(self, value: int) -> None:
        super().__init__(
            f'Cannot convert value "{value}" to type "Microsoft.Web.Administration.SslFlags". Error: "Invalid '
            f"conversion: the integer {value} has bits that are not defined by the enumeration "
            '(UndefinedIntegerToEnum)."'
        )


SSL_FLAGS_DEFINED = 0b11  # SslFlags.Sni | SslFlags.CentralCertStore


def ssl_flags_enum(value: int) -> int:
    """``[Microsoft.Web.Administration.SslFlags]$value``: refused, as PowerShell refuses it, for undefined bits."""
    if value & ~SSL_FLAGS_DEFINED:
        raise UndefinedSslFlags(value)
    return value


class NotYetKnown(IisError):
    """What Site.State and Site.Start() throw while WAS has not yet picked up a site just committed."""

    hresult = 0x800710D8

    def __init__(self) -> None:
        super().__init__(
            "The object identifier does not represent a valid object. (Exception from HRESULT: 0x800710D8)"
        )


class WasNotRunning(IisError):
    """What ApplicationPool.State (and Start() or Stop(), which WAS carries out) throws while the Windows Process
    Activation Service does not run: State is runtime data WAS answers, read as an IAppHostProperty
    (TheFlyingCorpse/check_iis#3's stack: Site.get_State -> ConfigurationElement.GetPropertyValue ->
    IAppHostProperty.get_Value throwing a COMException), and nothing answers then (appcmd lists every pool
    'state:Unknown', microsoft/azure-pipelines-tasks#18901). The HRESULT, ERROR_SERVICE_NOT_ACTIVE 1062 ("The service
    has not been started"), is unverified: the scripts catch any error of a State read (Get-IisObjectState) or of a
    Start() (Start-Agent) and decide on WAS's service status, never on this exception."""

    hresult = 0x80070426

    def __init__(self) -> None:
        super().__init__("The service has not been started. (Exception from HRESULT: 0x80070426)")


# What a State read may throw (Get-IisObjectState catches every error; these are the ones modelled).
STATE_READ_ERRORS = (NotYetKnown, WasNotRunning)


def was_running(state_dir: Path) -> bool:
    """Whether WAS answers: its service Running. (A host set up by ``ensure_installed`` alone, without the feature
    model, has no WAS service: it counts as running, as it always did here.)"""
    service = scm.get(state_dir, "WAS")
    return service is None or service.state == "Running"


def stop_was(state_dir: Path) -> None:
    """``net stop WAS /y`` (an administrator's maintenance): its dependent W3SVC stops first, and WAS stops every
    pool's worker process as it stops (application pools depend on WAS, learn.microsoft.com "IIS Application Pool
    Availability"). net stop returns once WAS is Stopped, and WAS is not Stopped while a worker of its runs: it ends
    each one still draining past its pool's shutdownTimeLimit itself (event 5013, source Microsoft-Windows-WAS, "A
    process serving application pool ... exceeded time limits during shut down": learn.microsoft.com troubleshoot
    "An application pool exceeds time limits during shutdown in IIS", KB 2634635). So a Stopped WAS leaves no worker:
    none is left exiting (review-archive5 W3; the R1 premise of Get-AgentPoolState)."""
    manager = ServerManager(state_dir)
    for name in manager.pool_names():
        if manager.running_since("pools", name) is not None:
            manager.stop_pool(name)
        manager.end_exiting_worker(name)
    for service in ("W3SVC", "WAS"):
        if scm.get(state_dir, service) is not None:
            scm.stop(state_dir, service)


def was_pickup_s(state_dir: Path, knob: str = "iis_was_pickup_ms") -> float:
    """How long WAS takes to learn of a new site after the commit (knob ``iis_was_pickup_ms``, default 0), or
    of a new pool (``iis_was_pool_pickup_ms``: State and Stop() of the pool throw the same 0x800710D8).

    WAS reads applicationHost.config on its change notification; until then the site exists in the
    configuration but Site.State and Site.Start() throw 0x800710D8 (ERROR_OBJECT_NOT_FOUND), as scripts
    that create then start a site see (the retry of WebAdministrationDsc/microsoft.iis after New-Website).
    """
    return float(read_knobs(state_dir).get(knob, 0) or 0) / 1000


class NotInstalled(IisError):
    """Microsoft.Web.Administration.dll is absent until the Web-Server role is installed."""

    def __init__(self) -> None:
        super().__init__(
            "Could not load file or assembly "
            "'file:///C:\\Windows\\system32\\inetsrv\\Microsoft.Web.Administration.dll' "
            "or one of its dependencies. The system cannot find the file specified."
        )


# --- files -----------------------------------------------------------------------------------------


def config_file(state_dir: Path) -> Path:
    return WindowsFs(state_dir).resolve(CONFIG_PATH)


def _sim_file(state_dir: Path, name: str) -> Path:
    return state_dir / "_sim" / name


def _read_json(path: Path, default: Any) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else default


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(temporary, path)


# Locks this thread holds, by lock file: the runtime lock is taken again by the methods it calls.
_HELD = threading.local()


@contextlib.contextmanager
def _locked(state_dir: Path, name: str = "iis_config.lock") -> Iterator[None]:
    """The configuration system writes applicationHost.config under an exclusive lock (``iis_config.lock``);
    WAS keeps its runtime state consistent under its own (``iis_runtime.lock``). Re-entrant per thread; an
    flock on its own open file also excludes the other threads of this process and other processes."""
    lock = _sim_file(state_dir, name)
    key = str(lock)
    held: dict[str, int] = _HELD.__dict__.setdefault("depth", {})
    if held.get(key):
        held[key] += 1
        try:
            yield
        finally:
            held[key] -= 1
        return
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        held[key] = 1
        try:
            yield
        finally:
            held[key] = 0
            fcntl.flock(handle, fcntl.LOCK_UN)


def _runtime_locked(state_dir: Path) -> contextlib.AbstractContextManager[None]:
    """WAS changes one pool's or site's runtime state at a time: every read-modify-write of
    ``iis_runtime.json`` holds this, so parallel operations never lose each other's state."""
    return _locked(state_dir, "iis_runtime.lock")


def script_work_s(state_dir: Path) -> float:
    """``SCRIPT_WORK_S``, or the knob ``iis_script_work_ms`` (0 lets a commit follow its load at once)."""
    value = read_knobs(state_dir).get("iis_script_work_ms")
    return SCRIPT_WORK_S if value is None else float(value) / 1000


# --- registry --------------------------------------------------------------------------------------


def registry(state_dir: Path) -> dict[str, dict[str, Any]]:
    """Registry keys (``HKLM:\\...``) and their values, as the IIS and hosting-bundle installers wrote them."""
    data: dict[str, dict[str, Any]] = _read_json(_sim_file(state_dir, "registry.json"), {})
    return data


def registry_key(state_dir: Path, key: str) -> dict[str, Any] | None:
    for name, values in registry(state_dir).items():
        if name.lower() == key.lower():
            return values
    return None


def registry_subkeys(state_dir: Path, key: str) -> list[str]:
    prefix = key.lower().rstrip("\\") + "\\"
    names = {n[len(prefix) :].split("\\", 1)[0] for n in registry(state_dir) if n.lower().startswith(prefix)}
    return sorted(names)


class RegistryError(Exception):
    """A registry call Windows refuses, with its Win32 error code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


ERROR_CHILD_MUST_BE_VOLATILE = 1021  # "Cannot create a stable subkey under a volatile parent key."


def _volatile_keys(state_dir: Path) -> list[str]:
    keys: list[str] = _read_json(_sim_file(state_dir, "registry_volatile.json"), [])
    return keys


def _under_volatile(state_dir: Path, key: str) -> bool:
    lowered = key.lower()
    return any(lowered.startswith(v.lower() + "\\") for v in _volatile_keys(state_dir))


def set_registry_key(state_dir: Path, key: str, values: dict[str, Any] | None) -> None:
    """Write (or, with None, delete) one registry key with its values, as an installer does. A new key is stable;
    under a volatile key only volatile keys can be created (RegCreateKeyEx, REG_OPTION_VOLATILE)."""
    if values is not None and registry_key(state_dir, key) is None and _under_volatile(state_dir, key):
        message = f"{key}: cannot create a stable subkey under a volatile parent key"
        raise RegistryError(message, ERROR_CHILD_MUST_BE_VOLATILE)
    _set_registry(state_dir, key, values)


def create_volatile_key(state_dir: Path, key: str, values: dict[str, Any]) -> None:
    """RegistryKey.CreateSubKey(name, ReadWriteSubTree, RegistryOptions.Volatile) then SetValue: RegCreateKeyEx with
    REG_OPTION_VOLATILE, "the information is stored in memory and is not preserved when the corresponding registry
    hive is unloaded" (learn.microsoft.com, RegCreateKeyExW), i.e. gone at the next start (clear_volatile_keys).
    A key that exists already is opened as it is ("if the key already exists, this parameter is ignored"); its
    parent must exist here (the scripts create it first, stable)."""
    parent = key.rsplit("\\", 1)[0]
    assert registry_key(state_dir, parent) is not None, f"SIMULATOR: {parent} (the parent) is not modelled as absent"
    if registry_key(state_dir, key) is None:
        volatile = [k for k in _volatile_keys(state_dir) if k.lower() != key.lower()]
        _write_json(_sim_file(state_dir, "registry_volatile.json"), [*volatile, key])
    _set_registry(state_dir, key, {**(registry_key(state_dir, key) or {}), **values})


def delete_registry_tree(state_dir: Path, key: str) -> None:
    """RegistryKey.DeleteSubKeyTree(name, throwOnMissingSubKey: $false): the key and all its subkeys go, stable or
    volatile; nothing happens when it is absent (learn.microsoft.com, RegistryKey.DeleteSubKeyTree)."""
    lowered = key.lower()
    for name in list(registry(state_dir)):
        if name.lower() == lowered or name.lower().startswith(lowered + "\\"):
            _set_registry(state_dir, name, None)
    volatile = _volatile_keys(state_dir)
    kept = [v for v in volatile if v.lower() != lowered and not v.lower().startswith(lowered + "\\")]
    if kept != volatile:
        _write_json(_sim_file(state_dir, "registry_volatile.json"), kept)


def is_volatile_key(state_dir: Path, key: str) -> bool:
    return key.lower() in {k.lower() for k in _volatile_keys(state_dir)}


def clear_volatile_keys(state_dir: Path) -> None:
    """The machine stopped: the hives were unloaded, and every volatile key (with its subkeys, volatile too) is
    gone."""
    volatile = [v.lower() for v in _volatile_keys(state_dir)]

    def gone(key: str) -> bool:
        return any(key.lower() == v or key.lower().startswith(v + "\\") for v in volatile)

    data = {k: v for k, v in registry(state_dir).items() if not gone(k)}
    _write_json(_sim_file(state_dir, "registry.json"), data)
    _write_json(_sim_file(state_dir, "registry_volatile.json"), [])


def _set_registry(state_dir: Path, key: str, values: dict[str, Any] | None) -> None:
    data = {k: v for k, v in registry(state_dir).items() if k.lower() != key.lower()}
    if values is not None:
        data[key] = values
    _write_json(_sim_file(state_dir, "registry.json"), data)


# --- installation (what Install-WindowsFeature Web-Server and the hosting bundle do) ------------------


def is_installed(state_dir: Path) -> bool:
    return config_file(state_dir).is_file()


def _default_pool() -> ET.Element:
    return ET.Element("add", {"name": DEFAULT_POOL})


def _default_site(site_id: int) -> ET.Element:
    site = ET.Element("site", {"name": DEFAULT_SITE, "id": str(site_id)})
    application = ET.SubElement(site, "application", {"path": "/"})
    ET.SubElement(application, "virtualDirectory", {"path": "/", "physicalPath": DEFAULT_SITE_PATH})
    bindings = ET.SubElement(site, "bindings")
    ET.SubElement(bindings, "binding", {"protocol": "http", "bindingInformation": "*:80:"})
    return site


def _default_config() -> ET.ElementTree[ET.Element]:
    root = ET.Element("configuration")
    host = ET.SubElement(root, "system.applicationHost")
    pools = ET.SubElement(host, "applicationPools")
    pools.append(_default_pool())
    defaults = ET.SubElement(pools, "applicationPoolDefaults", {"managedRuntimeVersion": "v4.0"})
    ET.SubElement(
        defaults,
        "processModel",
        {"identityType": "ApplicationPoolIdentity", "loadUserProfile": "true", "setProfileEnvironment": "false"},
    )
    sites = ET.SubElement(host, "sites")
    sites.append(_default_site(1))
    site_defaults = ET.SubElement(sites, "siteDefaults")
    ET.SubElement(site_defaults, "logFile", {"logFormat": "W3C", "directory": "%SystemDrive%\\inetpub\\logs\\LogFiles"})
    ET.SubElement(sites, "applicationDefaults", {"applicationPool": DEFAULT_POOL})
    ET.SubElement(sites, "virtualDirectoryDefaults", {"allowSubDirConfig": "true"})
    web = ET.SubElement(root, "system.webServer")
    modules = ET.SubElement(web, "globalModules")
    for name, image in _DEFAULT_MODULES:
        ET.SubElement(modules, "add", {"name": name, "image": image})
    return ET.ElementTree(root)


def ensure_installed(state_dir: Path) -> None:
    """Install-WindowsFeature Web-Server: the default configuration, wwwroot and InetStp, if not there."""
    fs = WindowsFs(state_dir)
    with _locked(state_dir):
        path = config_file(state_dir)
        if not path.is_file():
            _write_tree(path, _default_config())
            wwwroot = fs.resolve("C:\\inetpub\\wwwroot")
            wwwroot.mkdir(parents=True, exist_ok=True)
            start = wwwroot / "iisstart.htm"
            if not start.exists():
                start.write_text("<!DOCTYPE html><html><head><title>IIS Windows Server</title></head></html>\n")
    if registry_key(state_dir, INETSTP) is None:
        values = {"MajorVersion": 10, "MinorVersion": 0, "InstallPath": "C:\\Windows\\system32\\inetsrv"}
        _set_registry(state_dir, INETSTP, values)
    # IIS setup puts IIS_IUSRS in "Log on as a batch job", the logon WAS makes for a pool's identity
    # (learn.microsoft.com "Understanding Built-In User and Group Accounts in IIS"; serverfault.com/questions/949257).
    lsa.grant_right(state_dir, accounts.IIS_IUSRS, lsa.BATCH_LOGON_RIGHT)
    with _runtime_locked(state_dir):
        runtime = _runtime(state_dir)
        runtime["pools"].setdefault(DEFAULT_POOL, {"state": "Started"})
        runtime["sites"].setdefault(DEFAULT_SITE, {"state": "Started"})
        _save_runtime(state_dir, runtime)


def ensure_removed(state_dir: Path) -> None:
    """Uninstall-WindowsFeature Web-Server: the configuration (and every module in it) and InetStp go.

    Content (inetpub) and HTTP.sys certificate bindings stay, as on Windows.
    """
    with _locked(state_dir):
        config_file(state_dir).unlink(missing_ok=True)
    _sim_file(state_dir, "iis_runtime.json").unlink(missing_ok=True)
    _set_registry(state_dir, INETSTP, None)


def install_hosting_bundle(state_dir: Path, version: str) -> None:
    """The .NET Hosting Bundle installer: the ASP.NET Core shared framework, and AspNetCoreModuleV2 only if
    IIS is installed at that moment (the manual's failure mode: bundle first, IIS after, module missing)."""
    parts = version.split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"SIMULATOR: a hosting bundle version looks like 8.0.11, not {version!r}")
    full = ".".join(parts + ["0"] * (3 - len(parts)))
    key = f"{ASPNETCORE_SHARED_FRAMEWORK}\\v{parts[0]}.{parts[1]}\\{full}"
    _set_registry(state_dir, key, {"Version": f"{full}.0"})
    register_netcore_runtime(state_dir, full)  # the bundle carries the .NET runtime of the same version
    if is_installed(state_dir):
        add_global_module(state_dir, ASPNETCORE_MODULE, ASPNETCORE_MODULE_IMAGE)


def register_netcore_runtime(state_dir: Path, version: str) -> None:
    """The .NET runtime's installer (alone, or inside the hosting bundle) records its version."""
    values = dict(registry_key(state_dir, NETCORE_APP_VERSIONS) or {})
    values[version] = 1
    _set_registry(state_dir, NETCORE_APP_VERSIONS, values)


def add_global_module(state_dir: Path, name: str, image: str) -> None:
    """An installer registers a native module in system.webServer/globalModules (once)."""
    with _locked(state_dir):
        path = config_file(state_dir)
        tree = ET.parse(path)
        modules = _section(tree.getroot(), "system.webServer/globalModules")
        if not any(m.get("name", "").lower() == name.lower() for m in modules.findall("add")):
            ET.SubElement(modules, "add", {"name": name, "image": image})
            _write_tree(path, tree)


def remove_global_module(state_dir: Path, name: str) -> None:
    """Out of band: a global module disappears from applicationHost.config (tests, admin CLI)."""
    with _locked(state_dir):
        path = config_file(state_dir)
        tree = ET.parse(path)
        modules = _section(tree.getroot(), "system.webServer/globalModules")
        for module in modules.findall("add"):
            if module.get("name", "").lower() == name.lower():
                modules.remove(module)
        _write_tree(path, tree)


def _write_tree(path: Path, tree: ET.ElementTree[ET.Element]) -> None:
    ET.indent(tree, space="    ")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    tree.write(temporary, encoding="UTF-8", xml_declaration=True)
    os.replace(temporary, path)


def _section(root: ET.Element, path: str) -> ET.Element:
    element = root.find(path)
    if element is None:
        raise IisError(f"SIMULATOR: applicationHost.config has no <{path}> section; the file is not IIS's")
    return element


# --- runtime state (WAS) ---------------------------------------------------------------------------


def _runtime(state_dir: Path) -> dict[str, dict[str, dict[str, Any]]]:
    data: dict[str, dict[str, dict[str, Any]]] = _read_json(_sim_file(state_dir, "iis_runtime.json"), {})
    data.setdefault("pools", {})
    data.setdefault("sites", {})
    return data


def _save_runtime(state_dir: Path, data: dict[str, dict[str, dict[str, Any]]]) -> None:
    _write_json(_sim_file(state_dir, "iis_runtime.json"), data)


def _lookup(entries: dict[str, dict[str, Any]], name: str) -> dict[str, Any] | None:
    for key, value in entries.items():
        if key.lower() == name.lower():
            return value
    return None


# --- passwords: stored as IIS stores them, never in plain text ----------------------------------------

_ENC_PREFIX = "[enc:IISWASOnlyCngProvider:"
_ENC_SUFFIX = ":enc]"


def _host_key(state_dir: Path) -> bytes:
    path = _sim_file(state_dir, "iis_key.bin")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(32))
    return path.read_bytes()


def _keystream(key: bytes, nonce: bytes, length: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(key + nonce + counter.to_bytes(4, "big")).digest()
        counter += 1
    return out[:length]


def encrypt_password(state_dir: Path, password: str) -> str:
    """An opaque ``[enc:IISWASOnlyCngProvider:...:enc]`` value (a simulator cipher, not the real CNG one)."""
    if not password:
        return ""
    nonce = os.urandom(16)
    data = password.encode("utf-8")
    body = bytes(a ^ b for a, b in zip(data, _keystream(_host_key(state_dir), nonce, len(data)), strict=True))
    return _ENC_PREFIX + base64.b64encode(nonce + body).decode("ascii") + _ENC_SUFFIX


def decrypt_password(state_dir: Path, stored: str) -> str:
    """What the configuration system hands an administrator: the decrypted value."""
    if not stored:
        return ""
    if not (stored.startswith(_ENC_PREFIX) and stored.endswith(_ENC_SUFFIX)):
        return stored  # IIS reads a plain-text attribute as it is (written by hand)
    raw = base64.b64decode(stored[len(_ENC_PREFIX) : -len(_ENC_SUFFIX)])
    nonce, body = raw[:16], raw[16:]
    return bytes(a ^ b for a, b in zip(body, _keystream(_host_key(state_dir), nonce, len(body)), strict=True)).decode()


# --- bindings ---------------------------------------------------------------------------------------


HTTP_PROTOCOLS = ("http", "https")
# What WCF non-HTTP activation (the NET-WCF-*-Activation45 features) adds to the Default Web Site, in
# the bindingInformation formats WAS uses for them (learn.microsoft.com "Configuring WAS for use with
# WCF": net.tcp '808:*', net.pipe '*', net.msmq and msmq.formatname 'localhost').
WCF_ACTIVATION_BINDINGS = (
    ("net.tcp", "808:*"),
    ("net.pipe", "*"),
    ("net.msmq", "localhost"),
    ("msmq.formatname", "localhost"),
)


@dataclass(frozen=True)
class Binding:
    protocol: str
    binding_information: str  # "<ip or *>:<port>:<host header>", IPv6 in brackets
    ssl_flags: int = 0

    @property
    def is_http(self) -> bool:
        return self.protocol in HTTP_PROTOCOLS

    @property
    def endpoint(self) -> tuple[str, int, str]:
        if not self.is_http:
            # A script that parses these as '<ip>:<port>:<host>' fails on Windows ([int]'*', $null.Split):
            # the model refuses to guess an endpoint too.
            raise IisError(
                f"SIMULATOR: a {self.protocol} binding ('{self.binding_information}') has no HTTP.sys endpoint; "
                "only http and https bindingInformation is '<ip>:<port>:<host>'"
            )
        ip, port, host = split_binding_information(self.binding_information)
        return ip, port, host

    def sslcert_key(self) -> str:
        """HTTP.sys keys SNI bindings by host name and port, others by IP and port (0.0.0.0 for all)."""
        ip, port, host = self.endpoint
        if self.ssl_flags & 1:
            return f"{host}:{port}"
        address = "0.0.0.0" if ip == "*" else ip
        return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def split_binding_information(value: str) -> tuple[str, int, str]:
    if value.startswith("["):
        closing = value.index("]")
        ip, rest = value[1:closing], value[closing + 2 :]
    else:
        ip, rest = value.split(":", 1)
    port_text, host = rest.split(":", 1)
    return ip, int(port_text), host


def binding_information(ip: str, port: int, host: str) -> str:
    if ip != "*" and isinstance(ipaddress.ip_address(ip), ipaddress.IPv6Address):
        ip = f"[{ip}]"
    return f"{ip}:{port}:{host}"


def sites_conflict(a: Binding, b: Binding) -> bool:
    """Two bindings HTTP.sys cannot both serve: same address, port and host header.

    The protocol does not matter: one address and port is either TLS or plain in HTTP.sys. A specific
    address and ``*`` on the same port do not clash: IIS registers ``*`` as a weak wildcard, and HTTP.sys
    routes a request to the most specific registration (learn.microsoft.com, "UrlPrefix Strings":
    weak wildcard '*' is matched last), so ``*:80:`` and ``10.0.0.5:80:`` on two sites both start.
    Non-HTTP bindings (net.tcp, net.pipe, msmq) are not HTTP.sys's and never clash here.
    """
    if not (a.is_http and b.is_http):
        return False
    ip_a, port_a, host_a = a.endpoint
    ip_b, port_b, host_b = b.endpoint
    return ip_a.lower() == ip_b.lower() and port_a == port_b and host_a.lower() == host_b.lower()


def sslcerts(state_dir: Path) -> dict[str, dict[str, str]]:
    """HTTP.sys certificate bindings: ``ip:port`` or ``host:port`` -> certificate hash and store."""
    data: dict[str, dict[str, str]] = _read_json(_sim_file(state_dir, "http_sslcert.json"), {})
    return data


def certificate_in_store(state_dir: Path, thumbprint: str, store: str, *, with_private_key: bool = False) -> bool:
    """The Certificate model's store: ``_sim/certstore/LocalMachine/<store>/<THUMBPRINT>.json``;
    ``with_private_key``: and X509Certificate2.HasPrivateKey (the entry's ``has_private_key``)."""
    folder = state_dir / "_sim" / "certstore" / "LocalMachine"
    if not folder.is_dir():
        return False
    for entry in folder.iterdir():
        if entry.name.lower() == store.lower():
            path = entry / f"{thumbprint.upper()}.json"
            if not path.is_file():
                return False
            return not with_private_key or json.loads(path.read_text(encoding="utf-8")).get("has_private_key") is True
    return False


# --- ServerManager ------------------------------------------------------------------------------------


class ServerManager:
    """Microsoft.Web.Administration.ServerManager over the simulated applicationHost.config."""

    def __init__(self, state_dir: Path, *, load_latency_s: float = LOAD_LATENCY_S) -> None:
        self.state_dir = state_dir
        if not config_file(state_dir).is_file():
            raise NotInstalled()
        self._load_latency_s = load_latency_s
        self._root: ET.Element | None = None
        self._digest = ""
        self._loaded_at = 0.0
        self._sslcert_changes: dict[str, dict[str, str] | None] = {}
        self._pool_starts: list[str] = []

    @property
    def root(self) -> ET.Element:
        """The configuration as this manager read it. ServerManager reads applicationHost.config when the
        first section is accessed (``ApplicationPools``, ``Sites``), not when it is constructed, and keeps
        that copy until it is disposed: what another writer commits afterwards, it never sees."""
        if self._root is None:
            path = config_file(self.state_dir)
            if not path.is_file():
                raise NotInstalled()
            data = path.read_bytes()
            self._digest = hashlib.sha256(data).hexdigest()
            self._root = ET.fromstring(data)
            self._loaded_at = time.monotonic()
            time.sleep(self._load_latency_s)
        return self._root

    # -- application pools --

    @property
    def _pools(self) -> ET.Element:
        return _section(self.root, "system.applicationHost/applicationPools")

    def pool_names(self) -> list[str]:
        return [p.get("name", "") for p in self._pools.findall("add")]

    def find_pool(self, name: str) -> ET.Element | None:
        # Collection lookups of the configuration system ignore case, as Windows names do.
        for pool in self._pools.findall("add"):
            if pool.get("name", "").lower() == name.lower():
                return pool
        return None

    def add_pool(self, name: str) -> ET.Element:
        if self.find_pool(name) is not None:
            raise DuplicateEntry("add", "name", name)
        pool = ET.Element("add", {"name": name})
        defaults = self._pools.find("applicationPoolDefaults")
        index = list(self._pools).index(defaults) if defaults is not None else len(self._pools)
        self._pools.insert(index, pool)
        self._pool_starts.append(name)
        return pool

    def remove_pool(self, name: str) -> None:
        """The configuration system has no referential integrity: applications keep naming the pool."""
        pool = self.find_pool(name)
        if pool is not None:
            self._pools.remove(pool)

    def pool_default_value(self, path: str) -> str:
        """``ApplicationPoolDefaults.<path>``: applicationPoolDefaults' value, else the schema default."""
        return self.pool_value(ET.Element("add"), path)

    def pool_value(self, pool: ET.Element, path: str) -> str:
        if path not in _POOL_SCHEMA:
            raise IisError(f"SIMULATOR: the IIS model does not know pool attribute '{path}'")
        *elements, attribute = path.split("/")
        candidates = [pool]
        defaults = self._pools.find("applicationPoolDefaults")
        if defaults is not None:
            candidates.append(defaults)
        for candidate in candidates:
            element: ET.Element | None = candidate
            for name in elements:
                element = element.find(name) if element is not None else None
            if element is not None and attribute in element.attrib:
                return element.attrib[attribute]
        return _POOL_SCHEMA[path]

    def set_pool_value(self, pool: ET.Element, path: str, value: str) -> None:
        if path not in _POOL_SCHEMA:
            raise IisError(f"SIMULATOR: the IIS model does not know pool attribute '{path}'")
        allowed = _ENUMS.get(path)
        if allowed is not None and value not in allowed:
            raise IisError(f"The enumeration value must be one of the following: {', '.join(allowed)}.")
        *elements, attribute = path.split("/")
        element = pool
        for name in elements:
            child = element.find(name)
            element = child if child is not None else ET.SubElement(element, name)
        if attribute == "password":
            value = encrypt_password(self.state_dir, value)
        element.set(attribute, value)

    def pool_password(self, pool: ET.Element) -> str:
        return decrypt_password(self.state_dir, self.pool_value(pool, "processModel/password"))

    def applications_of_pool(self, name: str) -> list[str]:
        """``<site>/<path>`` of every application that runs in the pool (explicitly or by default)."""
        default = self._sites.find("applicationDefaults")
        default_pool = default.get("applicationPool", DEFAULT_POOL) if default is not None else DEFAULT_POOL
        found = []
        for site in self._sites.findall("site"):
            for application in site.findall("application"):
                if application.get("applicationPool", default_pool).lower() == name.lower():
                    found.append(f"{site.get('name')}{application.get('path')}")
        return found

    # -- sites --

    @property
    def _sites(self) -> ET.Element:
        return _section(self.root, "system.applicationHost/sites")

    def site_names(self) -> list[str]:
        return [s.get("name", "") for s in self._sites.findall("site")]

    def find_site(self, name: str) -> ET.Element | None:
        for site in self._sites.findall("site"):
            if site.get("name", "").lower() == name.lower():
                return site
        return None

    def add_site(self, name: str, physical_path: str, site_id: int | None = None) -> ET.Element:
        """ServerManager.Sites.Add: the next free id, a root application and virtual directory."""
        if self.find_site(name) is not None:
            raise DuplicateEntry("site", "name", name)
        used = {int(s.get("id", "0")) for s in self._sites.findall("site")}
        if site_id is None or site_id in used:
            site_id = max(used, default=0) + 1
        site = ET.Element("site", {"name": name, "id": str(site_id)})
        application = ET.SubElement(site, "application", {"path": "/"})
        ET.SubElement(application, "virtualDirectory", {"path": "/", "physicalPath": physical_path})
        ET.SubElement(site, "bindings")
        index = len(self._sites.findall("site"))
        self._sites.insert(index, site)
        return site

    def remove_site(self, name: str) -> None:
        """Sites.Remove changes only the configuration: HTTP.sys certificate bindings of the site's https
        bindings stay (netsh http show sslcert), unless each binding was removed first with
        ``remove_binding(..., remove_config_only=False)``."""
        site = self.find_site(name)
        if site is None:
            return
        self._sites.remove(site)

    @staticmethod
    def root_application(site: ET.Element) -> ET.Element:
        for application in site.findall("application"):
            if application.get("path") == "/":
                return application
        raise IisError(f"SIMULATOR: site '{site.get('name')}' has no root application; the model does not know it")

    def root_directory(self, site: ET.Element) -> ET.Element:
        for directory in self.root_application(site).findall("virtualDirectory"):
            if directory.get("path") == "/":
                return directory
        raise IisError(f"SIMULATOR: site '{site.get('name')}' has no root virtual directory")

    def application_pool_of(self, site: ET.Element) -> str:
        default = self._sites.find("applicationDefaults")
        fallback = default.get("applicationPool", DEFAULT_POOL) if default is not None else DEFAULT_POOL
        return self.root_application(site).get("applicationPool", fallback)

    def bindings(self, site: ET.Element) -> list[Binding]:
        element = site.find("bindings")
        if element is None:
            return []
        return [
            Binding(b.get("protocol", ""), b.get("bindingInformation", ""), _ssl_flags(b.get("sslFlags", "None")))
            for b in element.findall("binding")
        ]

    def add_binding(
        self, site: ET.Element, binding: Binding, certificate_hash: str | None = None, store: str | None = None
    ) -> None:
        element = site.find("bindings")
        if element is None:
            element = ET.SubElement(site, "bindings")
        for existing in element.findall("binding"):
            if (existing.get("protocol"), existing.get("bindingInformation")) == (
                binding.protocol,
                binding.binding_information,
            ):
                pair = f"{binding.protocol}, {binding.binding_information}"
                raise DuplicateEntry("binding", "protocol, bindingInformation", pair)
        attributes = {"protocol": binding.protocol, "bindingInformation": binding.binding_information}
        if binding.ssl_flags:
            attributes["sslFlags"] = "Sni" if binding.ssl_flags == 1 else str(binding.ssl_flags)
        ET.SubElement(element, "binding", attributes)
        if binding.protocol == "https" and certificate_hash:
            self._sslcert_changes[binding.sslcert_key()] = {"hash": certificate_hash.upper(), "store": store or "My"}

    def remove_binding(self, site: ET.Element, binding: Binding, remove_config_only: bool | None = None) -> None:
        """BindingCollection.Remove.

        ``None`` is ``Remove(binding)``, the collection's inherited Remove, and ``True`` is
        ``Remove(binding, removeConfigOnly: true)``: the element goes, HTTP.sys's certificate binding stays
        (a stale ``netsh http show sslcert`` entry). ``False`` also deletes that entry, whoever else uses it:
        a ``0.0.0.0:443`` entry is shared by every non-SNI https binding on port 443 (the behaviour of
        Remove-IISSiteBinding without -RemoveConfigOnly, learn.microsoft.com; the BindingCollection API
        as mirrored by jexuswebserver/JexusManager).
        """
        element = site.find("bindings")
        if element is None:
            return
        for existing in element.findall("binding"):
            if (existing.get("protocol"), existing.get("bindingInformation")) == (
                binding.protocol,
                binding.binding_information,
            ):
                element.remove(existing)
                if binding.protocol == "https" and remove_config_only is False:
                    self._sslcert_changes[binding.sslcert_key()] = None

    def sslcert_shared(self, site: ET.Element, binding: Binding) -> bool:
        """Whether another https binding (of any site) uses the HTTP.sys entry of ``binding``."""
        if binding.protocol != "https":
            return False
        key = binding.sslcert_key().lower()
        for other_site in self._sites.findall("site"):
            for other in self.bindings(other_site):
                if other_site is site and (other.protocol, other.binding_information) == (
                    binding.protocol,
                    binding.binding_information,
                ):
                    continue
                if other.protocol == "https" and other.sslcert_key().lower() == key:
                    return True
        return False

    def certificate_of(self, binding: Binding) -> dict[str, str] | None:
        """Binding.CertificateHash / CertificateStoreName: read from HTTP.sys, not from the file."""
        if binding.protocol != "https":
            return None
        key = binding.sslcert_key()
        if key in self._sslcert_changes:
            return self._sslcert_changes[key]
        return _lookup(sslcerts(self.state_dir), key)

    def sites_using_endpoint(self, binding: Binding, exclude: str) -> list[str]:
        users = []
        for site in self._sites.findall("site"):
            if site.get("name", "").lower() == exclude.lower():
                continue
            if any(sites_conflict(binding, other) for other in self.bindings(site)):
                users.append(site.get("name", ""))
        return users

    # -- global modules --

    def global_modules(self) -> list[str]:
        return [m.get("name", "") for m in _section(self.root, "system.webServer/globalModules").findall("add")]

    # -- commit --

    def commit(self) -> None:
        """CommitChanges: fails if the file changed since this manager read it; applies HTTP.sys bindings.

        The stale check compares the file on disk at commit with the bytes this manager loaded. Microsoft does
        not document how the configuration system (IAppHostWritableAdminManager::CommitChanges, ahadmin)
        detects the change; its error says what it checks, "Cannot commit configuration changes because the
        file has changed on disk", and every reported case is another writer's commit between this manager's
        load and its commit (microsoft/IIS.Administration#324: two API calls changing pools;
        webprofusion/certify#154 and win-acme/win-acme#601: several bindings updated at once). A commit that
        rewrote identical bytes would pass here; no writer of this project commits without a change.
        """
        root = self.root
        # The script's work between the load and this call (SCRIPT_WORK_S): the window another writer's commit
        # must fall into to make this one stale.
        remaining = self._loaded_at + script_work_s(self.state_dir) - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)
        with _locked(self.state_dir):
            path = config_file(self.state_dir)
            current = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
            if current != self._digest:
                raise ConfigChangedOnDisk()
            certs = sslcerts(self.state_dir)
            for value in self._sslcert_changes.values():
                if value is not None and not certificate_in_store(self.state_dir, value["hash"], value["store"]):
                    raise LogonSessionMissing()
            for key, value in self._sslcert_changes.items():
                certs = {k: v for k, v in certs.items() if k.lower() != key.lower()}
                if value is not None:
                    certs[key] = value
            tree: ET.ElementTree[ET.Element] = ET.ElementTree(root)
            _write_tree(path, tree)
            self._digest = hashlib.sha256(path.read_bytes()).hexdigest()
            self._loaded_at = time.monotonic()
            _write_json(_sim_file(self.state_dir, "http_sslcert.json"), certs)
            self._sslcert_changes = {}
        _was_picks_up(self.state_dir)

    def _sync_runtime(self) -> None:
        """WAS reads the new configuration: new pools and sites with autoStart start, removed ones go."""
        if not was_running(self.state_dir):
            # CommitChanges writes applicationHost.config through the configuration system, not through WAS: the
            # file is written all the same, and WAS reads it when it starts (a reboot: devhost.power), so the commit
            # must not fail after it took effect (review-archive6 V2).
            return
        runtime = _runtime(self.state_dir)
        pickup = was_pickup_s(self.state_dir)
        pool_pickup = was_pickup_s(self.state_dir, "iis_was_pool_pickup_ms")
        pools = self.pool_names()
        runtime["pools"] = {k: v for k, v in runtime["pools"].items() if k.lower() in {p.lower() for p in pools}}
        _save_runtime(self.state_dir, runtime)
        for name in pools:
            if _lookup(runtime["pools"], name) is None:
                pool = self.find_pool(name)
                assert pool is not None
                if self.pool_value(pool, "autoStart") == "true":
                    self.start_pool(name)
                else:
                    self._set_runtime("pools", name, "Stopped", None)
                if pool_pickup > 0:
                    # As for sites below: until WAS has read the new pool, ApplicationPool.State and Stop()
                    # throw 0x800710D8 (the same WAS object lookup; Get-IisObjectState's comment in _iis.ps1).
                    runtime = _runtime(self.state_dir)
                    runtime["pools"][name] = {**runtime["pools"][name], "known_at": time.time() + pool_pickup}
                    _save_runtime(self.state_dir, runtime)
        sites = self.site_names()
        runtime = _runtime(self.state_dir)
        runtime["sites"] = {k: v for k, v in runtime["sites"].items() if k.lower() in {s.lower() for s in sites}}
        _save_runtime(self.state_dir, runtime)
        for name in sites:
            if _lookup(runtime["sites"], name) is None:
                site = self.find_site(name)
                assert site is not None
                if pickup > 0:
                    runtime = _runtime(self.state_dir)
                    runtime["sites"][name] = {"state": "Stopped", "known_at": time.time() + pickup}
                    _save_runtime(self.state_dir, runtime)
                elif site.get("serverAutoStart", "true") == "true":
                    try:
                        self.start_site(name)
                    except EndpointInUse:
                        self._set_runtime("sites", name, "Stopped", str(EndpointInUse()))
                else:
                    self._set_runtime("sites", name, "Stopped", None)

    # -- runtime (ApplicationPool.Start/Stop/State, Site.Start/Stop/State) --

    def _set_runtime(
        self, kind: str, name: str, state: str, error: str | None, extra: dict[str, Any] | None = None
    ) -> None:
        with _runtime_locked(self.state_dir):
            self._set_runtime_unlocked(kind, name, state, error, extra)

    def _set_runtime_unlocked(
        self, kind: str, name: str, state: str, error: str | None, extra: dict[str, Any] | None
    ) -> None:
        runtime = _runtime(self.state_dir)
        previous = _lookup(runtime[kind], name) or {}
        entries = {k: v for k, v in runtime[kind].items() if k.lower() != name.lower()}
        # ``since``: when it entered this state (a started pool's worker loads the app's images then; see
        # devhost.fileops); a Start of what already runs changes nothing.
        since = previous.get("since") if previous.get("state") == state and "since" in previous else time.time()
        # (An exiting worker outlives the pool's next start: it is another w3wp.exe.)
        exiting = {"exiting_worker": previous["exiting_worker"]} if "exiting_worker" in previous else {}
        entries[name] = {
            "state": state,
            "since": since,
            **({"last_error": error} if error else {}),
            **exiting,
            **(extra or {}),
        }
        runtime[kind] = entries
        _save_runtime(self.state_dir, runtime)

    def _pool_known(self, name: str) -> None:
        """Raise NotYetKnown while WAS has not read a pool just committed (knob ``iis_was_pickup_ms``)."""
        entry = _lookup(_runtime(self.state_dir)["pools"], name)
        if entry is not None and "known_at" in entry and time.time() < float(entry["known_at"]):
            raise NotYetKnown()

    def pool_state(self, name: str) -> str:
        if not was_running(self.state_dir):
            raise WasNotRunning()
        self._pool_known(name)
        entry = _lookup(_runtime(self.state_dir)["pools"], name)
        return str(entry["state"]) if entry else "Stopped"

    def start_pool(self, name: str) -> str:
        """WAS starts the pool; an identity that cannot log on leaves it Stopped (event 5021/5057)."""
        pool = self.find_pool(name)
        if pool is None:
            raise IisError(
                "The object identifier does not represent a valid object. (Exception from HRESULT: 0x800710D8)"
            )
        # WAS carries out the start: without it nothing starts, and the error comes before any state changes
        # (review-archive5 W2: the pool was marked Started, then the State read after it threw).
        if not was_running(self.state_dir):
            raise WasNotRunning()
        error = self._logon_error(pool)
        self._set_runtime("pools", name, "Stopped" if error else "Started", error)
        return self.pool_state(name)

    def begin_start_pool(self, name: str, unknown_for_s: float = 0) -> None:
        """WAS has begun starting the pool and not finished yet (ObjectState Starting, learn.microsoft.com
        Microsoft.Web.Administration.ObjectState); start_pool finishes it. ``unknown_for_s``: WAS coming up (after a
        reboot) answers State for the pool only that much later, throwing 0x800710D8 until then as for a pool just
        committed (``_pool_known``): a script reads Unknown first, then Starting (review-archive4 R2)."""
        extra = {"known_at": time.time() + unknown_for_s} if unknown_for_s > 0 else None
        self._set_runtime("pools", name, "Starting", None, extra)

    def stop_pool(self, name: str) -> str:
        """WAS reports the pool Stopped at once, but its worker process (w3wp.exe) may take up to the pool's
        processModel/shutdownTimeLimit (90 s by default) to finish its requests and exit, and keeps its images
        mapped until then (learn.microsoft.com, "Process Model Settings for an Application Pool
        <processModel>": shutdownTimeLimit). ``exiting_worker``: when that worker loaded them and when it was stopped;
        devhost.fileops holds them for the knob ``pool_worker_exit_s`` after the stop. Without WAS, which carries out
        the stop, it throws before anything changes (as start_pool)."""
        if not was_running(self.state_dir):
            raise WasNotRunning()
        self._pool_known(name)
        with _runtime_locked(self.state_dir):
            entry = _lookup(_runtime(self.state_dir)["pools"], name) or {}
            running = entry.get("state") == "Started" and "since" in entry
            exiting = {"exiting_worker": [entry["since"], time.time()]} if running else None
            self._set_runtime("pools", name, "Stopped", None, exiting)
        return "Stopped"

    def begin_stop_pool(self, name: str) -> None:
        """Someone else's stop (or an earlier one that gave up at its wait) under way: WAS shows the pool Stopping
        (learn.microsoft.com Microsoft.Web.Administration.ObjectState) while its worker drains its requests, for up
        to processModel/shutdownTimeLimit (learn.microsoft.com applicationPools <processModel>), mapping its images
        meanwhile (``exiting_worker``, as stop_pool); stop_pool finishes it once the worker has exited."""
        with _runtime_locked(self.state_dir):
            entry = _lookup(_runtime(self.state_dir)["pools"], name) or {}
            running = entry.get("state") == "Started" and "since" in entry
            exiting = {"exiting_worker": [entry["since"], time.time()]} if running else None
            self._set_runtime("pools", name, "Stopping", None, exiting)

    def end_exiting_worker(self, name: str) -> None:
        """WAS ends the pool's last stopped worker, still draining (devhost.iis.stop_was): its images are free."""
        with _runtime_locked(self.state_dir):
            runtime = _runtime(self.state_dir)
            entry = _lookup(runtime["pools"], name)
            if entry is not None and entry.pop("exiting_worker", None) is not None:
                _save_runtime(self.state_dir, runtime)

    def exiting_worker_since(self, name: str) -> tuple[float, float] | None:
        """(when the last stopped worker of the pool started, when the pool stopped it)."""
        entry = _lookup(_runtime(self.state_dir)["pools"], name)
        if not entry or "exiting_worker" not in entry:
            return None
        started, stopped = entry["exiting_worker"]
        return float(started), float(stopped)

    def running_since(self, kind: str, name: str) -> float | None:
        """When the pool (``kind="pools"``) or site (``"sites"``) last started, while it is Started."""
        entry = _lookup(_runtime(self.state_dir)[kind], name)
        if not entry or entry.get("state") != "Started":
            return None
        return float(entry.get("since", 0.0))

    def pool_last_error(self, name: str) -> str | None:
        entry = _lookup(_runtime(self.state_dir)["pools"], name)
        return entry.get("last_error") if entry else None

    def _logon_error(self, pool: ET.Element) -> str | None:
        if self.pool_value(pool, "processModel/identityType") != "SpecificUser":
            return None
        user = self.pool_value(pool, "processModel/userName")
        password = self.pool_password(pool)
        invalid = (
            f"The identity of application pool {pool.get('name')} is invalid. The user name or password that is "
            "specified for the identity may be incorrect, or the user may not have batch logon rights."
        )
        try:
            account = accounts.resolve(self.state_dir, user)
        except accounts.IdentityNotMapped:
            return invalid
        if account.kind == "gmsa":
            if password:
                return invalid
        elif (
            account.kind != "user"
            or account.password_sha256 is None
            or hashlib.sha256(password.encode()).hexdigest() != account.password_sha256
        ):
            return invalid
        # WAS logs the identity on as a batch job (processModel logonType LogonBatch, the default) and, unless
        # processModel.manualGroupMembership is true, adds IIS_IUSRS to the token at logon (LogonUserExExW's
        # pTokenGroups; learn.microsoft.com ProcessModelSettings class: "A value of false means that the
        # built-in IIS_IUSRS group membership will be used"), so the right held by the account or by IIS_IUSRS
        # lets it log on; without either LogonUser fails with 1385 and WAS logs 5021/5059 and stops the pool
        # (serverfault.com/questions/949257: "the worker process won't start if the domain account doesn't
        # have this right"). "Deny log on as a batch job" held by the account overrides the grant, with the same
        # 1385 (learn.microsoft.com, "Deny log on as a batch job" security policy setting). Groups of the
        # account are not modelled (accounts.token_sids).
        with_iis_iusrs = self.pool_value(pool, "processModel/manualGroupMembership") != "true"
        if lsa.holds(self.state_dir, account.sid, lsa.DENY_BATCH_LOGON_RIGHT) or not (
            lsa.holds(self.state_dir, account.sid, lsa.BATCH_LOGON_RIGHT)
            or (with_iis_iusrs and lsa.holds(self.state_dir, accounts.IIS_IUSRS, lsa.BATCH_LOGON_RIGHT))
        ):
            # event 5021 (the identity is invalid, ERROR_LOGON_TYPE_NOT_GRANTED 1385), then 5059 (pool disabled)
            return (
                f"{invalid} (1385: Logon failure: the user has not been granted the requested logon type at this "
                f"computer.) Application pool {pool.get('name')} has been disabled."
            )
        return None

    def _picked_up(self, name: str) -> None:
        """Raise NotYetKnown while WAS has not learnt of the site; once it has, start it if it auto-starts."""
        with _runtime_locked(self.state_dir):
            entry = _lookup(_runtime(self.state_dir)["sites"], name)
            if entry is None or "known_at" not in entry:
                return
            if time.time() < float(entry["known_at"]):
                raise NotYetKnown()
            self._set_runtime("sites", name, "Stopped", None)
            site = self.find_site(name)
            if site is not None and site.get("serverAutoStart", "true") == "true":
                try:
                    self.start_site(name)
                except EndpointInUse:
                    self._set_runtime("sites", name, "Stopped", str(EndpointInUse()))

    def site_state(self, name: str) -> str:
        self._picked_up(name)
        entry = _lookup(_runtime(self.state_dir)["sites"], name)
        return str(entry["state"]) if entry else "Stopped"

    def start_site(self, name: str) -> str:
        site = self.find_site(name)
        if site is None:
            raise NotYetKnown()
        with _runtime_locked(self.state_dir):  # HTTP.sys registers one site's URLs at a time
            self._picked_up(name)
            runtime = _runtime(self.state_dir)
            for other in self._sites.findall("site"):
                other_name = other.get("name", "")
                if other_name.lower() == name.lower():
                    continue
                entry = _lookup(runtime["sites"], other_name)
                if entry is None or entry.get("state") != "Started":
                    continue
                if any(sites_conflict(mine, theirs) for mine in self.bindings(site) for theirs in self.bindings(other)):
                    raise EndpointInUse()
            self._set_runtime("sites", name, "Started", None)
        return "Started"

    def stop_site(self, name: str) -> str:
        """Site.Stop() is a call to WAS as Start() is: it throws the same 0x800710D8 while WAS has not picked up
        a site just committed (the object is not known to it yet; see NotYetKnown)."""
        if self.find_site(name) is None:
            raise NotYetKnown()
        with _runtime_locked(self.state_dir):
            self._picked_up(name)
            self._set_runtime("sites", name, "Stopped", None)
        return "Stopped"


def _was_picks_up(state_dir: Path) -> None:
    """WAS acts on its change notification by reading the configuration on disk, not the committing manager's
    copy: two managers that committed one after the other may run this in either order, and the earlier
    copy must not stop (or forget) what only the later one holds."""
    with _runtime_locked(state_dir):
        ServerManager(state_dir, load_latency_s=0)._sync_runtime()


def _ssl_flags(value: str) -> int:
    """sslFlags is a flags attribute: names (``Sni``, ``CentralCertStore``) or a number."""
    if value.isdigit():
        return int(value)
    names = {"none": 0, "sni": 1, "centralcertstore": 2}
    total = 0
    for part in value.split(","):
        key = part.strip().lower()
        if key not in names:
            raise IisError(f"SIMULATOR: the IIS model does not know sslFlags value '{part}'")
        total |= names[key]
    return total


def is_commit_conflict(error: IisError) -> bool:
    """_iis.ps1 Test-IisCommitConflict: by exception type (FileLoadException) or HRESULT 0x80070020
    (sharing violation), never by message text, which a localized Windows translates."""
    return error.dotnet_type == "System.IO.FileLoadException" or error.hresult == 0x80070020


def with_retries(state_dir: Path, change: Callable[[ServerManager], T], attempts: int = 10) -> T:
    """The scripts' Invoke-IisChange: a fresh ServerManager per attempt, retried when the file changed,
    after 100 ms x attempt plus up to 100 ms of jitter (as the script sleeps)."""
    for attempt in range(1, attempts + 1):
        manager = ServerManager(state_dir)
        try:
            return change(manager)
        except IisError as error:
            if not is_commit_conflict(error):
                raise
            _count_conflict(state_dir, attempt, retried=attempt < attempts)
            if attempt == attempts:
                raise
            time.sleep(0.1 * attempt + random.random() * 0.1)
    raise AssertionError("unreachable")


def _count_conflict(state_dir: Path, attempt: int, *, retried: bool) -> None:
    """A stale commit: counted in ``iis_stats.json`` and journalled (``iis_commit_conflict``, with the attempt
    and whether the script tries again), so a test can tell that parallel commits really collided."""
    with _locked(state_dir):
        path = _sim_file(state_dir, "iis_stats.json")
        stats = _read_json(path, {})
        stats["commit_conflicts"] = int(stats.get("commit_conflicts", 0)) + 1
        _write_json(path, stats)
    event = {"kind": "iis_commit_conflict", "attempt": attempt, "retried": retried}
    Journal(sim_dir(state_dir) / "journal.jsonl")(event)


def commit_conflicts(state_dir: Path) -> int:
    return int(_read_json(_sim_file(state_dir, "iis_stats.json"), {}).get("commit_conflicts", 0))


# --- out-of-band changes, as an administrator makes them (devhost admin CLI) ---------------------------


def admin_set_pool_attribute(state_dir: Path, pool: str, path: str, value: str) -> None:
    """E.g. ``admin_set_pool_attribute(d, "MyPool", "processModel/idleTimeout", "00:20:00")``."""
    manager = ServerManager(state_dir)
    element = manager.find_pool(pool)
    if element is None:
        raise KeyError(f"no application pool '{pool}'")
    manager.set_pool_value(element, path, value)
    manager.commit()


def admin_set_pool_default(state_dir: Path, path: str, value: str) -> None:
    """An attribute of applicationPoolDefaults, as appcmd set config /section:applicationPools
    /applicationPoolDefaults.<path>:<value> sets it: every pool that does not set it takes this value."""
    manager = ServerManager(state_dir)
    defaults = manager._pools.find("applicationPoolDefaults")
    if defaults is None:
        raise KeyError("no applicationPoolDefaults")
    manager.set_pool_value(defaults, path, value)
    manager.commit()


def admin_set_state(state_dir: Path, kind: str, name: str, state: str) -> None:
    """Stop or start a pool (``kind="pool"``) or a site (``kind="site"``) by hand, as IIS Manager does."""
    manager = ServerManager(state_dir)
    if kind not in ("pool", "site") or state not in ("Started", "Stopped"):
        raise ValueError("kind is pool or site; state is Started or Stopped")
    if kind == "pool":
        manager.start_pool(name) if state == "Started" else manager.stop_pool(name)
    else:
        manager.start_site(name) if state == "Started" else manager.stop_site(name)


def admin_set_site_physical_path(state_dir: Path, site: str, physical_path: str) -> None:
    manager = ServerManager(state_dir)
    element = manager.find_site(site)
    if element is None:
        raise KeyError(f"no site '{site}'")
    manager.root_directory(element).set("physicalPath", physical_path)
    manager.commit()


def admin_add_binding(state_dir: Path, site: str, protocol: str, information: str) -> None:
    """Add an http binding by hand (IIS Manager, Edit Bindings)."""
    manager = ServerManager(state_dir)
    element = manager.find_site(site)
    if element is None:
        raise KeyError(f"no site '{site}'")
    manager.add_binding(element, Binding(protocol, information))
    manager.commit()


def admin_remove_binding(state_dir: Path, site: str, protocol: str, information: str) -> None:
    """Remove a binding by hand (IIS Manager, Edit Bindings, Remove): the configuration only, HTTP.sys's certificate
    binding stays."""
    manager = ServerManager(state_dir)
    element = manager.find_site(site)
    if element is None:
        raise KeyError(f"no site '{site}'")
    manager.remove_binding(element, Binding(protocol, information), remove_config_only=True)
    manager.commit()


def admin_delete_sslcert(state_dir: Path, key: str) -> bool:
    """``netsh http delete sslcert hostnameport=<host>:<port>`` (or ``ipport=<ip>:<port>``): whether it existed."""
    with _locked(state_dir):
        certs = sslcerts(state_dir)
        kept = {k: v for k, v in certs.items() if k.lower() != key.lower()}
        _write_json(_sim_file(state_dir, "http_sslcert.json"), kept)
    return len(kept) != len(certs)


def admin_bind_sslcert(state_dir: Path, key: str, thumbprint: str, store: str = "My") -> None:
    """``netsh http update sslcert hostnameport=<host>:<port> certhash=<thumbprint> certstorename=<store>``."""
    with _locked(state_dir):
        certs = {k: v for k, v in sslcerts(state_dir).items() if k.lower() != key.lower()}
        certs[key] = {"hash": thumbprint.upper(), "store": store}
        _write_json(_sim_file(state_dir, "http_sslcert.json"), certs)


def _pool_names(state_dir: Path) -> list[str]:
    path = config_file(state_dir)
    if not path.is_file():
        return []
    pools = ET.parse(path).getroot().find("system.applicationHost/applicationPools")
    return [p.get("name", "") for p in pools.findall("add")] if pools is not None else []


# IIS AppPool\<pool> virtual accounts exist exactly while their pool is configured (rid 82).
accounts.register_virtual_domain("IIS APPPOOL", 82, _pool_names)

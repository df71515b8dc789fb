"""SIMULATOR: what a request made on the host itself to its own IIS gets, layer by layer, from the simulated state.

``request(state_dir, address, port, server_name, path)`` models a TCP connection to ``address:port``, a TLS handshake
with ``server_name`` as the SNI name and one GET with it in the Host header. Each layer answers as Windows does:

- **TCP** (HTTP.sys): a port is listened on while a started site has a binding on it (WAS registers a started site's
  URLs; a stopped site's are gone), for ``*`` or the address asked. Otherwise: refused (WSAECONNREFUSED).
  learn.microsoft.com, "Common error troubleshooting for Azure App Service and IIS with ASP.NET Core": "URI
  endpoint wrong or stopped website: ERR_CONNECTION_REFUSED".
- **TLS** (HTTP.sys): the certificate of the ``<host name>:<port>`` binding (SNI), else of ``<ip>:<port>``, else of
  ``0.0.0.0:<port>`` (``netsh http show sslcert``); none, or one whose certificate is no longer in the store: the
  handshake is reset, which .NET Framework's SslStream reports as "Authentication failed because the remote party
  has closed the transport stream."
- **HTTP** (HTTP.sys): the request goes to the started site whose https binding matches host name and port (an
  empty host name matches any); none: ``400 Bad Request - Invalid Hostname``; the site's pool stopped: ``503
  Service Unavailable``; both with ``Server: Microsoft-HTTPAPI/2.0`` (HTTP.sys answers, no worker process runs).
- **IIS** (the worker, as the pool's identity): the physical path missing, or web.config unreadable by the identity:
  ``500.19`` (0x80070003, 0x80070005); web.config naming AspNetCoreModuleV2 while IIS has no such module: ``500.19``
  (0x8007000d; same reference: "ASP.NET Core Module not installed: 500.19"), a root element other than
  ``configuration``: ``500.19`` too; no web.config, or one without the aspNetCore handler: the static file handler,
  ``403.14`` for ``/`` (directory listing is off by default), ``404.0`` otherwise (same reference: "Incorrect website
  physical path or app missing: 403.14"). Detailed error pages, as IIS shows
  them to a request from the machine itself (httpErrors errorMode DetailedLocalOnly by default).
- **ANCM** (in-process, ``processPath="dotnet"``): hostfxr resolves the app (``arguments``) and the framework its
  ``<app>.runtimeconfig.json`` names, rolling forward within the major version (learn.microsoft.com, "Select the
  .NET version to use": default RollForward Minor); the app missing or no such framework installed: ``500.31``
  "Failed to load ASP.NET Core runtime" (dotnet/aspnetcore, AspNetCoreModuleV2 HandlerResolver.cpp: a failure of
  hostfxr_get_native_search_directories is 500.31).
- **the app**: a stand-in for the vendor's, keyed by its file name: ``identitymanager-Agent.dll`` reads
  ``appsettings.agent.json``, ``identitymanager-Server.dll`` reads ``appsettings.json``, and each opens the private
  key of every certificate its settings name by thumbprint in LocalMachine\\My, as the pool's identity (the manual:
  the pool identity needs read access to the private key). A failure at start: ``500.30`` "ASP.NET Core app failed
  to start". Started, the server answers ``/hc`` with the result of its health checks (``Healthy`` unless a test set
  ``Degraded`` or ``Unhealthy`` out of band, see ``admin_set_server_health``; its database is not modelled)
  and every app answers other paths with 200. Any other app file is not modelled (refused).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from devhost import accounts, certstore, iis, ntfs
from devhost.fs import WindowsFs, WindowsPathError

HTTPAPI = "Microsoft-HTTPAPI/2.0"
IIS_SERVER = "Microsoft-IIS/10.0"
REFUSED = "No connection could be made because the target machine actively refused it"
TLS_RESET = "Authentication failed because the remote party has closed the transport stream."
AGENT_APP, SERVER_APP = "identitymanager-agent.dll", "identitymanager-server.dll"


class NotModelled(Exception):
    """A request the simulator does not know how to answer: reported loudly, never guessed."""


@dataclass
class Answer:
    outcome: str  # refused, tls_failed, http
    message: str = ""
    certificate: str | None = None  # thumbprint served
    certificate_subject: str | None = None
    status: int | None = None
    server: str | None = None
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)


def _iis_error(status: str, title: str, detail: str, code: str = "") -> str:
    major = status.split(".")[0]
    return (
        f"<!DOCTYPE html><html><head><title>IIS 10.0 Detailed Error - {status} - {title}</title></head><body>"
        f'<div id="content"><div class="content-container"><h3>HTTP Error {status} - {title}</h3>'
        f'<h4>{detail}</h4></div><div class="content-container"><p>Error Code {code or "0x00000000"}</p>'
        f"<p>Requested URL ... (status {major})</p></div></div></body></html>"
    )


def _ancm_error(status: str, title: str, reason: str) -> str:
    return (
        f'<!DOCTYPE html><html lang="en"><head><title>HTTP Error {status} - {title}</title></head><body>'
        f"<h1>HTTP Error {status} - {title}</h1><h2>Common solutions to this issue:</h2><p>{reason}</p>"
        "<p>For more information visit: https://go.microsoft.com/fwlink/?LinkID=2028265</p></body></html>"
    )


def _httpapi(status: int, title: str, text: str) -> Answer:
    body = (
        f'<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN""http://www.w3.org/TR/html4/strict.dtd">\r\n<HTML><HEAD>'
        f"<TITLE>{title}</TITLE></HEAD><BODY><h2>{title}</h2><hr><p>HTTP Error {status}. {text}</p></BODY></HTML>"
    )
    return Answer("http", status=status, server=HTTPAPI, body=body)


def _site_state(manager: iis.ServerManager, name: str) -> str:
    try:
        return manager.site_state(name)
    except iis.NotYetKnown:
        return "Unknown"


def _worker_account(manager: iis.ServerManager, pool: ET.Element) -> str:
    kind = manager.pool_value(pool, "processModel/identityType")
    if kind == "ApplicationPoolIdentity":
        return f"IIS APPPOOL\\{pool.get('name')}"
    if kind == "SpecificUser":
        return manager.pool_value(pool, "processModel/userName")
    return {"NetworkService": "NT AUTHORITY\\NETWORK SERVICE", "LocalService": "NT AUTHORITY\\LOCAL SERVICE"}.get(
        kind, "NT AUTHORITY\\SYSTEM"
    )


def request(state_dir: Path, address: str, port: int, server_name: str, path: str) -> Answer:
    if not iis.is_installed(state_dir):
        return Answer("refused", message=f"{REFUSED} {address}:{port}")
    manager = iis.ServerManager(state_dir)
    started = [name for name in manager.site_names() if _site_state(manager, name) == "Started"]

    def bindings(site: str, protocol: str | None = None) -> list[iis.Binding]:
        element = manager.find_site(site)
        found = manager.bindings(element) if element is not None else []
        return [b for b in found if b.is_http and (protocol is None or b.protocol == protocol)]

    def on_endpoint(binding: iis.Binding) -> bool:
        ip, bound_port, _host = binding.endpoint
        return bound_port == port and ip.strip("[]").lower() in ("*", address.lower())

    if not any(on_endpoint(b) for site in started for b in bindings(site)):
        return Answer("refused", message=f"{REFUSED} {address}:{port}")

    # TLS: HTTP.sys's certificate binding, SNI first.
    certs = {key.lower(): value for key, value in iis.sslcerts(state_dir).items()}
    entry = certs.get(f"{server_name.lower()}:{port}") or certs.get(f"{address}:{port}") or certs.get(f"0.0.0.0:{port}")
    if entry is None:
        return Answer("tls_failed", message=TLS_RESET)
    stored = certstore.CertStore(state_dir).find("LocalMachine", entry.get("store", "My"), entry["hash"])
    if stored is None:
        return Answer("tls_failed", message=TLS_RESET)
    served = {"certificate": stored.thumbprint.upper(), "certificate_subject": stored.subject}

    # HTTP: the started site whose https binding takes this host name (an exact host name before an empty one).
    site_name = None
    for exact in (True, False):
        for candidate in started:
            for binding in bindings(candidate, "https"):
                host = binding.endpoint[2].lower()
                if on_endpoint(binding) and ((host == server_name.lower()) if exact else host == ""):
                    site_name = site_name or candidate
    if site_name is None:
        answer = _httpapi(400, "Bad Request - Invalid Hostname", "The request hostname is invalid.")
        return _with(answer, served)
    site = manager.find_site(site_name)
    assert site is not None
    pool = manager.find_pool(manager.application_pool_of(site))
    if pool is None or manager.pool_state(pool.get("name", "")) != "Started":
        return _with(_httpapi(503, "Service Unavailable", "The service is unavailable."), served)
    return _with(_worker(state_dir, manager, site, pool, path), served)


def _with(answer: Answer, served: dict[str, str]) -> Answer:
    answer.certificate = served["certificate"]
    answer.certificate_subject = served["certificate_subject"]
    return answer


def _worker(state_dir: Path, manager: iis.ServerManager, site: ET.Element, pool: ET.Element, path: str) -> Answer:
    """What the worker process of ``pool`` answers for ``path`` on ``site``."""
    fs = WindowsFs(state_dir)
    # The one environment variable IIS's own paths use (the Default Web Site's %SystemDrive%\inetpub\wwwroot).
    physical = manager.root_directory(site).get("physicalPath", "").replace("%SystemDrive%", "C:")
    account = _worker_account(manager, pool)
    try:
        sids = accounts.token_sids(state_dir, account)
    except accounts.IdentityNotMapped:
        sids = set()
    store = ntfs.NtfsStore(state_dir)
    try:
        folder = fs.resolve(physical)
    except WindowsPathError:
        folder = None
    if folder is None or not folder.is_dir():
        return _page(500, "500.19", "Internal Server Error", "Cannot read configuration file", "0x80070003")
    config_path = f"{physical}\\web.config"
    if not fs.resolve(config_path).is_file():
        return _static(path)
    if not ntfs.can_read_file(store, config_path, sids):
        return _page(
            500,
            "500.19",
            "Internal Server Error",
            "Cannot read configuration file due to insufficient permissions",
            "0x80070005",
        )
    try:
        config = ET.fromstring(fs.resolve(config_path).read_bytes())
    except ET.ParseError:
        return _page(500, "500.19", "Internal Server Error", "Configuration file is not well-formed XML", "0x8007000d")
    if config.tag != "configuration":
        return _page(500, "500.19", "Internal Server Error", "Configuration file is not well-formed XML", "0x8007000d")
    core = config.find(".//aspNetCore")
    uses_module = any(h.get("modules") == iis.ASPNETCORE_MODULE for h in config.iter("add")) or core is not None
    if uses_module and iis.ASPNETCORE_MODULE.lower() not in {m.lower() for m in manager.global_modules()}:
        return _page(
            500,
            "500.19",
            "Internal Server Error",
            "The requested page cannot be accessed because the related configuration data for the page is invalid.",
            "0x8007000d",
        )
    if core is None:
        return _static(path)  # no ANCM handler: IIS's static file handler serves the folder
    if core.get("processPath") != "dotnet" or core.get("hostingModel", "").lower() != "inprocess":
        raise NotModelled("SIMULATOR: only in-process hosting with processPath 'dotnet' is modelled")
    argument = core.get("arguments", "").strip().replace("/", "\\").removeprefix(".\\")
    app_path = f"{physical}\\{argument}"
    failure = _hostfxr(state_dir, fs, app_path)
    if failure is not None:
        return _ancm(500, "500.31", "Failed to load ASP.NET Core runtime", failure)
    return _app(state_dir, fs, store, sids, physical, app_path, path)


def _static(path: str) -> Answer:
    """The static file handler on the agent's Runtime folder, which holds no default document: directory listing is
    off by default (403.14) and the agent's paths are no files (404.0)."""
    if path == "/":
        return _page(
            403, "403.14", "Forbidden", "The Web server is configured to not list the contents of this directory."
        )
    return _page(404, "404.0", "Not Found", "The resource you are looking for has been removed.", "0x80070002")


def _page(status: int, code: str, title: str, detail: str, error: str = "") -> Answer:
    return Answer("http", status=status, server=IIS_SERVER, body=_iis_error(code, title, detail, error))


def _ancm(status: int, code: str, title: str, reason: str) -> Answer:
    return Answer("http", status=status, server=IIS_SERVER, body=_ancm_error(code, title, reason))


def _hostfxr(state_dir: Path, fs: WindowsFs, app_path: str) -> str | None:
    """hostfxr_get_native_search_directories: None, or what it wrote to stderr."""
    if not fs.resolve(app_path).is_file():
        return f"The application to execute does not exist: '{app_path}'."
    config_path = app_path.rsplit(".", 1)[0] + ".runtimeconfig.json"
    if not fs.resolve(config_path).is_file():
        return f"The library 'hostpolicy.dll' required to execute the application was not found ({config_path})."
    try:
        framework = json.loads(fs.resolve(config_path).read_text(encoding="utf-8"))["runtimeOptions"]["framework"]
        name, version = str(framework["name"]), str(framework["version"])
        wanted = tuple(int(part) for part in version.split(".")[:3])
    except (ValueError, KeyError, TypeError):
        return f"Invalid runtimeconfig.json [{config_path}]"
    if name != "Microsoft.AspNetCore.App":
        raise NotModelled(f"SIMULATOR: an app on framework {name!r} is not modelled (only Microsoft.AspNetCore.App)")
    for text in _installed_aspnetcore(state_dir):
        have = tuple(int(part) for part in text.split(".")[:3])
        if have[0] == wanted[0] and have[1:] >= wanted[1:]:
            return None
    return f"The framework 'Microsoft.AspNetCore.App', version '{version}' (x64) was not found."


def _installed_aspnetcore(state_dir: Path) -> list[str]:
    found = []
    for family in iis.registry_subkeys(state_dir, iis.ASPNETCORE_SHARED_FRAMEWORK):
        found += iis.registry_subkeys(state_dir, f"{iis.ASPNETCORE_SHARED_FRAMEWORK}\\{family}")
    return found


def _app(
    state_dir: Path, fs: WindowsFs, store: ntfs.NtfsStore, sids: set[str], physical: str, app_path: str, path: str
) -> Answer:
    """The stand-in agent or server: its settings and its certificates' private keys, read at start."""
    name = app_path.rsplit("\\", 1)[-1].lower()
    settings_name = {AGENT_APP: "appsettings.agent.json", SERVER_APP: "appsettings.json"}.get(name)
    if settings_name is None:
        raise NotModelled(f"SIMULATOR: the app {name!r} is not modelled (only the agent's and the server's)")
    failed = _ancm(500, "500.30", "ASP.NET Core app failed to start", "The application failed to start")
    settings_path = f"{physical}\\{settings_name}"
    if not fs.resolve(settings_path).is_file() or not ntfs.can_read_file(store, settings_path, sids):
        return failed
    try:
        # Microsoft.Extensions.Configuration.Json parses the file with JsonDocument.Parse(Stream), which skips a
        # UTF-8 byte-order mark and reads nothing but UTF-8 (dotnet/runtime System.Text.Json
        # JsonDocument.Parse.cs, ReadToEnd): a UTF-16 file fails the start.
        raw = fs.resolve(settings_path).read_bytes()
        settings = json.loads(raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8"))
    except ValueError:
        return failed
    thumbprints = [
        str(settings.get(section, {}).get(key) or "")
        for section, key in (("EncryptionCertificate", "Thumbprint"), ("IdentityServer", "X509Thumbprint"))
    ]
    certificates = certstore.CertStore(state_dir)
    for thumbprint in filter(None, thumbprints):
        entry = certificates.find("LocalMachine", "My", thumbprint)
        key = entry.key_path if entry is not None else None
        if key is None or not fs.resolve(key).is_file() or not ntfs.can_read_file(store, key, sids):
            return failed
    if name == SERVER_APP and path.lower() == "/hc":
        health = server_health(state_dir)
        return Answer(
            "http",
            status=HEALTH_STATUS_CODES[health],
            server=IIS_SERVER,
            body=health,
            headers={"Content-Type": "text/plain"},
        )
    return Answer("http", status=200, server=IIS_SERVER, body="Identity Manager (SIMULATOR stand-in)")


# ASP.NET Core's health check middleware: the report's status as plain text, with ResultStatusCodes' defaults
# Healthy 200, Degraded 200, Unhealthy 503 (learn.microsoft.com, "Health checks in ASP.NET Core", "Customize the
# HTTP status code"; dotnet/aspnetcore HealthCheckOptions.cs). Which checks Identity Manager registers (its
# database among them) is not modelled: the result is set by the test, out of band.
HEALTH_STATUS_CODES = {"Healthy": 200, "Degraded": 200, "Unhealthy": 503}
_HEALTH_FILE = "server-health.json"


def server_health(state_dir: Path) -> str:
    """The result of the server's health checks, as ``/hc`` reports it (Healthy unless the test set another)."""
    path = state_dir / _HEALTH_FILE
    return str(json.loads(path.read_text(encoding="utf-8"))["status"]) if path.is_file() else "Healthy"


def admin_set_server_health(state_dir: Path, status: str) -> None:
    """Out of band: the server's health checks now report ``status`` (e.g. its database went away: Unhealthy)."""
    if status not in HEALTH_STATUS_CODES:
        raise ValueError(f"SIMULATOR: health status {status!r} is not one of {sorted(HEALTH_STATUS_CODES)}")
    (state_dir / _HEALTH_FILE).write_text(json.dumps({"status": status}), encoding="utf-8")


def write_stand_in_runtime(state_dir: Path, runtime_path: str, app_file: str, framework: str = "8.0.0") -> None:
    """What extracting the vendor's runtime archive leaves for the stand-in app: ``app_file``
    (identitymanager-Agent.dll, identitymanager-Server.dll, or Usercube-Agent.exe for a service) and, for a dll, its
    runtimeconfig.json naming the framework, as `dotnet publish` writes it."""
    fs = WindowsFs(state_dir)
    target = fs.resolve(f"{runtime_path}\\{app_file}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"MZ simulated agent runtime (SIMULATOR stand-in)")
    if app_file.lower().endswith(".dll"):
        config = {
            "runtimeOptions": {"tfm": "net8.0", "framework": {"name": "Microsoft.AspNetCore.App", "version": framework}}
        }
        fs.resolve(f"{runtime_path}\\{app_file[:-4]}.runtimeconfig.json").write_text(
            json.dumps(config), encoding="utf-8"
        )

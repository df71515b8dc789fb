"""SIMULATOR: model of providers/agent_verification/scripts/get.ps1.

The request goes to devhost.https (what HTTP.sys, IIS, ANCM and the stand-in app answer); what the script then
reads to name the causes comes from devhost.iis (sites, pools, bindings, HTTP.sys certificate bindings, global
modules), the registry, the certificate store, NTFS and the service control manager, read the way the script reads
them (its own access check on key files included, which resolves only the token's well-known groups).
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from typing import Any

from devhost import accounts, certstore, https, iis, ntfs, scm
from devhost.fs import WindowsFs
from devhost.ops.envelope import Envelope, OperationStopped, fail, operation, require_keys, succeed
from devhost.ops.iis_common import not_installed, object_state
from devhost.ps51 import ScriptFact

_KEYS = {
    "hosting", "url", "host_name", "port", "ip_address", "path", "expect_body", "expected_thumbprint", "site_name",
    "pool_name", "service_name", "runtime_path", "app_file", "identity", "key_thumbprints", "runtime_family",
    "wait_seconds", "mode",
}  # fmt: skip
WELL_KNOWN_GROUPS = ("S-1-1-0", "S-1-5-11", "S-1-5-32-545")
IIS_IUSRS = "S-1-5-32-568"
_READS = 0x1 | 0x80000000 | 0x10000000  # FILE_READ_DATA, GENERIC_READ, GENERIC_ALL

_GET = ("agent_verification/get",)
SCRIPT_FACTS = (
    ScriptFact(
        _GET,
        re.escape("$client = New-Object System.Net.Sockets.TcpClient($ip.AddressFamily)"),
        "the probe's socket has the binding address's family: TcpClient() is IPv4-only on .NET Framework "
        "(dotnet/dotnet-api-docs#792), so an IPv6 binding would end as an unexpected error (review finding 1)",
    ),
    ScriptFact(
        _GET,
        r"\$ssl\.AuthenticateAsClient\(\$HostName, \$null, \[System\.Security\.Authentication\.SslProtocols\]::Tls12, "
        r"\$false\)",
        "the TLS server name (SNI) is the agent's host name and TLS 1.2 is asked for on the stream itself",
    ),
    ScriptFact(
        _GET,
        r'"GET \$Path HTTP/1\.1`r`nHost: \$HostName`r`n',
        "the request carries the agent's host name in its Host header (devhost.https routes on it)",
    ),
    ScriptFact(
        _GET,
        r"if \(\$address -eq '\*'\) \{ \$address = '127\.0\.0\.1' \}",
        "a binding on all unassigned addresses is requested on the loopback address",
    ),
    ScriptFact(
        _GET,
        r"New-Object System\.Reflection\.Emit\.DynamicMethod\('UsercubeAcceptAnyCertificate', \[bool\], \$parameters\)",
        "the certificate callback is emitted IL (no script block runs on the handshake's thread); the certificate "
        "served is compared by thumbprint afterwards",
    ),
    ScriptFact(
        _GET,
        r"if \(\$null -eq \$problem -or \$causes\.Count -gt 0 -or \(Get-Date\) -ge \$deadline\) \{ break \}",
        "a failure is asked again only while no cause explains it and wait_seconds have not passed",
    ),
    ScriptFact(
        _GET,
        r"if \(\$Answer\.server -match 'Microsoft-HTTPAPI'\)",
        "an answer of HTTP.sys itself (Server: Microsoft-HTTPAPI/2.0) is no answer of the agent",
    ),
)


def _page_code(answer: https.Answer) -> str:
    found = re.search(r"HTTP Error (\d{3}\.\d+)", answer.body)
    return f"HTTP {found.group(1)}" if found else f"HTTP {answer.status}"


def problem_of(answer: https.Answer, spec: dict[str, Any]) -> str | None:
    """Get-AnswerProblem."""
    if answer.outcome == "refused":
        return f"the connection was refused: nothing listens on port {spec['port']} ({answer.message})"
    if answer.outcome == "tls_failed":
        return f"the TLS handshake for {spec['host_name']} failed: no certificate was served ({answer.message})"
    expected = spec["expected_thumbprint"].upper()
    if answer.certificate != expected:
        return (
            f"it serves certificate {answer.certificate} ({answer.certificate_subject}), not {expected}, the one the "
            "stack bound"
        )
    code = _page_code(answer)
    if answer.server and "Microsoft-HTTPAPI" in answer.server:
        return f"HTTP.sys answered {code} itself: the request reached no running site or pool"
    if spec["expect_body"]:
        if answer.status != 200 or answer.body.strip() != spec["expect_body"]:
            excerpt = answer.body.strip()
            excerpt = excerpt[:120] + "..." if len(excerpt) > 120 else excerpt
            return f"{spec['path']} answered {code} '{excerpt}', not 200 '{spec['expect_body']}'"
        return None
    if (answer.status or 0) >= 500 or re.search(r"HTTP Error \d{3}\.\d+", answer.body):
        return f"{spec['path']} answered {code}"
    return None


def _token_sids(state_dir: Any, account: str) -> list[str]:
    """Get-TokenSids: the account's SID and the well-known groups (IIS_IUSRS for a pool identity)."""
    try:
        sid = accounts.resolve(state_dir, account).sid
    except accounts.IdentityNotMapped:
        return []
    sids = [sid, *WELL_KNOWN_GROUPS]
    if account.upper().startswith("IIS APPPOOL\\"):
        sids.append(IIS_IUSRS)
    return sids


def _readable(store: ntfs.NtfsStore, path: str, sids: list[str]) -> bool:
    """Test-FileReadable: the first entry (explicit, then inherited) of a token SID that grants or denies reading."""
    wanted = {sid.upper() for sid in sids}
    for ace in store.explicit_and_inherited(path, is_container=False):
        if ace.sid.upper() not in wanted or ntfs.INHERIT_ONLY in ace.propagation:
            continue
        if ace.mask & _READS == 0:
            continue
        return ace.allow
    return False


def key_causes(fs: WindowsFs, spec: dict[str, Any]) -> list[str]:
    if not spec["key_thumbprints"]:
        return []
    sids = _token_sids(fs.root, spec["identity"])
    if not sids:
        return [f"the account {spec['identity']} does not resolve to a SID on this host"]
    store = certstore.CertStore(fs.root)
    files = ntfs.NtfsStore(fs.root)
    causes = []
    for thumbprint in spec["key_thumbprints"]:
        entry = store.find("LocalMachine", "My", thumbprint)
        if entry is None:
            causes.append(f"certificate {thumbprint} is not in LocalMachine\\My (the agent's settings name it)")
            continue
        key = store.machine_key_file(entry.key_file) if entry.has_private_key and entry.key_file else None
        if key is None:
            causes.append(f"certificate {thumbprint} has no machine key file (its private key is missing)")
            continue
        if not _readable(files, key, sids):
            causes.append(
                f"the private key of certificate {thumbprint} is not readable by {spec['identity']}: grant it read "
                "access (Certificate private_key_readers; `up --refresh` restores it)"
            )
    return causes


def runtime_causes(fs: WindowsFs, spec: dict[str, Any]) -> list[str]:
    causes = []
    family = spec["runtime_family"]
    key = f"{iis.ASPNETCORE_SHARED_FRAMEWORK}\\v{family}"
    if not iis.registry_subkeys(fs.root, key):
        causes.append(
            f"no ASP.NET Core runtime {family} is installed: the .NET Hosting Bundle is missing (an IIS site answers "
            "HTTP 500.31); install it (hosts.<name>.hostingBundle)"
        )
    file = f"{spec['runtime_path']}\\{spec['app_file']}"
    if not fs.resolve(file).is_file():
        causes.append(
            f"the agent's runtime is missing: {file} does not exist; extract the vendor's runtime archive into "
            f"{spec['runtime_path']} (agents[i].runtimeArchive)"
        )
    return causes


def iis_causes(fs: WindowsFs, spec: dict[str, Any]) -> list[str]:
    """Get-IisCauses."""
    if not iis.is_installed(fs.root):
        raise OperationStopped(not_installed())
    manager = iis.ServerManager(fs.root)
    site = manager.find_site(spec["site_name"])
    if site is None:
        return [f"the IIS site '{spec['site_name']}' does not exist"]
    causes = []
    site_state = object_state(lambda: manager.site_state(spec["site_name"]))
    if site_state in ("Stopped", "Stopping"):
        causes.append(
            f"the IIS site '{spec['site_name']}' is {site_state.lower()}: start it (`up --refresh` restores state "
            "Started)"
        )
    pool = manager.find_pool(spec["pool_name"])
    if pool is None:
        causes.append(f"the application pool '{spec['pool_name']}' does not exist")
    else:
        pool_state = object_state(lambda: manager.pool_state(spec["pool_name"]))
        if pool_state in ("Stopped", "Stopping"):
            hint = ""
            if manager.pool_value(pool, "processModel/identityType") == "SpecificUser":
                hint = " (WAS stops a pool whose identity cannot log on: check its password)"
            causes.append(
                f"the application pool '{spec['pool_name']}' is {pool_state.lower()}{hint}: start it (`up --refresh` "
                "restores state Started)"
            )
    binding = None
    for candidate in manager.bindings(site):
        if candidate.protocol != "https":
            continue
        _ip, port, host = candidate.endpoint
        if port == int(spec["port"]) and host.lower() == spec["host_name"].lower():
            binding = candidate
    where = f"{spec['host_name']}:{spec['port']}"
    if binding is None:
        causes.append(f"the site has no https binding for {where}")
    else:
        bound = manager.certificate_of(binding)
        if bound is None:
            causes.append(f"no certificate is bound to https {where} in HTTP.sys (netsh http show sslcert)")
        else:
            store_name = bound.get("store") or "My"
            if not iis.certificate_in_store(fs.root, bound["hash"], store_name):
                causes.append(
                    f"the certificate bound to https {where} ({bound['hash'].upper()}) is missing from "
                    f"LocalMachine\\{store_name}"
                )
            elif bound["hash"].upper() != spec["expected_thumbprint"].upper():
                causes.append(
                    f"https {where} is bound to certificate {bound['hash'].upper()}, not {spec['expected_thumbprint']}"
                )
    if iis.ASPNETCORE_MODULE.lower() not in {m.lower() for m in manager.global_modules()}:
        causes.append(
            "AspNetCoreModuleV2 is missing from IIS (HTTP 500.19: web.config names a module IIS does not know): the "
            "hosting bundle was installed before IIS; repair it (hosts.<name>.hostingBundle does)"
        )
    web_config = f"{spec['runtime_path']}\\web.config"
    if not fs.resolve(web_config).is_file():
        causes.append(f"web.config is missing from {spec['runtime_path']}")
    else:
        try:
            root = ET.fromstring(fs.resolve(web_config).read_bytes())  # [xml] of the file's text
        except ET.ParseError:
            root = None
        if root is None or root.tag != "configuration" or root.find(".//aspNetCore") is None:
            causes.append(
                f"{web_config} is not the agent's: it has no aspNetCore element under configuration (replaced by "
                "hand?); `up --refresh` writes it again"
            )
    return causes


def service_causes(fs: WindowsFs, spec: dict[str, Any]) -> list[str]:
    service = scm.get(fs.root, spec["service_name"])
    if service is None:
        return [f"the service '{spec['service_name']}' does not exist"]
    if service.state != "Running":
        return [
            f"the service '{spec['service_name']}' is {service.state.lower()}: start it (`up --refresh` restores "
            "state Running)"
        ]
    return []


@operation
def get(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    deadline = time.monotonic() + int(spec["wait_seconds"])
    answer: https.Answer | None = None
    attempt = 0
    while True:
        attempt += 1
        problem: str | None
        causes: list[str] = []
        if spec["hosting"] == "iis":
            address = "127.0.0.1" if spec["ip_address"] == "*" else spec["ip_address"].strip("[]")
            try:
                answer = https.request(fs.root, address, int(spec["port"]), spec["host_name"], spec["path"])
            except https.NotModelled as refused:
                return fail("SimulatorNotModelled", f"devhost (SIMULATOR): {refused}", category="NotImplemented")
            problem = problem_of(answer, spec)
            if problem is not None:
                causes = iis_causes(fs, spec) + runtime_causes(fs, spec) + key_causes(fs, spec)
        else:
            causes = service_causes(fs, spec) + runtime_causes(fs, spec)
            problem = f"the service '{spec['service_name']}' is not running its agent" if causes else None
            if not causes:
                causes = key_causes(fs, spec)
                problem = "the agent cannot open its certificates" if causes else None
        if problem is None or causes or time.monotonic() >= deadline:
            break
        time.sleep(2)  # Start-Sleep -Seconds 2
    state = {
        "ensure": "present",
        "answers": problem is None,
        "url": spec["url"],
        "problem": problem,
        "causes": causes,
        "attempts": attempt,
        "status": answer.status if answer else None,
        "served_thumbprint": answer.certificate if answer else None,
    }
    if problem is not None and spec["mode"] == "check":
        why = (
            "likely cause: " + "; ".join(causes)
            if causes
            else (
                "no cause found in IIS's configuration: see the Application event log (source IIS AspNetCore Module "
                "V2) and the stdout log in Temp"
            )
        )
        return fail("AgentNotAnswering", f"{spec['url']}: {problem}; {why}", category="ConnectionError")
    return succeed(state)


OPERATIONS = {"agent_verification/get": get}

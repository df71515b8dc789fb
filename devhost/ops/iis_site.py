"""SIMULATOR: model of providers/iis_site/scripts/{get,set,remove}.ps1 on devhost.iis."""

from __future__ import annotations

from typing import Any

from devhost import iis
from devhost.fs import WindowsFs
from devhost.ops.envelope import Envelope, change, fail, operation, require_keys, succeed
from devhost.ops.iis_common import (
    ScriptStop,
    not_installed,
    object_state,
    remove_binding,
    remove_site,
    start_site,
    stop_site,
)
from devhost.ps51 import ScriptFact, in_code_of_function, in_function

_KEYS = {"name", "physical_path", "app_pool", "bindings", "preload_enabled", "state"}
_BINDING_KEYS = {"protocol", "binding_information", "ssl_flags", "certificate_hash", "certificate_store"}

SCRIPT_FACTS = (
    ScriptFact(
        ("iis_site/set",),
        r"Stop-Operation -Id 'CertificateConflict'",
        "HTTP.sys holds one certificate per ip:port (host:port with SNI): Bindings.Add with another hash rewrites "
        "an entry another site shares and silently changes that site's certificate",
    ),
    ScriptFact(
        ("iis_site/set",),
        in_function(
            "Test-EndpointConflict",
            r"if\s*\(\s*\$null\s+-eq\s+\$A\s+-or\s+\$null\s+-eq\s+\$B\s*\)\s*\{\s*return\s+\$false\s*\}"
            r"(?:(?!^\}).)*?\$A\.Ip\s+-eq\s+\$B\.Ip\s+-and\s+\$A\.Port\s+-eq\s+\$B\.Port\s+-and\s+"
            r"\$A\.HostName\s+-eq\s+\$B\.HostName",
        ),
        "W3/B2: two bindings clash only on the same address, port and host name (iis.sites_conflict): HTTP.sys "
        "prefers a specific address over the weak wildcard '*', so '*:80:' and '10.0.0.5:80:' both run; a "
        "non-HTTP binding has no endpoint ($null, Get-BindingEndpoint) and clashes with nothing",
    ),
    ScriptFact(
        ("iis_site/set",),
        in_code_of_function("Test-EndpointConflict", r"'\*'"),
        "W3: '*' is not treated as clashing with every address (iis.sites_conflict compares the addresses only)",
        present=False,
    ),
    ScriptFact(
        ("iis_site/set",),
        r"(?i)\bStart-IisSite\s+\$site\b",
        "R10: set starts the site through Start-IisSite, which retries while WAS does not know a site just "
        "committed (0x800710D8; iis_common.start_site)",
    ),
    ScriptFact(
        ("iis_site/set",),
        r"(?im)^(?:(?!Invoke-WhenWasKnows)[^\n])*\$site\.Start\(\)",
        "R10: no bare Site.Start(): right after the commit that created the site it throws 0x800710D8 "
        "(iis.NotYetKnown) until WAS picks the site up; only Invoke-WhenWasKnows calls it",
        present=False,
    ),
)


def _binding_state(manager: iis.ServerManager, binding: iis.Binding) -> dict[str, Any]:
    certificate = manager.certificate_of(binding)
    https = binding.protocol == "https"
    return {
        "protocol": binding.protocol,
        "binding_information": binding.binding_information,
        "ssl_flags": binding.ssl_flags,
        "certificate_hash": certificate["hash"] if https and certificate else None,
        "certificate_store": certificate["store"] if https and certificate else None,
    }


def _format(binding: dict[str, Any]) -> str:
    text = f"{binding['protocol']} {binding['binding_information']}"
    if binding["protocol"] == "https":
        where = f"{binding['certificate_store']}\\{binding['certificate_hash']}"
        text += f" certificate {where} sslFlags {binding['ssl_flags']}"
    return text


def _same(actual: dict[str, Any], desired: dict[str, Any]) -> bool:
    if (actual["protocol"], actual["binding_information"].lower()) != (
        desired["protocol"],
        desired["binding_information"].lower(),
    ):
        return False
    if actual["protocol"] != "https":
        return True
    return (actual["ssl_flags"], actual["certificate_hash"], actual["certificate_store"]) == (
        int(desired["ssl_flags"]),
        desired["certificate_hash"],
        desired["certificate_store"],
    )


def _certificate_conflict(
    manager: iis.ServerManager, wanted: dict[str, Any], theirs: iis.Binding
) -> tuple[str, str] | None:
    """The shared HTTP.sys entry (key, hash) another site's binding holds with another certificate.

    HTTP.sys keeps one certificate per ip:port (host:port with SNI): ``ServerManager.add_binding`` with
    another hash rewrites the entry, which silently changes the other site's certificate (the script
    refuses that, as IIS Manager warns about it).
    """
    if wanted["protocol"] != "https" or theirs.protocol != "https":
        return None
    key = iis.Binding("https", wanted["binding_information"], int(wanted["ssl_flags"])).sslcert_key().lower()
    certificate = manager.certificate_of(theirs)
    if theirs.sslcert_key().lower() != key or certificate is None:
        return None
    if certificate["hash"].lower() == str(wanted["certificate_hash"]).lower():
        return None
    return key, certificate["hash"]


def _state(manager: iis.ServerManager, name: str) -> dict[str, Any]:
    site = manager.find_site(name)
    if site is None:
        return {"ensure": "absent", "name": name}
    root = manager.root_application(site)
    return {
        "ensure": "present",
        "name": site.get("name"),
        "site_id": int(site.get("id", "0")),
        "physical_path": manager.root_directory(site).get("physicalPath"),
        "app_pool": manager.application_pool_of(site),
        "bindings": [_binding_state(manager, b) for b in manager.bindings(site)],
        "preload_enabled": root.get("preloadEnabled", "false") == "true",
        "state": object_state(lambda: manager.site_state(str(site.get("name")))),
    }


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
    desired: list[dict[str, Any]] = spec["bindings"]
    for binding in desired:
        require_keys(binding, _BINDING_KEYS)
    for index, binding in enumerate(desired):
        if binding["protocol"] == "https" and not iis.certificate_in_store(
            fs.root, binding["certificate_hash"], binding["certificate_store"]
        ):
            return fail(
                "CertificateNotFound",
                f"no certificate Cert:\\LocalMachine\\{binding['certificate_store']}\\{binding['certificate_hash']} on "
                "this host; import it first (Certificate resource) or correct the thumbprint",
                prop=f"bindings.{index}.certificate_thumbprint",
                category="ObjectNotFound",
            )

    def configure(manager: iis.ServerManager) -> list[dict[str, Any]]:
        changes: list[dict[str, Any]] = []
        if manager.find_pool(spec["app_pool"]) is None:
            raise ScriptStop(
                fail(
                    "AppPoolNotFound",
                    f"application pool '{spec['app_pool']}' does not exist; create it first (IisAppPool) or correct "
                    "app_pool",
                    prop="app_pool",
                    category="ObjectNotFound",
                )
            )
        for index, wanted in enumerate(desired):
            probe = iis.Binding(wanted["protocol"], wanted["binding_information"])
            for other in manager.site_names():
                if other.lower() == name.lower():
                    continue
                other_site = manager.find_site(other)
                assert other_site is not None
                for theirs in manager.bindings(other_site):
                    if iis.sites_conflict(probe, theirs):
                        raise ScriptStop(
                            fail(
                                "BindingInUse",
                                f"binding '{wanted['binding_information']}' is already used by site '{other}' "
                                f"({theirs.protocol} {theirs.binding_information}); choose another port or host "
                                "name, or remove that site",
                                prop=f"bindings.{index}",
                            )
                        )
                    conflict = _certificate_conflict(manager, wanted, theirs)
                    if conflict is not None:
                        key, their_hash = conflict
                        raise ScriptStop(
                            fail(
                                "CertificateConflict",
                                f"binding '{wanted['binding_information']}' shares the HTTP.sys certificate binding "
                                f"{key} with site '{other}' ({theirs.protocol} {theirs.binding_information}), which "
                                f"uses certificate {their_hash}; HTTP.sys holds one certificate per endpoint, so "
                                f"this would replace that site's certificate. Use SNI (a host name with ssl_flags 1) "
                                f"or the same certificate as site '{other}'",
                                prop=f"bindings.{index}",
                            )
                        )
        site = manager.find_site(name)
        if site is None:
            site = manager.add_site(name, spec["physical_path"])
            changes.append(change("ensure", "absent", "present"))
        root = manager.root_application(site)
        directory = manager.root_directory(site)
        if directory.get("physicalPath") != spec["physical_path"]:
            changes.append(change("physical_path", directory.get("physicalPath"), spec["physical_path"]))
            directory.set("physicalPath", spec["physical_path"])
        pool = manager.application_pool_of(site)
        if pool != spec["app_pool"]:
            changes.append(change("app_pool", pool, spec["app_pool"]))
            root.set("applicationPool", spec["app_pool"])
        preload = root.get("preloadEnabled", "false") == "true"
        if preload != spec["preload_enabled"]:
            root.set("preloadEnabled", "true" if spec["preload_enabled"] else "false")
            changes.append(change("preload_enabled", preload, spec["preload_enabled"]))
        auto_start = spec["state"] == "Started"
        if (site.get("serverAutoStart", "true") == "true") != auto_start:
            site.set("serverAutoStart", "true" if auto_start else "false")
            changes.append(change("server_auto_start", not auto_start, auto_start))
        for binding in manager.bindings(site):
            actual = _binding_state(manager, binding)
            if not any(_same(actual, wanted) for wanted in desired):
                remove_binding(manager, site, binding)
                changes.append(change("bindings", _format(actual), None))
        for wanted in desired:
            present = [
                b
                for b in manager.bindings(site)
                if (b.protocol, b.binding_information.lower())
                == (wanted["protocol"], wanted["binding_information"].lower())
            ]
            if present:
                continue
            binding = iis.Binding(wanted["protocol"], wanted["binding_information"], int(wanted["ssl_flags"]))
            manager.add_binding(site, binding, wanted["certificate_hash"], wanted["certificate_store"])
            changes.append(change("bindings", None, _format(wanted)))
        if changes:
            manager.commit()
        return changes

    try:
        changes: list[dict[str, Any]] = iis.with_retries(fs.root, configure)
    except iis.LogonSessionMissing as error:
        return fail("UnexpectedError", str(error), category="NotSpecified")
    manager = iis.ServerManager(fs.root)
    current = object_state(lambda: manager.site_state(name))
    if spec["state"] == "Started" and current != "Started":
        try:
            start_site(manager, name)
        except (iis.EndpointInUse, iis.NotYetKnown) as error:
            return fail(
                "SiteStartFailed",
                f"site '{name}' did not start: {error}. Another process or site holds one of its bindings "
                "(netsh http show urlacl / servicestate)",
                prop="bindings",
            )
        changes.append(change("state", current, "Started"))
    elif spec["state"] == "Stopped" and current != "Stopped":
        changes.append(change("state", current, stop_site(manager, name)))
    return succeed(_state(manager, name), changes)


@operation
def remove(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    if not iis.is_installed(fs.root):
        return not_installed()
    name = spec["name"]

    def delete(manager: iis.ServerManager) -> list[dict[str, Any]]:
        if manager.find_site(name) is None:
            return []
        remove_site(manager, name)
        manager.commit()
        return [change("ensure", "present", "absent")]

    changes: list[dict[str, Any]] = iis.with_retries(fs.root, delete)
    return succeed(_state(iis.ServerManager(fs.root), name), changes)


OPERATIONS = {"iis_site/get": get, "iis_site/set": set_, "iis_site/remove": remove}

"""SIMULATOR: model of providers/iis_default_site_removal/scripts/{get,set,remove}.ps1 on devhost.iis.

Owners and the saved site and pool live in devhost.ops.ownership (the scripts' _owners.ps1).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from devhost import iis
from devhost.fs import WindowsFs
from devhost.ops import ownership
from devhost.ops.envelope import Envelope, change, fail, operation, require_keys, succeed
from devhost.ops.iis_common import (
    ScriptStop,
    not_installed,
    object_state,
    remove_site,
    start_site,
    stop_site,
    when_was_knows,
)
from devhost.ps51 import ScriptFact

_KEYS = {"site_name", "pool_name", "owner", "previous_owner", "restore_site", "restore_pool"}
_ALL = ("iis_default_site_removal/get", "iis_default_site_removal/set", "iis_default_site_removal/remove")
_WRITERS = ("iis_default_site_removal/set", "iis_default_site_removal/remove")
# Get-PoolRecord's $PoolSettingPaths; the TimeSpan ones are kept as {"timespan": text}.
POOL_SETTINGS = (
    "managedRuntimeVersion",
    "managedPipelineMode",
    "startMode",
    "autoStart",
    "processModel/identityType",
    "processModel/userName",
    "processModel/idleTimeout",
    "processModel/loadUserProfile",
    "recycling/periodicRestart/time",
)
# Get-SiteRecord's $SiteSettingPaths and $RootApplicationSettingPaths.
SITE_SETTINGS = (
    "serverAutoStart",
    "limits/maxBandwidth",
    "limits/maxConnections",
    "limits/connectionTimeout",
    "limits/maxUrlSegments",
    "logFile/directory",
    "logFile/enabled",
    "logFile/period",
    "logFile/logFormat",
)
ROOT_APPLICATION_SETTINGS = ("applicationPool", "enabledProtocols")
_TIMESPANS = {"processModel/idleTimeout", "recycling/periodicRestart/time", "limits/connectionTimeout"}
SCRIPT_FACTS = (
    *ownership.script_facts(_WRITERS),
    ScriptFact(
        ("iis_default_site_removal/set",),
        r"if \(\$changes\.Count -gt 0 -or \$recordChanged\) \{\s+if \(\$null -eq \$record\.site -and \$null -eq "
        r"\$record\.pool\) \{ \[System\.IO\.File\]::Delete\(\$foundPath\) \} else \{ Write-OwnersJson \$foundPath "
        r"\$record \}\s+\}\s+@\{ Changes = \$changes \}",
        "what is removed is saved on the host before the commit that removes it",
    ),
    ScriptFact(
        ("iis_default_site_removal/set",),
        r"if \(\$null -eq \$record\.site -and \$null -eq \$site -and \[bool\]\$Spec\.restore_site\) \{ "
        r"\$record\.site = Get-StockSiteRecord; \$recordChanged = \$true \}",
        "a state from before owners were recorded says through restore_site / restore_pool what it removed: set "
        "records the stock site and pool for the last owner's destroy",
    ),
    ScriptFact(
        ("iis_default_site_removal/set",),
        r"Stop-Operation -Id 'DefaultSiteHasContent'",
        "a Default Web Site with applications or virtual directories added after installation is not removed "
        "(they are not saved, so they could not come back)",
    ),
    ScriptFact(
        _WRITERS,
        r"\$Manager\.Sites\.Add\(\[string\]\$Record\.name, \[string\]\$Record\.physical_path, 80\)\s+"
        r"\$site\.Bindings\.Clear\(\)",
        "the restored site starts from a placeholder http binding (SiteCollection.Add(name, physicalPath, port)), "
        "cleared at once: the model adds none",
    ),
    ScriptFact(
        _WRITERS,
        r"if \(\$flags -ne 0\) \{ \$added\.SetAttributeValue\('sslFlags', \$flags\) \}",
        "Bindings.Add(information, protocol) writes no sslFlags (the schema default, None): the recorded flags are "
        "set afterwards, as the model does",
    ),
    ScriptFact(
        _WRITERS,
        r"if \(-not \(Test-StoreCertificate \(\[string\]\$binding\.certificate_store\) "
        r"\(\[string\]\$binding\.certificate_hash\)\)\) \{",
        "an https binding whose certificate left the store is not restored: HTTP.sys would refuse the commit "
        "(0x80070520), and destroy would be blocked",
    ),
    ScriptFact(
        ("iis_default_site_removal/remove",),
        r"if \(\[string\]\$Found\.site\.state -eq 'Stopped' -and \$now -ne 'Stopped'\) \{ Stop-IisSite \$site \}",
        "the restored site's Stop() is retried on 0x800710D8 as Start() is (iis_common.stop_site)",
    ),
    ScriptFact(
        ("iis_default_site_removal/remove",),
        r"\[Microsoft\.Web\.Administration\.SslFlags\]\$defined\)\s+if \(\$flags -ne \$defined\) \{ "
        r"\$added\.SetAttributeValue\('sslFlags', \$flags\) \}",
        "Bindings.Add gets only the SslFlags the enum defines (a cast of Server 2022's extra bits throws, "
        "iis.ssl_flags_enum); the full integer goes through SetAttributeValue('sslFlags'), as the model does",
    ),
    ScriptFact(
        ("iis_default_site_removal/remove",),
        r"\[Microsoft\.Web\.Administration\.SslFlags\]\$flags",
        "the integer sslFlags is never cast to the SslFlags enum whole (UndefinedIntegerToEnum on Server 2022's bits)",
        present=False,
    ),
    ScriptFact(
        ("iis_default_site_removal/remove",),
        r"Invoke-WhenWasKnows \{ \[void\]\$pool\.Stop\(\) \}",
        "the restored pool's Stop() is retried on 0x800710D8 as the site's is (iis_common.when_was_knows)",
    ),
    ScriptFact(
        ("iis_default_site_removal/remove",),
        r"return \(\$found\.Count -gt 0 -and \$found\[0\]\.HasPrivateKey\)",
        "an https binding is restored only when its certificate is in the store with its private key "
        "(iis.certificate_in_store(with_private_key=True))",
    ),
    ScriptFact(
        ("iis_default_site_removal/remove",),
        r"if \(\$stockAdded -and \$recorded -and \$others -gt 0\) \{ Write-OwnersJson \$foundPath \$found \}",
        "a state from before owners that leaves while newer owners hold the removal merges its stock site / pool "
        "into found.json, so the last owner puts them back",
    ),
    ScriptFact(
        ("iis_default_site_removal/set",),
        r"\$certificatesBefore = Get-SiteCertificates \(\[string\]\$Spec\.site_name\)\s+try \{\s+"
        r"\$result = Invoke-IisChange \{",
        "each https binding's certificate is read once before the retrying Invoke-IisChange, so a commit-conflict "
        "retry cannot record a binding without it (the model's _site_certificates)",
    ),
    ScriptFact(
        ("iis_default_site_removal/set",),
        r"\$SiteSettingPaths = @\('serverAutoStart', 'limits/maxBandwidth', 'limits/maxConnections', "
        r"'limits/connectionTimeout',\s+'limits/maxUrlSegments', 'logFile/directory', 'logFile/enabled', "
        r"'logFile/period', 'logFile/logFormat'\)\s+\$RootApplicationSettingPaths = @\('applicationPool', "
        r"'enabledProtocols'\)",
        "the site settings and root application settings kept are the model's SITE_SETTINGS and "
        "ROOT_APPLICATION_SETTINGS",
    ),
    ScriptFact(
        ("iis_default_site_removal/set",),
        r"\} catch \{\s+#[^\n]*\n\s+if \(\$recordedNow\) \{ \[System\.IO\.File\]::Delete\(\$mine\) \}\s+throw",
        "a removal that fails takes back the owner record it wrote",
    ),
    ScriptFact(
        _WRITERS,
        r"if \(\$attribute\.IsInheritedFromDefaultValue\) \{ continue \}",
        "only settings set on the element itself are kept (ConfigurationAttribute.IsInheritedFromDefaultValue), "
        "so what applicationPoolDefaults gave stays inherited when the pool comes back",
    ),
)


def _state(manager: iis.ServerManager, spec: dict[str, Any]) -> dict[str, Any]:
    site_present = manager.find_site(spec["site_name"]) is not None
    pool_present = manager.find_pool(spec["pool_name"]) is not None
    ensure = "present" if not site_present and not pool_present else "absent"
    return {"ensure": ensure, "site_present": site_present, "pool_present": pool_present}


def _folder(spec: dict[str, Any]) -> str:
    return ownership.folder("IisDefaultSiteRemoval", str(spec["site_name"]))


# -- Get-ExplicitSettings / Set-ExplicitSettings over the configuration XML -----------------------------------


def _element(element: ET.Element, path: str, create: bool) -> tuple[ET.Element | None, str]:
    *parents, attribute = path.split("/")
    current: ET.Element | None = element
    for name in parents:
        child = current.find(name) if current is not None else None
        if child is None and create and current is not None:
            child = ET.SubElement(current, name)
        current = child
    return current, attribute


def _explicit(element: ET.Element, paths: tuple[str, ...]) -> dict[str, Any]:
    """Only what the element itself sets (IsInheritedFromDefaultValue false)."""
    settings: dict[str, Any] = {}
    for path in paths:
        holder, attribute = _element(element, path, create=False)
        if holder is None or attribute not in holder.attrib:
            continue
        value = holder.attrib[attribute]
        settings[path] = {"timespan": value} if path in _TIMESPANS else value
    return settings


def _set_explicit(element: ET.Element, settings: dict[str, Any]) -> None:
    for path, value in settings.items():
        holder, attribute = _element(element, path, create=True)
        assert holder is not None
        holder.set(attribute, str(value["timespan"] if isinstance(value, dict) else value))


def _site_certificates(manager: iis.ServerManager, name: str) -> dict[str, dict[str, str]]:
    """Get-SiteCertificates: each https binding's HTTP.sys certificate, read before Invoke-IisChange."""
    site = manager.find_site(name)
    known = {}
    for binding in manager.bindings(site) if site is not None else []:
        certificate = manager.certificate_of(binding) if binding.protocol == "https" else None
        if certificate and certificate.get("hash"):
            known[binding.binding_information] = certificate
    return known


def _site_record(
    manager: iis.ServerManager, site: ET.Element, known: dict[str, dict[str, str]] | None = None
) -> dict[str, Any]:
    """Get-SiteRecord; a certificate that reads empty is taken from ``known`` (Get-SiteCertificates)."""
    name = str(site.get("name"))
    bindings = []
    for binding in manager.bindings(site):
        certificate = manager.certificate_of(binding) or {}
        if not certificate.get("hash") and binding.binding_information in (known or {}):
            certificate = (known or {})[binding.binding_information]
        bindings.append(
            {
                "protocol": binding.protocol,
                "binding_information": binding.binding_information,
                "ssl_flags": binding.ssl_flags,
                "certificate_hash": certificate.get("hash"),
                "certificate_store": certificate.get("store"),
            }
        )
    return {
        "name": name,
        "id": int(site.get("id", "0")),
        "physical_path": manager.root_directory(site).get("physicalPath", ""),
        "settings": _explicit(site, SITE_SETTINGS),
        "root_settings": _explicit(manager.root_application(site), ROOT_APPLICATION_SETTINGS),
        "state": object_state(lambda: manager.site_state(name)),
        "bindings": bindings,
    }


def _pool_record(manager: iis.ServerManager, pool: ET.Element) -> dict[str, Any]:
    """Get-PoolRecord."""
    name = str(pool.get("name"))
    return {
        "name": name,
        "settings": _explicit(pool, POOL_SETTINGS),
        "state": object_state(lambda: manager.pool_state(name)),
    }


def _restore_site(manager: iis.ServerManager, record: dict[str, Any]) -> list[str]:
    """Restore-Site: Sites.Add (next free id), its own id when free, its settings and bindings; what it could not
    restore (an https binding whose certificate left the store), one line each."""
    site = manager.add_site(record["name"], record["physical_path"], site_id=int(record["id"]))
    _set_explicit(site, record["settings"])
    _set_explicit(manager.root_application(site), record["root_settings"])
    skipped = []
    for binding in record["bindings"]:
        flags = int(binding["ssl_flags"])
        information = binding["binding_information"]
        if binding["protocol"] == "https" and binding["certificate_hash"]:
            store = binding["certificate_store"] or "My"
            if not iis.certificate_in_store(
                manager.state_dir, binding["certificate_hash"], store, with_private_key=True
            ):  # Test-StoreCertificate: there, and with its private key (HasPrivateKey)
                skipped.append(
                    f"binding https {information} not restored: its certificate {binding['certificate_hash']} is no "
                    f"longer in LocalMachine\\{binding['certificate_store']} with its private key"
                )
                continue
            # Bindings.Add(information, hash, store, [SslFlags]($flags -band 3)): the cast refuses undefined bits
            # (iis.ssl_flags_enum); Server 2022's extra bits go through SetAttributeValue('sslFlags') after.
            defined = iis.ssl_flags_enum(flags & iis.SSL_FLAGS_DEFINED)
            value = iis.Binding("https", information, defined)
            manager.add_binding(site, value, binding["certificate_hash"], binding["certificate_store"])
            if flags != defined:
                _set_ssl_flags(site, "https", information, flags)
        else:
            # Bindings.Add(information, protocol): no sslFlags attribute; SetAttributeValue('sslFlags') after.
            manager.add_binding(site, iis.Binding(binding["protocol"], information, 0))
            if flags:
                _set_ssl_flags(site, binding["protocol"], information, flags)
    return skipped


def _set_ssl_flags(site: ET.Element, protocol: str, information: str, flags: int) -> None:
    """Binding.SetAttributeValue('sslFlags', <int>): applicationHost.config keeps the flag names."""
    names = [name for bit, name in ((1, "Sni"), (2, "CentralCertStore")) if flags & bit]
    for element in site.iter("binding"):
        if (element.get("protocol"), element.get("bindingInformation")) == (protocol, information):
            element.set("sslFlags", ",".join(names) if flags <= 3 else str(flags))


def _added_content(site: ET.Element) -> list[str]:
    """Get-AddedSiteContent: applications other than '/', virtual directories other than an application's '/'."""
    added = []
    for application in site.findall("application"):
        path = str(application.get("path"))
        if path != "/":
            added.append(f"application {path}")
        for directory in application.findall("virtualDirectory"):
            if directory.get("path") != "/":
                added.append(f"virtual directory {path.rstrip('/')}{directory.get('path')}")
    return added


def _restore_runtime(manager: iis.ServerManager, found: dict[str, Any]) -> str | None:
    """Restore-RuntimeState, after the commit."""
    pool = found.get("pool")
    if (
        pool is not None
        and pool["state"] == "Stopped"
        and manager.find_pool(pool["name"]) is not None
        and object_state(lambda: manager.pool_state(pool["name"])) != "Stopped"
    ):
        when_was_knows(lambda: manager.stop_pool(pool["name"]))
    site = found.get("site")
    if site is None or manager.find_site(site["name"]) is None:
        return None
    now = object_state(lambda: manager.site_state(site["name"]))
    if site["state"] == "Stopped" and now != "Stopped":
        stop_site(manager, site["name"])
    if site["state"] == "Started" and now != "Started":
        try:
            start_site(manager, site["name"])
        except iis.IisError as error:
            return f"site '{site['name']}' is restored but did not start: {error}"
    return None


@operation
def get(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    if not iis.is_installed(fs.root):
        return not_installed()
    return succeed(_state(iis.ServerManager(fs.root), spec))


@operation
def set_(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    if not iis.is_installed(fs.root):
        return not_installed()
    folder = _folder(spec)
    with ownership.host_lock(fs):
        ownership.initialize(fs, folder)
        try:
            return _set(fs, spec, folder)
        finally:
            ownership.remove_unused_folder(fs, folder)  # a refused set leaves no empty folder


def _set(fs: WindowsFs, spec: dict[str, Any], folder: str) -> Envelope:
    mine = ownership.record_path(folder, str(spec["owner"]))
    found_path = ownership.found_path(folder)
    recorded_now = not ownership.exists(fs, mine)
    if recorded_now:
        ownership.write(fs, mine, {"owner": spec["owner"]})  # before anything is removed
    previous = str(spec["previous_owner"])
    previous_path = ownership.record_path(folder, previous) if previous and previous != spec["owner"] else None
    # A new owner and no other: a found.json there is left by a half-done restore.
    first_owner = recorded_now and all(r["owner"] == spec["owner"] for r in ownership.records(fs, folder))

    certificates_before = _site_certificates(iis.ServerManager(fs.root), str(spec["site_name"]))

    def configure(manager: iis.ServerManager) -> list[dict[str, Any]]:
        changes = []
        site = manager.find_site(spec["site_name"])
        pool = manager.find_pool(spec["pool_name"])
        found = ownership.read(fs, found_path)
        record = {"site": (found or {}).get("site"), "pool": (found or {}).get("pool")}
        record_changed = False
        if first_owner:  # stale for what is there now
            for key, present in (("site", site), ("pool", pool)):
                if present is not None and record[key] is not None:
                    record[key] = None
                    record_changed = True
        # A state from before owners: restore_site / restore_pool say what an earlier version removed.
        # Also when a newer owner recorded first and found nothing to save (found.json with no site or pool).
        if record["site"] is None and site is None and spec["restore_site"]:
            record["site"] = _stock_site(spec)
            record_changed = True
        if record["pool"] is None and pool is None and spec["restore_pool"]:
            record["pool"] = _stock_pool(spec)
            record_changed = True
        if site is not None:
            added = _added_content(site)
            if added:
                raise ScriptStop(
                    fail(
                        "DefaultSiteHasContent",
                        f"'{site.get('name')}' has {', '.join(added)}, added after installation; removing the site "
                        "would lose them and they could not be restored: move them to another site (or delete "
                        "them), then run again",
                        prop="ensure",
                        category="ResourceExists",
                    )
                )
            if record["site"] is None:
                record["site"] = _site_record(manager, site, certificates_before)
            remove_site(manager, spec["site_name"])
            changes.append(change("default_site", "present", "absent"))
        if pool is not None:
            users = manager.applications_of_pool(str(pool.get("name")))
            if users:
                raise ScriptStop(
                    fail(
                        "AppPoolInUse",
                        f"'{pool.get('name')}' is used by {', '.join(users)}; those applications were added "
                        "after installation, so the pool is kept: move them to another pool first",
                        prop="ensure",
                        category="ResourceExists",
                    )
                )
            if record["pool"] is None:
                record["pool"] = _pool_record(manager, pool)
            manager.remove_pool(spec["pool_name"])
            changes.append(change("default_pool", "present", "absent"))
        if changes or record_changed:  # before the commit
            if record["site"] is None and record["pool"] is None:
                ownership.delete(fs, found_path)
            else:
                ownership.write(fs, found_path, record)
        if changes:
            manager.commit()
        return changes

    try:
        changes = iis.with_retries(fs.root, configure)
    except (ScriptStop, iis.IisError):
        # A removal that fails creates no resource: the record it wrote goes.
        if recorded_now:
            ownership.delete(fs, mine)
        raise
    if previous_path is not None:  # the resource's id changed: its record moved to this one
        ownership.delete(fs, previous_path)
    state = _state(iis.ServerManager(fs.root), spec)
    found = ownership.read(fs, found_path)
    state["removed_site"] = found is not None and found.get("site") is not None
    state["removed_pool"] = found is not None and found.get("pool") is not None
    state["owners"] = len(ownership.records(fs, folder))
    return succeed(state, changes)


def _stock_site(spec: dict[str, Any]) -> dict[str, Any]:
    """Get-StockSiteRecord: the site as IIS's installation creates it (a state from before owners)."""
    http = {"protocol": "http", "binding_information": "*:80:", "ssl_flags": 0}
    return {
        "name": spec["site_name"],
        "id": 1,
        "physical_path": iis.DEFAULT_SITE_PATH,
        "settings": {},
        "root_settings": {},
        "state": "Started",
        "bindings": [{**http, "certificate_hash": None, "certificate_store": None}],
    }


def _stock_pool(spec: dict[str, Any]) -> dict[str, Any]:
    """Get-StockPoolRecord: every setting inherited from applicationPoolDefaults."""
    return {"name": spec["pool_name"], "settings": {}, "state": "Started"}


@operation
def remove(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    if not iis.is_installed(fs.root):
        return not_installed()
    folder = _folder(spec)
    with ownership.host_lock(fs):
        ownership.assert_trusted(fs, folder)
        recorded = ownership.recorded(fs, folder)
        mine = ownership.record_path(folder, str(spec["owner"]))
        was_owner = ownership.exists(fs, mine)
        ownership.delete(fs, mine)
        others = len(ownership.records(fs, folder))
        found = ownership.read(fs, ownership.found_path(folder))
        if not was_owner:
            # A state from before owners: the stock site / pool, unless found.json keeps them as they were.
            merged = {"site": (found or {}).get("site"), "pool": (found or {}).get("pool")}
            stock_added = False
            if spec["restore_site"] and merged["site"] is None:
                merged["site"] = _stock_site(spec)
                stock_added = True
            if spec["restore_pool"] and merged["pool"] is None:
                merged["pool"] = _stock_pool(spec)
                stock_added = True
            if found is not None or stock_added:
                found = merged
            if stock_added and recorded and others:  # the last other owner puts it back
                ownership.write(fs, ownership.found_path(folder), merged)
        if recorded and others:
            return succeed({**_state(iis.ServerManager(fs.root), spec), "other_owners": others})
        skipped: list[str] = []

        def restore(manager: iis.ServerManager) -> list[dict[str, Any]]:
            changes = []
            skipped.clear()
            pool = found.get("pool") if found is not None else None
            if pool is not None and manager.find_pool(spec["pool_name"]) is None:
                _set_explicit(manager.add_pool(spec["pool_name"]), pool["settings"])
                changes.append(change("default_pool", "absent", "present"))
            site = found.get("site") if found is not None else None
            if site is not None and manager.find_site(spec["site_name"]) is None:
                skipped.extend(_restore_site(manager, site))
                changes.append(change("default_site", "absent", "present"))
            if changes:
                manager.commit()
            return changes

        changes: list[dict[str, Any]] = iis.with_retries(fs.root, restore)
        manager = iis.ServerManager(fs.root)
        warning = _restore_runtime(manager, found) if found is not None else None
        state = _state(manager, spec)
        ownership.remove_folder(fs, folder)
        notes = [warning, *skipped]
        pool = found.get("pool") if found is not None else None
        if pool is not None and pool["settings"].get("processModel/identityType") in ("SpecificUser", "3"):
            notes.append(
                f"pool '{pool['name']}' is back with its user but not its password (never kept outside IIS): "
                "set it again"
            )
        state["restore_warning"] = "; ".join(n for n in notes if n) or None
        return succeed(state, changes)


OPERATIONS = {
    "iis_default_site_removal/get": get,
    "iis_default_site_removal/set": set_,
    "iis_default_site_removal/remove": remove,
}

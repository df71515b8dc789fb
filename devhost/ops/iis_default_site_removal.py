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
from devhost.ops.iis_common import ScriptStop, not_installed, object_state, remove_site, start_site
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
_TIMESPANS = {"processModel/idleTimeout", "recycling/periodicRestart/time"}
SCRIPT_FACTS = (
    *ownership.script_facts(_WRITERS),
    ScriptFact(
        ("iis_default_site_removal/set",),
        r"if \(\$changes\.Count -gt 0\) \{ Write-OwnersJson \$foundPath \$record \}\s+@\{ Changes = \$changes \}",
        "what is removed is saved on the host before the commit that removes it",
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


def _site_record(manager: iis.ServerManager, site: ET.Element) -> dict[str, Any]:
    """Get-SiteRecord."""
    name = str(site.get("name"))
    bindings = []
    for binding in manager.bindings(site):
        certificate = manager.certificate_of(binding) or {}
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
        "settings": _explicit(site, ("serverAutoStart",)),
        "root_settings": _explicit(manager.root_application(site), ("applicationPool",)),
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


def _restore_site(manager: iis.ServerManager, record: dict[str, Any]) -> None:
    """Restore-Site: Sites.Add (next free id), its own id when free, its settings and bindings."""
    site = manager.add_site(record["name"], record["physical_path"], site_id=int(record["id"]))
    _set_explicit(site, record["settings"])
    _set_explicit(manager.root_application(site), record["root_settings"])
    for binding in record["bindings"]:
        value = iis.Binding(binding["protocol"], binding["binding_information"], int(binding["ssl_flags"]))
        if binding["protocol"] == "https" and binding["certificate_hash"]:
            manager.add_binding(site, value, binding["certificate_hash"], binding["certificate_store"])
        else:
            manager.add_binding(site, value)


def _restore_runtime(manager: iis.ServerManager, found: dict[str, Any]) -> str | None:
    """Restore-RuntimeState, after the commit."""
    pool = found.get("pool")
    if (
        pool is not None
        and pool["state"] == "Stopped"
        and manager.find_pool(pool["name"]) is not None
        and object_state(lambda: manager.pool_state(pool["name"])) != "Stopped"
    ):
        manager.stop_pool(pool["name"])
    site = found.get("site")
    if site is None or manager.find_site(site["name"]) is None:
        return None
    now = object_state(lambda: manager.site_state(site["name"]))
    if site["state"] == "Stopped" and now != "Stopped":
        manager.stop_site(site["name"])
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
    mine = ownership.record_path(folder, str(spec["owner"]))
    found_path = ownership.found_path(folder)
    with ownership.host_lock():
        ownership.initialize(fs, folder)
        recorded_now = not ownership.exists(fs, mine)
        if recorded_now:
            ownership.write(fs, mine, {"owner": spec["owner"]})  # before anything is removed
        previous = str(spec["previous_owner"])
        if previous and previous != spec["owner"]:  # the resource's id changed: its record moves
            ownership.delete(fs, ownership.record_path(folder, previous))

        def configure(manager: iis.ServerManager) -> list[dict[str, Any]]:
            changes = []
            found = ownership.read(fs, found_path) or {}
            record = {"site": found.get("site"), "pool": found.get("pool")}
            site = manager.find_site(spec["site_name"])
            if site is not None:
                if record["site"] is None:
                    record["site"] = _site_record(manager, site)
                remove_site(manager, spec["site_name"])
                changes.append(change("default_site", "present", "absent"))
            pool = manager.find_pool(spec["pool_name"])
            if pool is not None:
                users = manager.applications_of_pool(str(pool.get("name")))
                if users:
                    raise ScriptStop(
                        fail(
                            "AppPoolInUse",
                            f"'{pool.get('name')}' is used by {', '.join(users)}; those applications were added "
                            "after installation, so the pool is kept: move them to another pool first",
                        )
                    )
                if record["pool"] is None:
                    record["pool"] = _pool_record(manager, pool)
                manager.remove_pool(spec["pool_name"])
                changes.append(change("default_pool", "present", "absent"))
            if changes:
                ownership.write(fs, found_path, record)  # before the commit
                manager.commit()
            return changes

        try:
            changes = iis.with_retries(fs.root, configure)
        except (ScriptStop, iis.IisError):
            # A removal that fails creates no resource: the record it wrote goes.
            if recorded_now:
                ownership.delete(fs, mine)
            raise
        state = _state(iis.ServerManager(fs.root), spec)
        found = ownership.read(fs, found_path)
        state["removed_site"] = found is not None and found.get("site") is not None
        state["removed_pool"] = found is not None and found.get("pool") is not None
        state["owners"] = len(ownership.records(fs, folder))
        return succeed(state, changes)


def _stock_site(spec: dict[str, Any]) -> dict[str, Any]:
    """remove.ps1's record of the site as IIS's installation creates it (a state from before owners)."""
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


@operation
def remove(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    if not iis.is_installed(fs.root):
        return not_installed()
    folder = _folder(spec)
    with ownership.host_lock():
        ownership.assert_trusted(fs, folder)
        recorded = fs.resolve(folder).is_dir()
        ownership.delete(fs, ownership.record_path(folder, str(spec["owner"])))
        others = len(ownership.records(fs, folder))
        found = ownership.read(fs, ownership.found_path(folder))
        if recorded and others:
            return succeed({**_state(iis.ServerManager(fs.root), spec), "other_owners": others})
        if not recorded:
            found = {"site": _stock_site(spec) if spec["restore_site"] else None, "pool": None}
        stock_pool = not recorded and bool(spec["restore_pool"])

        def restore(manager: iis.ServerManager) -> list[dict[str, Any]]:
            changes = []
            pool = found.get("pool") if found is not None else None
            if (stock_pool or pool is not None) and manager.find_pool(spec["pool_name"]) is None:
                added = manager.add_pool(spec["pool_name"])
                if not stock_pool:
                    _set_explicit(added, pool["settings"])  # type: ignore[index]
                changes.append(change("default_pool", "absent", "present"))
            site = found.get("site") if found is not None else None
            if site is not None and manager.find_site(spec["site_name"]) is None:
                _restore_site(manager, site)
                changes.append(change("default_site", "absent", "present"))
            if changes:
                manager.commit()
            return changes

        changes: list[dict[str, Any]] = iis.with_retries(fs.root, restore)
        manager = iis.ServerManager(fs.root)
        warning = _restore_runtime(manager, found) if found is not None else None
        state = _state(manager, spec)
        ownership.remove_folder(fs, folder)
        pool = found.get("pool") if found is not None else None
        if pool is not None and pool["settings"].get("processModel/identityType") in ("SpecificUser", "3"):
            note = (
                f"pool '{pool['name']}' is back with its user but not its password (never kept outside IIS): "
                "set it again"
            )
            warning = "; ".join(w for w in (warning, note) if w)
        state["restore_warning"] = warning
        return succeed(state, changes)


OPERATIONS = {
    "iis_default_site_removal/get": get,
    "iis_default_site_removal/set": set_,
    "iis_default_site_removal/remove": remove,
}

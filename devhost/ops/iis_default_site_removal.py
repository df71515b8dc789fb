"""SIMULATOR: model of providers/iis_default_site_removal/scripts/{get,set,remove}.ps1 on devhost.iis."""

from __future__ import annotations

from typing import Any

from devhost import iis
from devhost.fs import WindowsFs
from devhost.ops.envelope import Envelope, change, fail, operation, require_keys, succeed
from devhost.ops.iis_common import ScriptStop, not_installed, remove_site

_KEYS = {"site_name", "pool_name", "restore_site", "restore_pool"}


def _state(manager: iis.ServerManager, spec: dict[str, Any]) -> dict[str, Any]:
    site_present = manager.find_site(spec["site_name"]) is not None
    pool_present = manager.find_pool(spec["pool_name"]) is not None
    ensure = "present" if not site_present and not pool_present else "absent"
    return {"ensure": ensure, "site_present": site_present, "pool_present": pool_present}


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

    def configure(manager: iis.ServerManager) -> tuple[list[dict[str, Any]], bool, bool]:
        changes = []
        removed_site = removed_pool = False
        if manager.find_site(spec["site_name"]) is not None:
            remove_site(manager, spec["site_name"])
            removed_site = True
            changes.append(change("default_site", "present", "absent"))
        pool = manager.find_pool(spec["pool_name"])
        if pool is not None:
            users = manager.applications_of_pool(str(pool.get("name")))
            if users:
                raise ScriptStop(
                    fail(
                        "AppPoolInUse",
                        f"'{pool.get('name')}' is used by {', '.join(users)}; those applications were added after "
                        "installation, so the pool is kept: move them to another pool first",
                    )
                )
            manager.remove_pool(spec["pool_name"])
            removed_pool = True
            changes.append(change("default_pool", "present", "absent"))
        if changes:
            manager.commit()
        return changes, removed_site, removed_pool

    changes, removed_site, removed_pool = iis.with_retries(fs.root, configure)
    state = _state(iis.ServerManager(fs.root), spec)
    state["removed_site"] = removed_site
    state["removed_pool"] = removed_pool
    return succeed(state, changes)


@operation
def remove(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    if not iis.is_installed(fs.root):
        return not_installed()

    def restore(manager: iis.ServerManager) -> list[dict[str, Any]]:
        changes = []
        if spec["restore_pool"] and manager.find_pool(spec["pool_name"]) is None:
            manager.add_pool(spec["pool_name"])
            changes.append(change("default_pool", "absent", "present"))
        if spec["restore_site"] and manager.find_site(spec["site_name"]) is None:
            site = manager.add_site(spec["site_name"], iis.DEFAULT_SITE_PATH, site_id=1)
            manager.add_binding(site, iis.Binding("http", "*:80:"))
            changes.append(change("default_site", "absent", "present"))
        if changes:
            manager.commit()
        return changes

    changes: list[dict[str, Any]] = iis.with_retries(fs.root, restore)
    return succeed(_state(iis.ServerManager(fs.root), spec), changes)


OPERATIONS = {
    "iis_default_site_removal/get": get,
    "iis_default_site_removal/set": set_,
    "iis_default_site_removal/remove": remove,
}

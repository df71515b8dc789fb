"""SIMULATOR: model of providers/windows_feature/scripts/{get,set,remove}.ps1 on devhost.features."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devhost import features
from devhost.fs import WindowsFs
from devhost.ops.envelope import Envelope, change, fail, require_keys, succeed

_KEYS = {"names", "include_management_tools", "uninstall_on_delete"}


def _refusal(state_dir: Path, names: list[str]) -> Envelope | list[str]:
    """Assert-ServerManager and Resolve-FeatureName: the canonical names, or the script's failure."""
    if not features.is_server(state_dir):
        return fail(
            "ServerManagerUnavailable",
            "WindowsFeature needs Windows Server (Install-WindowsFeature of the ServerManager module); this host "
            f"runs '{features.os_caption(state_dir)}'. On a client OS use Enable-WindowsOptionalFeature instead.",
            prop="names",
            category="NotImplemented",
        )
    try:
        return features.canonical(names)
    except features.UnknownFeature as error:
        return fail("FeatureNameNotValid", str(error), prop="names", category="InvalidArgument")


def _state(state_dir: Path, names: list[str]) -> dict[str, Any]:
    present = features.installed(state_dir)
    below = {n for name in names for n in features.subtree(name) if n.lower() in present}
    return {
        "ensure": "present",
        "names": names,
        "installed_names": [n for n in names if n.lower() in present],
        "installed": sorted(below, key=str.lower),
        "restart_pending": bool(features.load(state_dir).get("restart_pending")),
    }


def get(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    names = _refusal(fs.root, spec["names"])
    return names if isinstance(names, Envelope) else succeed(_state(fs.root, names))


def set_(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    names = _refusal(fs.root, spec["names"])
    if isinstance(names, Envelope):
        return names
    before = _state(fs.root, names)
    missing = [n for n in names if n not in before["installed_names"]]
    if not missing and not spec["include_management_tools"]:
        return succeed(before)
    result = features.install(fs.root, names, include_management_tools=bool(spec["include_management_tools"]))
    after = _state(fs.root, names)
    if result.restart_needed:
        after["restart_pending"] = True
    return succeed(after, [change("installed", None, n) for n in result.features])


def remove(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    if not spec["uninstall_on_delete"]:
        return succeed({"ensure": "present", "names": spec["names"], "kept": True})
    names = _refusal(fs.root, spec["names"])
    if isinstance(names, Envelope):
        return names
    before = _state(fs.root, names)
    if not before["installed_names"]:
        return succeed(before)
    result = features.uninstall(fs.root, before["installed_names"])
    after = _state(fs.root, names)
    if result.restart_needed:
        after["restart_pending"] = True
    return succeed(after, [change("installed", n, None) for n in result.features])


OPERATIONS = {
    "windows_feature/get": get,
    "windows_feature/set": set_,
    "windows_feature/remove": remove,
}

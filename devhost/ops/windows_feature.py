"""SIMULATOR: model of providers/windows_feature/scripts/{get,set,remove}.ps1 on devhost.features."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devhost import features
from devhost.fs import WindowsFs
from devhost.ops.envelope import Envelope, change, fail, require_keys, succeed
from devhost.ps51 import ScriptFact

_KEYS = {"names", "include_management_tools", "uninstall_on_delete"}
_ALL = ("windows_feature/get", "windows_feature/set", "windows_feature/remove")
SCRIPT_FACTS = (
    ScriptFact(
        _ALL,
        r"\[bool\]\$Feature\.Installed -or \[string\]\$Feature\.InstallState -eq 'InstallPending'",
        "an InstallPending feature has Installed = $false until the restart (ServerManager InstallState); "
        "the model counts it as installed with restart_pending",
    ),
    ScriptFact(
        _ALL,
        r"\$Catalog\[\$_\]\.Installed|\$catalog\[\$_\]\.Installed|if \(\$feature\.Installed\)",
        "Installed alone misses InstallPending features (they would show as drift until a restart)",
        present=False,
    ),
    ScriptFact(
        ("windows_feature/set", "windows_feature/remove"),
        r"\[string\]\$Result\.RestartNeeded -ne 'No'",
        "RestartNeeded is a RestartState (Yes, No, Maybe); Maybe must count as a pending restart",
    ),
    ScriptFact(
        ("windows_feature/set",),
        r"try \{\n    \$result = Install-WindowsFeature @parameters\n\} catch \{\n"
        r"    Stop-Operation -Id 'FeatureInstallFailed'",
        "a failed install is an error record, terminating under 'Stop' before $result.Success can be read",
    ),
    ScriptFact(
        ("windows_feature/remove",),
        r"try \{\n    \$result = Uninstall-WindowsFeature -Name \$installed\n\} catch \{\n"
        r"    Stop-Operation -Id 'FeatureUninstallFailed'",
        "a failed uninstall is an error record, terminating under 'Stop'",
    ),
)


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
    present = features.installed(state_dir)  # Test-FeatureInstalled: Installed or InstallPending
    data = features.load(state_dir)
    below = {n for name in names for n in features.subtree(name) if n.lower() in present}
    return {
        "ensure": "present",
        "names": names,
        "installed_names": [n for n in names if n.lower() in present],
        "installed": sorted(below, key=str.lower),
        # Get-FeatureState: any InstallPending/UninstallPending feature, or the CBS RebootPending key.
        "restart_pending": bool(
            data.get("restart_pending") or data.get("install_pending") or data.get("uninstall_pending")
        ),
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
    try:
        result = features.install(fs.root, names, include_management_tools=bool(spec["include_management_tools"]))
    except features.FeatureInstallError as error:
        return fail(
            "FeatureInstallFailed",
            f"Install-WindowsFeature {', '.join(names)} failed: {error} See C:\\Windows\\Logs\\DISM\\dism.log",
            prop="names",
        )
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

"""SIMULATOR: model of providers/iis_prerequisites/scripts/get.ps1 on devhost.iis (registry and applicationHost)."""

from __future__ import annotations

from typing import Any

from devhost import iis
from devhost.fs import WindowsFs
from devhost.ops.envelope import Envelope, fail, require_keys, succeed

_KEYS = {"minimum_hosting_bundle", "minimum_iis_major"}


def _version(text: str) -> tuple[int, ...] | None:
    """[version]::TryParse: 2 to 4 numeric parts."""
    parts = text.split(".")
    if not 2 <= len(parts) <= 4 or not all(p.isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts)


def _compare_key(version: tuple[int, ...]) -> tuple[int, ...]:
    # System.Version compares missing build/revision as -1 (lower than 0).
    return version + (-1,) * (4 - len(version))


def get(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    problems = []
    iis_version = None
    inetstp = iis.registry_key(fs.root, iis.INETSTP)
    if inetstp is not None and "MajorVersion" in inetstp:
        major = int(inetstp["MajorVersion"])
        iis_version = f"{major}.{int(inetstp.get('MinorVersion', 0))}"
        if major < int(spec["minimum_iis_major"]):
            problems.append(
                f"IIS {iis_version} is too old: the agent needs IIS {spec['minimum_iis_major']}.0 or newer "
                "(Windows Server 2016+)"
            )
    else:
        problems.append("IIS is not installed: install the Web-Server feature (and Application Initialization)")

    best: tuple[int, ...] | None = None
    best_text = None
    for family in iis.registry_subkeys(fs.root, iis.ASPNETCORE_SHARED_FRAMEWORK):
        for release in iis.registry_subkeys(fs.root, f"{iis.ASPNETCORE_SHARED_FRAMEWORK}\\{family}"):
            parsed = _version(release)
            if parsed is not None and (best is None or _compare_key(parsed) > _compare_key(best)):
                best, best_text = parsed, release
    minimum = _version(spec["minimum_hosting_bundle"])
    assert minimum is not None, "the model validates minimum_hosting_bundle"
    too_old = best is not None and _compare_key(best) < _compare_key(minimum)
    if best is None:
        problems.append(
            f"the .NET Hosting Bundle (ASP.NET Core Runtime {spec['minimum_hosting_bundle']} or newer) is not "
            "installed: install it from https://dotnet.microsoft.com/download/dotnet"
        )
    elif too_old:
        problems.append(
            f"the .NET Hosting Bundle {best_text} is older than {spec['minimum_hosting_bundle']}: install a newer one"
        )

    module_present = False
    if iis_version is not None:
        modules = {m.lower() for m in iis.ServerManager(fs.root).global_modules()}
        module_present = iis.ASPNETCORE_MODULE.lower() in modules
        if not module_present and best is not None:
            problems.append(
                "the AspNetCoreModuleV2 IIS module is missing: repair the .NET Hosting Bundle (it was installed "
                "before IIS, so the AspNetCore module is missing); run its installer again and choose Repair"
            )
        elif not module_present:
            problems.append("the AspNetCoreModuleV2 IIS module is missing: install the .NET Hosting Bundle after IIS")

    if problems:
        return fail(
            "PrerequisitesNotMet",
            "; ".join(problems),
            prop="minimum_hosting_bundle" if too_old else None,
            category="NotInstalled",
        )
    return succeed(
        {
            "ensure": "present",
            "iis_version": iis_version,
            "hosting_bundle_version": best_text,
            "aspnetcore_module_present": module_present,
        }
    )


OPERATIONS = {"iis_prerequisites/get": get}

"""SIMULATOR: model of providers/framework/scripts/machine_identity.ps1 on devhost.machine."""

from __future__ import annotations

import re
from typing import Any

from devhost import machine
from devhost.fs import WindowsFs
from devhost.ops.envelope import Envelope, fail, require_keys, succeed
from devhost.ps51 import ScriptFact

_OP = ("framework/machine_identity",)
SCRIPT_FACTS = (
    ScriptFact(
        _OP,
        re.escape(
            "[Microsoft.Win32.RegistryKey]::OpenBaseKey([Microsoft.Win32.RegistryHive]::LocalMachine, "
            "[Microsoft.Win32.RegistryView]::Registry64)"
        ),
        "MachineGuid exists in the 64-bit registry view only: a 32-bit powershell.exe reading HKLM:\\SOFTWARE "
        "is redirected to WOW6432Node, where it is absent (learn.microsoft.com, Registry Keys Affected by WOW64); "
        "the model reads the 64-bit value",
    ),
    ScriptFact(
        _OP,
        r"OpenSubKey\('SOFTWARE\\Microsoft\\Cryptography', \$false\)",
        "the key is opened read-only: the script runs during preview and must never write",
    ),
    ScriptFact(
        _OP,
        r"machine_guid = \$guid\.Trim\(\)\.ToLowerInvariant\(\)",
        "the model answers the value lower-cased, as the script normalizes it",
    ),
    ScriptFact(_OP, r"Set-ItemProperty|SetValue\(|CreateSubKey", "reading only: preview runs it", present=False),
)


def get(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, set())
    guid = machine.machine_guid(fs.root)
    if guid is None or not guid.strip():
        return fail(
            "MachineGuidMissing",
            "HKLM\\SOFTWARE\\Microsoft\\Cryptography has no MachineGuid value, so this host cannot say which machine "
            "it is; a host whose address or port changed is then taken as another machine. Windows setup writes this "
            "value: check the registry (reg query HKLM\\SOFTWARE\\Microsoft\\Cryptography /v MachineGuid) or run "
            "sysprep /generalize on a cloned image.",
            category="ObjectNotFound",
        )
    return succeed({"machine_guid": guid.strip().lower()})


OPERATIONS = {"framework/machine_identity": get}

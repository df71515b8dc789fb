"""SIMULATOR: model of providers/framework/scripts/machine_identity.ps1 on devhost.machine: the MachineGuid, the
computer name and the SMBIOS UUID (board placeholders answered as they are), and the WMI failures it names."""

from __future__ import annotations

import re
from typing import Any

from devhost import machine
from devhost.fs import WindowsFs
from devhost.hooks import Knobs, sim_dir
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
    ScriptFact(
        _OP,
        r"\$computerName = \[Environment\]::MachineName\n",
        "the computer name is the NetBIOS name GetComputerName returns, as set (machine.computer_name), unchanged",
    ),
    ScriptFact(
        _OP,
        r"try \{\s+\$products = @\(Get-CimInstance -ClassName Win32_ComputerSystemProduct -Property UUID "
        r"-OperationTimeoutSec 15\)\s+\} catch \{\s+\$wmiProblem = \$_\.Exception\.Message\s+\}\s+"
        r"if \(\$null -ne \$wmiProblem\) \{\s+Stop-Operation -Id 'SmbiosUuidUnreadable'",
        "a Win32_ComputerSystemProduct query that fails (CimException, terminating under EAP=Stop) is "
        "SmbiosUuidUnreadable, never a UUID not known (knob cim_faults, on Win32_ComputerSystemProduct)",
    ),
    ScriptFact(
        _OP,
        r"if \(\$products\.Count -ne 1 -or \$products\[0\]\.UUID -isnot \[string\] -or "
        r"\[string\]::IsNullOrWhiteSpace\(\$products\[0\]\.UUID\)\) \{\s+"
        r"(?:[^\n]*\n){2}\s+Stop-Operation -Id 'SmbiosUuidUnreadable'[^\n]*\n[^\n]*\n[^\n]*\n\}\s+"
        r"\$uuid = \$products\[0\]\.UUID\.Trim\(\)\.ToLowerInvariant\(\)\n",
        "the UUID is answered lower-cased as reported, placeholders (all zeros, all FF) included; no instance, "
        "several, or no UUID string, an empty or blank one too, is SmbiosUuidUnreadable, as the model does",
    ),
    ScriptFact(
        _OP,
        r"machine_guid = \$guid\.Trim\(\)\.ToLowerInvariant\(\)\s+computer_name = \$computerName\s+"
        r"smbios_uuid = \$uuid\s+\}",
        "the answer carries the three fields the model answers, by these names",
    ),
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
    fault = Knobs(sim_dir(fs.root) / "knobs.json").take_fault("Win32_ComputerSystemProduct", key="cim_faults")
    if fault is not None and fault.get("fails", True):
        return fail(
            "SmbiosUuidUnreadable",
            "Win32_ComputerSystemProduct could not be read (devhost (simulator) injected WMI fault), so this host "
            "cannot say which machine it is. Check that the Windows Management Instrumentation service (winmgmt) "
            "runs and answers: Get-CimInstance -ClassName Win32_ComputerSystemProduct.",
            category="ReadError",
        )
    reported = machine.smbios_uuid(fs.root)
    # The firmware states no UUID, or an empty or blank one: the script's one Win32_ComputerSystemProduct instance
    # has no UUID string to answer ([string]::IsNullOrWhiteSpace tests Char.IsWhiteSpace; str.strip removes that
    # whitespace and the ASCII separators U+001C-U+001F too, which no board writes in a UUID).
    if reported is None or not reported.strip():
        return fail(
            "SmbiosUuidUnreadable",
            "Win32_ComputerSystemProduct answered one instance whose UUID was missing or empty, where Windows has "
            "exactly one with a UUID, so this host cannot say which machine it is. Check WMI (winmgmt) on it: "
            "Get-CimInstance -ClassName Win32_ComputerSystemProduct | Select-Object UUID.",
            category="ReadError",
        )
    return succeed(
        {
            "machine_guid": guid.strip().lower(),
            # ([Environment]::MachineName: as set, no case change)
            "computer_name": machine.computer_name(fs.root),
            "smbios_uuid": reported.strip().lower(),
        }
    )


OPERATIONS = {"framework/machine_identity": get}

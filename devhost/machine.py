"""SIMULATOR: the identity of the simulated Windows installation, HKLM\\SOFTWARE\\Microsoft\\Cryptography MachineGuid.

Windows setup writes MachineGuid once per installation (a lower-case GUID without braces, REG_SZ) and
`sysprep /generalize` writes a new one; nothing else changes it, so it is the same whatever address or
name the machine is reached by (learn.microsoft.com, "Sysprep (Generalize) a Windows installation":
generalize removes computer-specific information; pypsrp/ansible users read this value to identify a host).
It lives in the 64-bit registry view only (WOW64 redirects SOFTWARE for 32-bit processes).
"""

from __future__ import annotations

import uuid
from pathlib import Path

from devhost import iis

CRYPTOGRAPHY = "HKLM:\\SOFTWARE\\Microsoft\\Cryptography"


def install_identity(state_dir: Path) -> str:
    """What Windows setup leaves: a MachineGuid, created once for this simulated installation (its state
    folder) and kept across restarts of the simulator."""
    existing = machine_guid(state_dir)
    if existing is not None:
        return existing
    guid = str(uuid.uuid4())
    values = iis.registry_key(state_dir, CRYPTOGRAPHY) or {}
    iis.set_registry_key(state_dir, CRYPTOGRAPHY, {**values, "MachineGuid": guid})
    return guid


def machine_guid(state_dir: Path) -> str | None:
    values = iis.registry_key(state_dir, CRYPTOGRAPHY) or {}
    guid = values.get("MachineGuid")
    return guid if isinstance(guid, str) else None


def generalize(state_dir: Path) -> str:
    """`sysprep /generalize`: a new MachineGuid (the tests' way to make a clone another machine)."""
    iis.set_registry_key(state_dir, CRYPTOGRAPHY, None)
    return install_identity(state_dir)

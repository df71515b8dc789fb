"""SIMULATOR: the identity of the simulated Windows machine, as providers/framework/scripts/machine_identity.ps1
reads it: its installation's MachineGuid, its computer name and its board's SMBIOS system UUID.

- MachineGuid (HKLM\\SOFTWARE\\Microsoft\\Cryptography, REG_SZ, a lower-case GUID without braces): Windows setup
  writes it once per installation and `sysprep /generalize` writes a new one; nothing else changes it, so it is the
  same whatever address or name the machine is reached by (learn.microsoft.com, "Sysprep (Generalize) a Windows
  installation": generalize removes computer-specific information). It lives in the 64-bit registry view only
  (WOW64 redirects SOFTWARE for 32-bit processes). It belongs to the DISK: a copy of it keeps the value.
- The computer name (HKLM\\SYSTEM\\CurrentControlSet\\Control\\ComputerName\\ComputerName, value ComputerName; the
  NetBIOS name, at most 15 characters, that GetComputerName and so [Environment]::MachineName return, read from the
  registry at startup, learn.microsoft.com GetComputerNameW). Setup gives a random one when none is set (unattend
  Microsoft-Windows-Shell-Setup ComputerName `*`); it is on the disk too, but a copy is renamed to be joined to a
  domain beside its source. Renames (which take effect at the next start) are not modelled.
- The SMBIOS system UUID (Win32_ComputerSystemProduct.UUID, SMBIOS type 1, shown upper-case): the FIRMWARE's, not
  the disk's. A hypervisor gives each virtual machine its own (Hyper-V: the VM's BIOSGUID, part of its configuration
  and apart from its virtual disks, learn.microsoft.com archive, John Howard "How to uniquely identify a virtual
  machine in Hyper-V"; VMware: uuid.bios, new for a VM "copied", VMware KB 1541), so the simulator keeps it beside
  the state, in _sim/firmware.json, not in the simulated registry. Some boards report all zeros (what Windows shows
  when the firmware gives none, learn.microsoft.com Win32_ComputerSystemProduct) or all FF (DMTF DSP0134 7.2.1:
  "not currently present in the system, but it can be set"): `set_smbios_uuid` models such a board.
"""

from __future__ import annotations

import json
import secrets
import string
import uuid
from pathlib import Path

from devhost import iis
from devhost.hooks import sim_dir

CRYPTOGRAPHY = "HKLM:\\SOFTWARE\\Microsoft\\Cryptography"
COMPUTER_NAME_KEY = "HKLM:\\SYSTEM\\CurrentControlSet\\Control\\ComputerName\\ComputerName"
ALL_FF = "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF"
ALL_ZERO = "00000000-0000-0000-0000-000000000000"


def install_identity(state_dir: Path) -> str:
    """What Windows setup (and the machine it was installed on) leaves: a MachineGuid, a computer name and a board
    UUID, each created once for this simulated machine (its state folder) and kept across restarts of the
    simulator; a state folder made before names and UUIDs were modelled gets the missing ones. Returns the GUID."""
    guid = machine_guid(state_dir)
    if guid is None:
        guid = str(uuid.uuid4())
        values = iis.registry_key(state_dir, CRYPTOGRAPHY) or {}
        iis.set_registry_key(state_dir, CRYPTOGRAPHY, {**values, "MachineGuid": guid})
    if computer_name(state_dir) is None:
        # The form Windows Server setup gives a machine it names itself: WIN- and 11 random characters.
        alphabet = string.ascii_uppercase + string.digits
        set_computer_name(state_dir, "WIN-" + "".join(secrets.choice(alphabet) for _ in range(11)))
    if not _firmware_file(state_dir).exists():
        set_smbios_uuid(state_dir, str(uuid.uuid4()).upper())
    return guid


def machine_guid(state_dir: Path) -> str | None:
    values = iis.registry_key(state_dir, CRYPTOGRAPHY) or {}
    guid = values.get("MachineGuid")
    return guid if isinstance(guid, str) else None


def computer_name(state_dir: Path) -> str | None:
    values = iis.registry_key(state_dir, COMPUTER_NAME_KEY) or {}
    name = values.get("ComputerName")
    return name if isinstance(name, str) else None


def set_computer_name(state_dir: Path, name: str) -> None:
    """Rename the computer to ``name`` (a DNS host name): Windows keeps its NetBIOS name, the first 15 characters
    upper-cased (learn.microsoft.com, "Naming conventions in Active Directory for computers, domains, sites, and
    OUs": NetBIOS computer names are 15 characters at most), and [Environment]::MachineName answers that."""
    values = iis.registry_key(state_dir, COMPUTER_NAME_KEY) or {}
    iis.set_registry_key(state_dir, COMPUTER_NAME_KEY, {**values, "ComputerName": name[:15].upper()})


def smbios_uuid(state_dir: Path) -> str | None:
    """The UUID as Win32_ComputerSystemProduct reports it (placeholders included), None when no state says one."""
    try:
        value = json.loads(_firmware_file(state_dir).read_text(encoding="utf-8")).get("smbios_uuid")
    except FileNotFoundError:
        return None
    return value if isinstance(value, str) else None


def set_smbios_uuid(state_dir: Path, value: str | None) -> None:
    """The board's UUID (None: Win32_ComputerSystemProduct.UUID null; "" or blank: an empty string, refused as
    null is); ALL_FF or ALL_ZERO model a board that gives no real one (answered as they are)."""
    path = _firmware_file(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"smbios_uuid": value}), encoding="utf-8")


def generalize(state_dir: Path) -> str:
    """`sysprep /generalize`: a new MachineGuid (the tests' way to make a clone another machine)."""
    iis.set_registry_key(state_dir, CRYPTOGRAPHY, None)
    return install_identity(state_dir)


def clone_without_sysprep(source: Path, clone: Path, *, keep_name: bool = False, keep_uuid: bool = False) -> None:
    """Make ``clone`` a copy of ``source``'s disk not generalized: the same MachineGuid. As usually done, the copy
    is renamed (``keep_name`` False) and runs in a VM of its own, which has its own SMBIOS UUID (``keep_uuid``
    False); ``keep_name`` and ``keep_uuid`` model a copy left with its source's name, in a VM whose configuration
    was copied with its BIOS UUID (VMware "I moved it", uuid.action = keep)."""
    guid = machine_guid(source)
    if guid is None:
        raise ValueError(f"{source} has no MachineGuid to copy")
    values = iis.registry_key(clone, CRYPTOGRAPHY) or {}
    iis.set_registry_key(clone, CRYPTOGRAPHY, {**values, "MachineGuid": guid})
    name = computer_name(source)
    if keep_name and name is not None:
        set_computer_name(clone, name)
    if keep_uuid:
        set_smbios_uuid(clone, smbios_uuid(source))


def _firmware_file(state_dir: Path) -> Path:
    return sim_dir(state_dir) / "firmware.json"

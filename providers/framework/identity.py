"""Which Windows machine answers at a connection's address: its MachineGuid, computer name and SMBIOS UUID,
asked once per endpoint.

``diff`` asks when a resource's declared host address or port changed, to tell a new spelling of the same
machine (an IP for its name, ``localhost``, an FQDN) from a real move. The answer is kept per endpoint
(address, effective port) for the life of the provider process, in this module (provider objects are
pickled into the state and hold no state), so a preview of many resources on one host asks it once.

The MachineGuid alone is not enough: disks cloned without ``sysprep /generalize`` share it (review-respell M2),
and a move between two such clones would be taken for the same machine (nothing created on the new one). Such a
clone is renamed to live beside its source, and a hypervisor gives each VM its own SMBIOS UUID: two addresses
are one machine only when all three agree (the UUID as reported, placeholders included; see machine_identity.ps1).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import pulumi
from pydantic import ValidationError

from providers.scripting import HostOperationFailed, ScriptOutputInvalid, ScriptRef, run_script
from providers.transport.connection import HostConnection
from providers.transport.errors import WinRMError

_log = logging.getLogger(__name__)

MACHINE_IDENTITY = ScriptRef("providers.framework", "machine_identity")

Endpoint = tuple[str, int]


@dataclass(frozen=True)
class Identity:
    """Who answers at an endpoint, or why it could not be asked (``guid`` None, ``problem`` set). ``smbios_uuid`` is
    as the board reports it, its placeholders (all zeros, all FF) included."""

    guid: str | None
    problem: str | None = None
    computer_name: str | None = None
    smbios_uuid: str | None = None

    def describe(self) -> str:
        return f"MachineGuid {self.guid}, computer name {self.computer_name}, SMBIOS UUID {self.smbios_uuid}"


def differences(old: Identity, new: Identity) -> list[str]:
    """What tells the machine at the old address from the one at the new (empty: they are one machine). The
    computer name is a NetBIOS name, so case aside. Both answers come from the same script, so one machine gives
    the same through both: any difference is two machines, a board placeholder against a real UUID too."""
    found = []
    if old.guid != new.guid:
        found.append(f"MachineGuid {old.guid} / {new.guid}")
    if (old.computer_name or "").casefold() != (new.computer_name or "").casefold():
        found.append(f"computer name {old.computer_name} / {new.computer_name}")
    if old.smbios_uuid != new.smbios_uuid:
        found.append(f"SMBIOS UUID {old.smbios_uuid} / {new.smbios_uuid}")
    return found


def explain(old_label: str, new_label: str, old: Identity, new: Identity, found: list[str]) -> None:
    """Say once per pair of addresses (not once per resource) what the diff concluded and from which fields: the
    CLI shows a dynamic provider's pulumi.log lines among the run's diagnostics. A clone (one MachineGuid, another
    name or board) is a warning: the one case where the GUID alone would have said the opposite."""
    with _locks_guard:
        if (old_label, new_label) in _explained:
            return
        _explained.add((old_label, new_label))
    if not found:
        pulumi.log.info(
            f"{new_label} and {old_label} are one machine ({old.describe()}): its resources are updated to the "
            "new address, nothing is sent to it"
        )
    elif old.guid == new.guid:
        pulumi.log.warn(
            f"{new_label} and {old_label} share MachineGuid {old.guid} (copies of one Windows installation not "
            f"generalized with sysprep) but differ in {'; '.join(found)}: another machine, so its resources move "
            f"(created through {new_label}, then removed through {old_label})"
        )
    else:
        pulumi.log.info(f"{new_label} is another machine than {old_label} ({'; '.join(found)}): its resources move")


_identities: dict[Endpoint, Identity] = {}
_locks: dict[Endpoint, threading.Lock] = {}
_locks_guard = threading.Lock()
_explained: set[tuple[str, str]] = set()


class HostIdentityUnknown(Exception):
    """A host's address or port changed and one of the two addresses could not say which machine it is.

    Guessing is never safe here: taken for the same machine when it is another, nothing would be created on the
    new one; taken for another machine when it is the same, the objects would be adopted through the new
    address and then deleted through the old one."""

    error_id = "HostIdentityUnknown"

    def __init__(self, old_label: str, new_label: str, which: str, problem: str) -> None:
        super().__init__(
            f"[{self.error_id}] the host's address changed from {old_label} to {new_label}, but {which} did not "
            f"say which machine it is ({problem}), so it cannot be told whether this is the same machine written "
            "another way (an update that changes nothing on it) or another machine (a move: create there, delete "
            "here). Fix: make both addresses answer (check the address, port, credentials and that WinRM runs) "
            "and run again; if the machine at the old address is gone for good, take its resources out of the "
            "state first (`pulumi state delete <urn>`), then the next `up` creates them on the new host."
        )


def endpoint(conn: HostConnection) -> Endpoint:
    """Where a connection leads: the address as written (case aside) and the port actually used."""
    return conn.host.lower(), conn.effective_port


def machine_identity(connection: dict[str, Any]) -> Identity:
    """The identity of the machine at ``connection`` (a connection as the state records it). Only read: it runs
    in preview. A connection that cannot be used (invalid, unreachable, refused) gives ``guid`` None, and that
    answer is kept too, so an unreachable endpoint costs one time-out per run, not one per resource."""
    try:
        conn = HostConnection.model_validate(connection)
    except ValidationError as error:
        return Identity(None, f"the connection settings are not valid: {error.errors()[0].get('msg')}")
    key = endpoint(conn)
    with _locks_guard:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:  # resources on one host diff in parallel: one asks, the others wait for its answer
        known = _identities.get(key)
        if known is None:
            known = _identities[key] = _ask(conn)
        return known


def _ask(conn: HostConnection) -> Identity:
    try:
        result = run_script(conn, MACHINE_IDENTITY, {}, resource="the host's identity")
    except (WinRMError, HostOperationFailed, ScriptOutputInvalid) as error:
        _log.warning("could not ask %s which machine it is: %s", conn.label, error)
        return Identity(None, str(error))
    guid, name, uuid = (result.state.get(key) for key in ("machine_guid", "computer_name", "smbios_uuid"))
    if not isinstance(guid, str) or not guid or not isinstance(name, str) or not name:
        return Identity(None, f"{conn.label} answered without a machine_guid and computer_name: {result.state!r}")
    if uuid is not None and (not isinstance(uuid, str) or not uuid):
        return Identity(None, f"{conn.label} answered an smbios_uuid that is not a UUID: {result.state!r}")
    return Identity(guid.lower(), computer_name=name, smbios_uuid=uuid.lower() if uuid else None)


def forget_identities() -> None:
    """Drop every answer kept (tests; a host re-imaged while a provider process runs is not expected)."""
    with _locks_guard:
        _identities.clear()
        _locks.clear()
        _explained.clear()

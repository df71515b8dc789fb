"""Which Windows machine answers at a connection's address: its MachineGuid, asked once per endpoint.

``diff`` asks when a resource's declared host address or port changed, to tell a new spelling of the same
machine (an IP for its name, ``localhost``, an FQDN) from a real move. The answer is kept per endpoint
(address, effective port) for the life of the provider process, in this module (provider objects are
pickled into the state and hold no state), so a preview of many resources on one host asks it once.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from providers.scripting import HostOperationFailed, ScriptOutputInvalid, ScriptRef, run_script
from providers.transport.connection import HostConnection
from providers.transport.errors import WinRMError

_log = logging.getLogger(__name__)

MACHINE_IDENTITY = ScriptRef("providers.framework", "machine_identity")

Endpoint = tuple[str, int]


@dataclass(frozen=True)
class Identity:
    """The machine's GUID, or why it could not be asked (``guid`` None)."""

    guid: str | None
    problem: str | None = None


_identities: dict[Endpoint, Identity] = {}
_locks: dict[Endpoint, threading.Lock] = {}
_locks_guard = threading.Lock()


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
    guid = result.state.get("machine_guid")
    if not isinstance(guid, str) or not guid:
        return Identity(None, f"{conn.label} answered without a machine_guid: {result.state!r}")
    return Identity(guid.lower())


def forget_identities() -> None:
    """Drop every answer kept (tests; a host re-imaged while a provider process runs is not expected)."""
    with _locks_guard:
        _identities.clear()
        _locks.clear()

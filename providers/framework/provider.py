"""The generic dynamic provider: Pulumi's lifecycle mapped onto get / set / remove scripts.

Provider objects are pickled by reference into the state (``__provider``), so they hold no
instance state: sessions live in ``providers.transport.session``'s module-level registry.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from providers.framework.checks import contains_unknown, validate_inputs
from providers.framework.identity import HostIdentityUnknown, differences, explain, machine_identity
from providers.framework.model import CONNECTION, ResourceModel
from providers.scripting import OperationResult, ScriptRef, run_script
from providers.transport.connection import port_in_use

PROVIDER_KEY = "__provider"


def unnamed(failures: list[CheckFailure]) -> list[CheckFailure]:
    """Put the property name into the reason instead of the failure's property field.

    The engine prints a named property's value next to the reason ("property connection value
    {...} has a problem"), in plain text even when the value is or contains a secret (a
    connection's password, secret content, a PFX). Whether a value is secret is not visible to a
    dynamic provider, so no failure names its property in that field.
    """
    return [CheckFailure("", f"{f.property}: {f.reason}") if f.property else f for f in failures]


def _location(connection: Any) -> tuple[str, int] | None:
    """Where a connection leads as declared: the address (case aside) and the port actually used, so that
    ``port`` unset and the default port written out (5986 with HTTPS, 5985 without) are one place. None while
    the address or port is not known yet (preview)."""
    if not isinstance(connection, dict):
        return None
    host, port, use_https = connection.get("host"), connection.get("port"), connection.get("use_https", True)
    if contains_unknown(host) or contains_unknown(port) or contains_unknown(use_https):
        return None
    # On the dict the state holds, not a HostConnection: it may not validate any more (a CA bundle gone).
    return str(host or "").lower(), port_in_use(int(port) if port else None, use_https is not False)


def _same_machine(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether the old and the new address reach one machine: the same MachineGuid, computer name and SMBIOS UUID
    (as reported, placeholders included; ``identity.differences``), so that a clone not generalized with sysprep, which
    shares the GUID, is another machine. Raises ``HostIdentityUnknown`` when either address cannot say: guessing
    either way could lose objects or leave them on the old machine (see that error). A new connection not known
    yet (preview) is a move, as before."""
    if contains_unknown(new):
        return False
    answers = []
    for which, connection in (("the old address", old), ("the new address", new)):
        answer = machine_identity(connection)
        if answer.guid is None:
            raise HostIdentityUnknown(_label(old), _label(new), which, answer.problem or "no answer")
        answers.append(answer)
    found = differences(answers[0], answers[1])
    explain(_label(old), _label(new), answers[0], answers[1], found)
    return not found


def _label(connection: dict[str, Any]) -> str:
    location = _location(connection)
    return f"{location[0]}:{location[1]}" if location else str(connection.get("host"))


def connection_change(olds: dict[str, Any], news: dict[str, Any]) -> tuple[bool, bool]:
    """(moved, reach): ``moved`` when the object is declared on another machine (a replacement: created
    there, then deleted here); ``reach`` when only the way to reach the same machine changed (user, password,
    transport, HTTPS, CA bundle, or the address and port spelt another way for the same machine): an update that
    changes nothing on the host but puts the new connection in the state, so later refresh and destroy use it.

    The same address and effective port are the same place. A different address or port is asked for the
    machine's identity through both connections (``providers.framework.identity``): taking a new spelling of
    the same machine for a move would create the objects (adopting those already there) and then delete them
    through the old address."""
    old, new = olds.get(CONNECTION), news.get(CONNECTION)
    if old == new:
        return False, False
    old_location, new_location = _location(old), _location(new)
    if new_location is None or old_location is None:
        moved = True
    elif old_location == new_location:
        moved = False
    else:
        assert isinstance(old, dict) and isinstance(new, dict)  # (as _location checked)
        moved = not _same_machine(old, new)
    return moved, not moved


class WindowsResourceProvider(ResourceProvider):
    """Subclasses set ``model`` and ``package`` and map host state with the two hooks below."""

    model: ClassVar[type[ResourceModel]]
    package: ClassVar[str]
    output_keys: ClassVar[tuple[str, ...]] = ()

    # -- hooks -----------------------------------------------------------------------------

    def actual_properties(self, spec: ResourceModel, state: dict[str, Any]) -> dict[str, Any]:
        """The desired-property values the host really has (what ``refresh`` compares)."""
        return {key: state[key] for key in spec.desired_keys() if key in state}

    def outputs(self, spec: ResourceModel, state: dict[str, Any]) -> dict[str, Any]:
        """Values only the host knows (thumbprints, hashes, account names)."""
        return {key: state.get(key) for key in self.output_keys}

    # -- Pulumi lifecycle ------------------------------------------------------------------

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        raw = {k: v for k, v in news.items() if k != PROVIDER_KEY and k not in self.output_keys}
        _spec, failures, inputs = validate_inputs(self.model, raw)
        return CheckResult(inputs, unnamed(failures))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # Only properties of the Windows object count: a new WinRM password is not a change of the file.
        changed = [
            key
            for key in self.model.desired_keys()
            if contains_unknown(news.get(key)) or olds.get(key) != news.get(key)
        ]
        replaces = [key for key in changed if key in self.model.replace_keys()]
        moved, reach = connection_change(olds, news)
        if moved:
            replaces.append(CONNECTION)
        return DiffResult(changes=bool(changed) or moved or reach, replaces=replaces, delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        spec = self._spec(props)
        result = self._run(spec, "set")
        return CreateResult(spec.resource_id(), self._outs(spec, result))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        spec = self._spec(props)
        result = self._run(spec, "get")
        if result.state.get("ensure") == "absent":
            return ReadResult("", {})  # gone from the host: refresh drops it, the next up recreates it
        actual = self.actual_properties(spec, result.state)
        inputs = {**spec.model_dump(mode="json"), **actual}
        return ReadResult(id_, {**inputs, **self.outputs(spec, result.state)}, inputs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        if self._only_reach_changed(olds, news):
            return UpdateResult({**olds, **self._spec(news).model_dump(mode="json")})
        return self.apply_update(id_, olds, news)

    def apply_update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Bring the object on the host to ``news`` (subclasses extend this, not ``update``)."""
        spec = self._spec(news)
        return UpdateResult(self._outs(spec, self._run(spec, "set")))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        self._run(self._spec(props), "remove")

    # -- internals -------------------------------------------------------------------------

    def _only_reach_changed(self, olds: dict[str, Any], news: dict[str, Any]) -> bool:
        moved, reach = connection_change(olds, news)
        return reach and not moved and all(olds.get(key) == news.get(key) for key in self.model.desired_keys())

    def _spec(self, props: dict[str, Any]) -> ResourceModel:
        known = set(self.model.model_fields)
        return self.model.model_validate({k: v for k, v in props.items() if k in known})

    def _run(self, spec: ResourceModel, operation: str) -> OperationResult:
        return run_script(
            spec.connection,
            ScriptRef(self.package, operation),
            spec.script_input(),
            resource=f"{spec.kind} '{spec.resource_id()}'",
        )

    def _outs(self, spec: ResourceModel, result: OperationResult) -> dict[str, Any]:
        return {**spec.model_dump(mode="json"), **self.outputs(spec, result.state)}


__all__ = ["CONNECTION", "PROVIDER_KEY", "WindowsResourceProvider"]

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
from providers.framework.model import CONNECTION, ResourceModel
from providers.scripting import OperationResult, ScriptRef, run_script

PROVIDER_KEY = "__provider"


def unnamed(failures: list[CheckFailure]) -> list[CheckFailure]:
    """Put the property name into the reason instead of the failure's property field.

    The engine prints a named property's value next to the reason ("property connection value
    {...} has a problem"), in plain text even when the value is or contains a secret (a
    connection's password, secret content, a PFX). Whether a value is secret is not visible to a
    dynamic provider, so no failure names its property in that field.
    """
    return [CheckFailure("", f"{f.property}: {f.reason}") if f.property else f for f in failures]


def _location(connection: Any) -> tuple[str, Any] | None:
    """Where an object lives: the host's address and the WinRM port as declared."""
    if not isinstance(connection, dict) or contains_unknown(connection.get("host")):
        return None
    return (str(connection.get("host") or "").lower(), connection.get("port"))


def connection_change(olds: dict[str, Any], news: dict[str, Any]) -> tuple[bool, bool]:
    """(moved, reach): ``moved`` when the object is declared on another host (a replacement: created
    there, then deleted here); ``reach`` when only the way to reach the same host changed (user,
    password, transport, HTTPS, CA bundle): an update that changes nothing on the host but puts the
    new connection in the state, so later refresh and destroy use it."""
    old, new = olds.get(CONNECTION), news.get(CONNECTION)
    if old == new:
        return False, False
    new_location = _location(new)
    moved = new_location is None or _location(old) != new_location
    return moved, not moved and (contains_unknown(new) or old != new)


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

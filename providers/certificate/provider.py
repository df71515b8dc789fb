"""Certificate lifecycle on the host (scripts in ./scripts).

Differences from the generic provider, each for a reason:
- ``check`` also opens the PFX locally (providers.certificate.pfx): a weak or undecryptable PFX is
  refused in preview, before any WinRM call.
- ``diff`` replaces only when the PFX holds another certificate (another thumbprint); and deletes
  first only when old and new are the same store entry (same thumbprint, same store).
- get and remove never receive the PFX or its password; only set does.
- Ownership is recorded on the host (scripts/_common.ps1, providers/scripting/ps/_owners.ps1), under the
  ``owner`` id the resource passes: set adds this resource as an owner before importing, remove drops it,
  and the certificate and its key go only with the last owner, when it was not found in the store before
  and no HTTP.sys binding presents it. ``imported`` (put there by an owner, not found there) is what the
  host answers, so a retry after a lost reply answers the same; the state's value only serves a state
  written before owners were recorded on the host.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, UpdateResult

from providers.certificate.model import CertificateModel
from providers.certificate.pfx import PfxRefused, inspect_pfx, pfx_thumbprint
from providers.framework.checks import contains_unknown
from providers.framework.model import ResourceModel
from providers.framework.provider import WindowsResourceProvider, connection_change, unnamed
from providers.scripting import OperationResult, ScriptRef, run_script

_log = logging.getLogger(__name__)


class CertificateProvider(WindowsResourceProvider):
    model = CertificateModel
    package = "providers.certificate"
    output_keys: ClassVar[tuple[str, ...]] = (
        "thumbprint",
        "subject",
        "not_after",
        "has_private_key",
        "key_storage",
        "imported",
    )

    def actual_properties(self, spec: ResourceModel, state: dict[str, Any]) -> dict[str, Any]:
        assert isinstance(spec, CertificateModel)
        return spec.actual_from(state)

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        result = super().check(olds, news)
        pfx, password = news.get("pfx"), news.get("pfx_password")
        failures = list(result.failures)
        if (
            not failures
            and isinstance(pfx, str)
            and isinstance(password, str)
            and not contains_unknown([pfx, password])
        ):
            try:
                inspect_pfx(pfx, password)
            except PfxRefused as refused:
                failures = [CheckFailure(refused.property, refused.message)]
        return CheckResult(result.inputs, unnamed(failures))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [
            key
            for key in self.model.desired_keys()
            if contains_unknown(news.get(key)) or olds.get(key) != news.get(key)
        ]
        replaces = [key for key in changed if key in self.model.replace_keys()]
        new_thumbprint = self._thumbprint_of(news)
        if ("pfx" in changed or "pfx_password" in changed) and new_thumbprint != olds.get("thumbprint"):
            replaces.append("pfx")  # another certificate: a new store entry, then the old one goes
        moved, reach = connection_change(olds, news)
        if moved:
            replaces.append("connection")
        same_entry = (
            not moved
            and new_thumbprint == olds.get("thumbprint")
            and all(news.get(key) == olds.get(key) for key in ("store_location", "store_name"))
        )
        # Creating first would find the old entry in place and adopt it, and deleting the old one
        # afterwards would remove what the new one stands for.
        return DiffResult(
            changes=bool(changed) or moved or reach,
            replaces=replaces,
            delete_before_replace=bool(replaces) and same_entry,
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        spec = self._spec(props)
        result = self._set(spec, imported_by_state=False, previous_owner="")
        return CreateResult(spec.resource_id(), self._outs(spec, result, imported=bool(result.state.get("imported"))))

    def apply_update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        spec = self._spec(news)
        # A state from before owners were recorded on the host says whether this resource imported it.
        result = self._set(
            spec, imported_by_state=bool(olds.get("imported")), previous_owner=str(olds.get("owner") or "")
        )
        return UpdateResult(self._outs(spec, result, imported=bool(result.state.get("imported"))))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        spec = self._spec(props)
        assert isinstance(spec, CertificateModel)
        result = self._lookup(spec, id_, "get", spec.lookup_input(id_))
        if result.state.get("ensure") == "absent":
            return ReadResult("", {})
        inputs = {**spec.model_dump(mode="json"), **self.actual_properties(spec, result.state)}
        outputs = self._outs_from_state(spec, result.state, imported=bool(props.get("imported")))
        return ReadResult(id_, {**inputs, **outputs}, inputs)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        spec = self._spec(props)
        assert isinstance(spec, CertificateModel)
        payload = {**spec.lookup_input(id_), "imported": bool(props.get("imported"))}
        state = self._lookup(spec, id_, "remove", payload).state
        if state.get("left_in_store"):
            _log.warning(
                "Certificate %s in %s\\%s left in place: %s.",
                id_,
                spec.store_location,
                spec.store_name,
                _why_left(state),
            )

    # -- internals -------------------------------------------------------------------------

    @staticmethod
    def _thumbprint_of(props: dict[str, Any]) -> str | None:
        pfx, password = props.get("pfx"), props.get("pfx_password")
        if not isinstance(pfx, str) or not isinstance(password, str) or contains_unknown([pfx, password]):
            return None
        try:
            return pfx_thumbprint(pfx, password)
        except PfxRefused:
            return None

    def _set(self, spec: ResourceModel, *, imported_by_state: bool, previous_owner: str) -> OperationResult:
        # previous_owner: the id the state recorded, when the resource's id changed (its record moves to the new one).
        payload = {**spec.script_input(), "imported_by_state": imported_by_state, "previous_owner": previous_owner}
        return run_script(
            spec.connection, ScriptRef(self.package, "set"), payload, resource=f"{spec.kind} '{spec.resource_id()}'"
        )

    def _lookup(self, spec: CertificateModel, id_: str, operation: str, payload: dict[str, Any]) -> OperationResult:
        return run_script(spec.connection, ScriptRef(self.package, operation), payload, resource=f"{spec.kind} '{id_}'")

    def _outs_from_state(self, spec: ResourceModel, state: dict[str, Any], *, imported: bool) -> dict[str, Any]:
        return {**self.outputs(spec, state), "imported": imported}

    def _outs(  # type: ignore[override]  # the base has no notion of 'imported'
        self, spec: ResourceModel, result: OperationResult, *, imported: bool
    ) -> dict[str, Any]:
        return {**spec.model_dump(mode="json"), **self._outs_from_state(spec, result.state, imported=imported)}


def _why_left(state: dict[str, Any]) -> str:
    reasons = []
    if state.get("other_owners"):
        reasons.append(f"{state['other_owners']} other owner(s) still hold it")
    if state.get("found_in_store"):
        reasons.append("it was in the store before any owner imported it")
    if state.get("bound_by"):
        reasons.append(f"HTTP.sys presents it on {', '.join(map(str, state['bound_by']))}")
    return "; ".join(reasons) or "it is not this resource's to remove"

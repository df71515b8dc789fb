"""WindowsService lifecycle on the host (scripts in ./scripts)."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from pulumi.dynamic import CreateResult, UpdateResult

from providers.framework.model import ResourceModel
from providers.framework.provider import WindowsResourceProvider
from providers.scripting import ScriptRef, run_script
from providers.scripting.errors import HostOperationFailed
from providers.windows_service.model import WindowsServiceModel

_log = logging.getLogger(__name__)


class WindowsServiceProvider(WindowsResourceProvider):
    model = WindowsServiceModel
    package = "providers.windows_service"
    output_keys: ClassVar[tuple[str, ...]] = ("service_sid", "account_sid", "image_path")

    def actual_properties(self, spec: ResourceModel, state: dict[str, Any]) -> dict[str, Any]:
        assert isinstance(spec, WindowsServiceModel)
        return spec.actual_from(state)

    # Windows cannot tell whether the stored password is the one we hold, so the host is told
    # explicitly when to write it: at creation, and when the (encrypted) input changed since the
    # last deployment. That makes a rotation exactly one update, and an unrelated update leaves
    # the password alone.

    def create(self, props: dict[str, Any]) -> CreateResult:
        spec = self._spec(props)
        assert isinstance(spec, WindowsServiceModel)
        try:
            state = self._set(spec, apply_password=spec.password is not None, create=True)
        except HostOperationFailed as error:
            # Create is transactional: a service created before a later step failed (a start with a
            # wrong password, a missing executable) is removed again, so that the next `up` starts
            # clean instead of meeting 'already exists'. A name that was taken is left alone, and so is a
            # service marked for deletion (its Delete would only fail with 1072 again; it goes by itself). Without an
            # owner id remove would take an unmarked service for one from before markers: no roll-back either.
            if error.script_error_id not in ("ServiceExists", "ServiceMarkedForDelete", "OwnerMissing"):
                self._run(spec, "remove")
            raise
        return CreateResult(spec.resource_id(), {**spec.model_dump(mode="json"), **self.outputs(spec, state)})

    def apply_update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        spec = self._spec(news)
        assert isinstance(spec, WindowsServiceModel)
        rotated = spec.password is not None and olds.get("password") != spec.password
        # The state's owner id: empty for a state from before owners were marked on the host (its service carries no
        # marker), the old id when the resource's id changed. set.ps1 then marks the service with the new one.
        state = self._set(spec, apply_password=rotated, previous_owner=str(olds.get("owner") or ""))
        return UpdateResult({**spec.model_dump(mode="json"), **self.outputs(spec, state)})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        spec = self._spec(props)
        state = self._run(spec, "remove").state
        if state.get("ensure") == "present" and not state.get("marked_for_delete"):
            # remove.ps1 leaves a service that does not carry this resource's owner marker.
            _log.warning(
                "Windows service '%s' is left in place: it is not the one this resource created (its owner marker "
                "is %r). Delete it by hand if it should go.",
                spec.resource_id(),
                state.get("owner_marker") or "absent",
            )

    def _set(
        self, spec: ResourceModel, *, apply_password: bool, create: bool = False, previous_owner: str = ""
    ) -> dict[str, Any]:
        payload = {
            **spec.script_input(),
            "apply_password": apply_password,
            "create": create,
            "previous_owner": previous_owner,
        }
        ref = ScriptRef(self.package, "set")
        result = run_script(spec.connection, ref, payload, resource=f"{spec.kind} '{spec.resource_id()}'")
        return result.state

"""IisDefaultSiteRemoval lifecycle on the host (scripts in ./scripts).

``set`` records this resource as an owner of the removal on the host (providers/scripting/ps/_owners.ps1),
saves the site and pool as they are there (found.json), then removes them; outputs ``removed_site`` and
``removed_pool`` say what the host keeps, so a retry after a lost reply answers the same. ``remove`` drops the
owner; the last one puts back exactly what was saved (bindings, certificates, settings, Started/Stopped). A
state written before owners were recorded on the host has only its ``removed_*`` flags: the first update
passes them to set, which records the stock site and pool as removed (and a destroy before any update restores
them directly).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from pulumi.dynamic import UpdateResult

from providers.framework.provider import WindowsResourceProvider
from providers.iis_default_site_removal.model import IisDefaultSiteRemovalModel
from providers.scripting import OperationResult, ScriptRef, run_script

_log = logging.getLogger(__name__)


class IisDefaultSiteRemovalProvider(WindowsResourceProvider):
    model = IisDefaultSiteRemovalModel
    package = "providers.iis_default_site_removal"
    output_keys: ClassVar[tuple[str, ...]] = ("removed_site", "removed_pool")

    def actual_properties(self, spec: Any, state: dict[str, Any]) -> dict[str, Any]:
        return {}  # no properties: presence (both gone) is all get reports

    def outputs(self, spec: Any, state: dict[str, Any]) -> dict[str, Any]:
        return {key: bool(state.get(key)) for key in self.output_keys}

    def read(self, id_: str, props: dict[str, Any]) -> Any:
        result = super().read(id_, props)
        if result.id:
            # get cannot know what an earlier set removed: keep the recorded answer.
            result.outs = {**(result.outs or {}), **{key: bool(props.get(key)) for key in self.output_keys}}
        return result

    def apply_update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        # Only the owner id can change: its record on the host moves from the state's id to the new one. What
        # the state says was removed goes along: a state from before owners were recorded on the host has
        # nothing else to say so, and set records it (the stock site and pool) for the last owner's destroy.
        spec = self._spec(news)
        payload = {
            **spec.script_input(),
            "previous_owner": str(olds.get("owner") or ""),
            "restore_site": bool(olds.get("removed_site")),
            "restore_pool": bool(olds.get("removed_pool")),
        }
        result = run_script(
            spec.connection, ScriptRef(self.package, "set"), payload, resource=f"{spec.kind} '{spec.resource_id()}'"
        )
        return UpdateResult(self._outs(spec, result))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        spec = self._spec(props)
        payload = {
            **spec.script_input(),
            "restore_site": bool(props.get("removed_site")),
            "restore_pool": bool(props.get("removed_pool")),
        }
        state = self._remove(spec, payload).state
        if state.get("other_owners"):
            _log.warning(
                "The Default Web Site stays removed: %s other owner(s) of the removal remain.", state["other_owners"]
            )
        if state.get("restore_warning"):
            _log.warning("Default Web Site restored: %s", state["restore_warning"])

    def _remove(self, spec: Any, payload: dict[str, Any]) -> OperationResult:
        return run_script(
            spec.connection,
            ScriptRef(self.package, "remove"),
            payload,
            resource=f"{spec.kind} '{spec.resource_id()}'",
        )

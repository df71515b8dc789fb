"""IisDefaultSiteRemoval lifecycle on the host (scripts in ./scripts).

``set`` removes the default site and pool and reports which of them it found (outputs ``removed_site`` and
``removed_pool``); ``delete`` hands those back to ``remove``, so destroy restores exactly what was removed and
leaves the host as it was before.
"""

from __future__ import annotations

from typing import Any, ClassVar

from providers.framework.provider import WindowsResourceProvider
from providers.iis_default_site_removal.model import IisDefaultSiteRemovalModel
from providers.scripting import OperationResult, ScriptRef, run_script


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

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        spec = self._spec(props)
        payload = {
            **spec.script_input(),
            "restore_site": bool(props.get("removed_site")),
            "restore_pool": bool(props.get("removed_pool")),
        }
        self._remove(spec, payload)

    def _remove(self, spec: Any, payload: dict[str, Any]) -> OperationResult:
        return run_script(
            spec.connection,
            ScriptRef(self.package, "remove"),
            payload,
            resource=f"{spec.kind} '{spec.resource_id()}'",
        )

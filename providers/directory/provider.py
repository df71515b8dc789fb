"""Directory lifecycle on the host (scripts in ./scripts).

Windows does not record who created a folder, so the folders this resource created are kept in
its Pulumi state (``created_folders``); destroy removes those and nothing else.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pulumi
from pulumi.dynamic import ReadResult, UpdateResult

from providers.directory.model import DirectoryModel
from providers.framework.model import ResourceModel
from providers.framework.provider import WindowsResourceProvider
from providers.scripting import ScriptRef, run_script


class DirectoryProvider(WindowsResourceProvider):
    model = DirectoryModel
    package = "providers.directory"
    output_keys: ClassVar[tuple[str, ...]] = ("folder_paths", "created_folders")

    def outputs(self, spec: ResourceModel, state: dict[str, Any]) -> dict[str, Any]:
        assert isinstance(spec, DirectoryModel)
        return {"folder_paths": spec.folder_paths(), "created_folders": list(state.get("created") or [])}

    def apply_update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        result = super().apply_update(_id, olds, news)
        outs = dict(result.outs or {})
        # Sub-folders created earlier stay ours (also those dropped from the list): destroy may remove them.
        outs["created_folders"] = _union(olds.get("created_folders"), outs.get("created_folders"))
        return UpdateResult(outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        result = super().read(id_, props)
        if result.id and result.outs is not None:
            result.outs["created_folders"] = list(props.get("created_folders") or [])
        return result

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        spec = self._spec(props)
        assert isinstance(spec, DirectoryModel)
        payload = {**spec.script_input(), "created": list(props.get("created_folders") or [])}
        resource = f"{spec.kind} '{spec.resource_id()}'"
        result = run_script(spec.connection, ScriptRef(self.package, "remove"), payload, resource=resource)
        kept = list(result.state.get("kept") or [])
        if kept:
            # A dynamic provider has no engine connection: pulumi.log writes to the provider's stderr,
            # which the CLI shows among the diagnostics of the run.
            pulumi.log.warn(
                f"{resource}: kept {len(kept)} folder(s) it created because they are not empty "
                f"(delete_contents is false): {', '.join(kept)}"
            )


def _union(first: Any, second: Any) -> list[str]:
    merged: list[str] = []
    for path in [*(first or []), *(second or [])]:
        if path.lower() not in {p.lower() for p in merged}:
            merged.append(path)
    return merged

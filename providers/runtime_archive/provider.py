"""RuntimeArchive lifecycle on the host (scripts in ./scripts): get, chunk (the upload), set (the
extraction), remove.

Create and update: ask the host what it has (get); when the archive is not installed complete, send what
the host lacks of it (upload.py), then have it verified and extracted (set). An unchanged archive is no
change at all, so a second `up` sends nothing.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, UpdateResult

from providers.framework.checks import contains_unknown
from providers.framework.model import ResourceModel
from providers.framework.provider import WindowsResourceProvider, unnamed
from providers.runtime_archive import local
from providers.runtime_archive.model import RuntimeArchiveModel
from providers.runtime_archive.upload import upload
from providers.scripting import OperationResult, ScriptRef, run_script


def local_problems(spec: RuntimeArchiveModel) -> list[CheckFailure]:
    """The local file is the one the inputs describe (it may have changed since the program read it)."""
    try:
        found = local.inspect_archive(spec.source_path)
    except local.ArchiveRefused as refused:
        return [CheckFailure("source_path", str(refused))]
    if (found.size, found.sha256) != (spec.size, spec.sha256):
        return [
            CheckFailure(
                "source_path",
                f"{spec.source_path} has {found.size} bytes and SHA-256 {found.sha256}, not the {spec.size} bytes and "
                f"{spec.sha256} declared; the file changed since the program read it: run again",
            )
        ]
    return []


class RuntimeArchiveProvider(WindowsResourceProvider):
    model = RuntimeArchiveModel
    package = "providers.runtime_archive"
    output_keys: ClassVar[tuple[str, ...]] = ("file_count",)

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        result = super().check(olds, news)
        if result.failures or contains_unknown(result.inputs):
            return result
        spec = self._spec(result.inputs)
        assert isinstance(spec, RuntimeArchiveModel)
        return CheckResult(result.inputs, unnamed(local_problems(spec)))

    def actual_properties(self, spec: ResourceModel, state: dict[str, Any]) -> dict[str, Any]:
        return {
            "sha256": state.get("sha256"),
            "archive_name": state.get("archive_name"),
            # A run that broke off (agent left stopped, swap not finished) is drift too: set repairs it.
            "files_present": not state.get("missing_files") and not state.get("interrupted"),
        }

    def create(self, props: dict[str, Any]) -> CreateResult:
        spec = self._spec(props)
        return CreateResult(spec.resource_id(), self._outputs(spec, self._install(spec)))

    def apply_update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        spec = self._spec(news)
        return UpdateResult(self._outputs(spec, self._install(spec)))

    # -- internals -------------------------------------------------------------------------

    def _install(self, spec: ResourceModel) -> dict[str, Any]:
        assert isinstance(spec, RuntimeArchiveModel)
        problems = local_problems(spec)
        if problems:
            raise ValueError(f"{self._label(spec)}: {problems[0].reason}")
        state = self._run(spec, "get").state
        if state.get("sha256") == spec.sha256 and not state.get("missing_files"):
            if state.get("interrupted"):
                return self._run(spec, "set").state  # installed: set only finishes what a broken run left
            return state  # installed and complete: not one byte to send
        report = upload(spec, state, lambda payload: self._chunk(spec, payload))
        if report.resumed_from:
            pulumi.log.info(
                f"{self._label(spec)}: resumed the upload of {spec.archive_name} at byte {report.resumed_from} of "
                f"{spec.size} (held by the host), sent {report.sent_bytes} bytes"
            )
        return self._run(spec, "set").state

    def _chunk(self, spec: RuntimeArchiveModel, payload: dict[str, Any]) -> OperationResult:
        return run_script(spec.connection, ScriptRef(self.package, "chunk"), payload, resource=self._label(spec))

    def _label(self, spec: ResourceModel) -> str:
        return f"{spec.kind} '{spec.resource_id()}'"

    def _outputs(self, spec: ResourceModel, state: dict[str, Any]) -> dict[str, Any]:
        return {**spec.model_dump(mode="json"), **self.outputs(spec, state)}

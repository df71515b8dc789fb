"""RuntimeArchive lifecycle on the host (scripts in ./scripts): get, chunk (the upload), set (the
extraction), remove.

Create and update: ask the host what it has (get); when the archive is not installed complete, send what
the host lacks of it (providers.framework.upload), then have it verified and extracted (set). An unchanged
archive is no change at all, so a second `up` sends nothing. The host's manifest records the kept files too: the
same archive with another keep_files is installed again (a file no longer kept comes from the archive).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pulumi.dynamic import CheckFailure, CreateResult, UpdateResult

from providers.framework.model import ResourceModel
from providers.framework.upload import UploadingProvider, local_file_problems
from providers.runtime_archive import local
from providers.runtime_archive.model import RuntimeArchiveModel, same_paths


class RuntimeArchiveProvider(UploadingProvider):
    model = RuntimeArchiveModel
    package = "providers.runtime_archive"
    output_keys: ClassVar[tuple[str, ...]] = ("file_count",)

    def local_problems(self, spec: ResourceModel) -> list[CheckFailure]:
        assert isinstance(spec, RuntimeArchiveModel)
        return local_file_problems(spec, lambda: local.inspect_archive(spec.source_path))

    def actual_properties(self, spec: ResourceModel, state: dict[str, Any]) -> dict[str, Any]:
        assert isinstance(spec, RuntimeArchiveModel)
        return {
            "sha256": state.get("sha256"),
            "archive_name": state.get("archive_name"),
            # The files the installation on the host kept: the desired list as written when they are the same files
            # (order and case aside), so that only a real difference shows.
            "keep_files": spec.keep_files if _kept_as_desired(spec, state) else list(state.get("kept_files") or []),
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
        self._refuse_changed_file(spec)
        state = self._run(spec, "get").state
        if state.get("sha256") == spec.sha256 and not state.get("missing_files") and _kept_as_desired(spec, state):
            if state.get("interrupted"):
                return self._run(spec, "set").state  # installed: set only finishes what a broken run left
            return state  # installed and complete: not one byte to send
        self._send(spec, spec.archive_name, state)
        return self._run(spec, "set").state


def _kept_as_desired(spec: RuntimeArchiveModel, state: dict[str, Any]) -> bool:
    """Whether the installation on the host kept ``keep_files`` (its manifest's list; one written before the list
    was recorded counts as the former default, _staging.ps1 Get-KeptFiles)."""
    return same_paths(list(state.get("kept_files") or []), spec.keep_files)

"""IisPrerequisites: create, update and read all run the read-only ``get`` check; delete touches nothing.

The package therefore has only ``get.ps1``: a check resource has nothing to set or remove on the host, and
destroying it must not need the host at all.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pulumi.dynamic import CreateResult, UpdateResult

from providers.framework.provider import WindowsResourceProvider
from providers.iis_prerequisites.model import IisPrerequisitesModel


class IisPrerequisitesProvider(WindowsResourceProvider):
    model = IisPrerequisitesModel
    package = "providers.iis_prerequisites"
    output_keys: ClassVar[tuple[str, ...]] = ("iis_version", "hosting_bundle_version", "aspnetcore_module_present")

    def create(self, props: dict[str, Any]) -> CreateResult:
        spec = self._spec(props)
        return CreateResult(spec.resource_id(), self._outs(spec, self._run(spec, "get")))

    def apply_update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        spec = self._spec(news)
        return UpdateResult(self._outs(spec, self._run(spec, "get")))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        return None  # a check leaves nothing on the host

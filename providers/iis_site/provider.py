"""IisSite lifecycle on the host (scripts in ./scripts)."""

from __future__ import annotations

from typing import Any, ClassVar

from providers.framework.model import ResourceModel
from providers.framework.provider import WindowsResourceProvider
from providers.iis_site.model import IisSiteModel


class IisSiteProvider(WindowsResourceProvider):
    model = IisSiteModel
    package = "providers.iis_site"
    output_keys: ClassVar[tuple[str, ...]] = ("site_id",)

    def actual_properties(self, spec: ResourceModel, state: dict[str, Any]) -> dict[str, Any]:
        assert isinstance(spec, IisSiteModel)
        return spec.actual_from(state)

"""WindowsFeature lifecycle on the host (scripts in ./scripts)."""

from __future__ import annotations

from typing import Any, ClassVar

from providers.framework.model import ResourceModel
from providers.framework.provider import WindowsResourceProvider
from providers.windows_feature.model import WindowsFeatureModel


class WindowsFeatureProvider(WindowsResourceProvider):
    model = WindowsFeatureModel
    package = "providers.windows_feature"
    output_keys: ClassVar[tuple[str, ...]] = ("installed", "restart_pending")

    def actual_properties(self, spec: ResourceModel, state: dict[str, Any]) -> dict[str, Any]:
        assert isinstance(spec, WindowsFeatureModel)
        return spec.actual_from(state)

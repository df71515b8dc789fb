"""SettingsFile lifecycle on the host (scripts in ./scripts)."""

from __future__ import annotations

from typing import Any, ClassVar

from providers.framework.model import ResourceModel
from providers.framework.provider import WindowsResourceProvider
from providers.settings_file.model import SettingsFileModel


class SettingsFileProvider(WindowsResourceProvider):
    model = SettingsFileModel
    package = "providers.settings_file"
    output_keys: ClassVar[tuple[str, ...]] = ("sha256", "size", "backup_path")

    def actual_properties(self, spec: ResourceModel, state: dict[str, Any]) -> dict[str, Any]:
        assert isinstance(spec, SettingsFileModel)
        return spec.actual_from(state)

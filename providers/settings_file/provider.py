"""SettingsFile lifecycle on the host (scripts in ./scripts)."""

from __future__ import annotations

from typing import ClassVar

from providers.framework.provider import WindowsResourceProvider
from providers.settings_file.model import SettingsFileModel


class SettingsFileProvider(WindowsResourceProvider):
    model = SettingsFileModel
    package = "providers.settings_file"
    output_keys: ClassVar[tuple[str, ...]] = ("sha256", "size", "backup_path")

"""SettingsFile: one file on the host (appsettings*.json, web.config), written atomically with a backup."""

from providers.settings_file.model import SettingsFileModel
from providers.settings_file.resource import SettingsFile

__all__ = ["SettingsFile", "SettingsFileModel"]

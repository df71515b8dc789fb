"""The SettingsFile properties: the single source of truth for validation, diffs, secrets and docs."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from providers.framework.model import ResourceModel, prop
from providers.framework.validators import windows_absolute_path

FileEncoding = Literal["utf-8", "utf-8-bom", "utf-16"]


class SettingsFileModel(ResourceModel):
    kind = "SettingsFile"

    path: str = prop(
        description="Absolute Windows path of the file, e.g. C:\\identitymanager\\Runtime\\appsettings.agent.json.",
        replaces=True,
        manual="install-agents-6.2: settings files in the Runtime folder",
    )
    content: str = prop(
        description="Exact text of the file. Create the resource with secret=True when it holds passwords, "
        "client secrets or connection strings: then the content and its hash are Pulumi secrets.",
    )
    encoding: FileEncoding = prop(
        "utf-8",
        description="utf-8 (no byte-order mark, what .NET reads by default), utf-8-bom, or utf-16 (little endian with BOM).",
    )
    keep_backup: bool = prop(
        True,
        description="Keep the previous version as '<path>.bak' when the content changes.",
    )

    @field_validator("path")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        path = windows_absolute_path(value)
        if path.lower().endswith(".bak"):
            raise ValueError(f"{value!r} ends in .bak, the name this resource uses for backups; choose another name")
        return path

    def resource_id(self) -> str:
        return self.path

"""The Pulumi resource class users write in their programs."""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import Resource

from providers.settings_file.provider import SettingsFileProvider


class SettingsFile(Resource, module="windows", name="SettingsFile"):
    """One file on a Windows host, written atomically (temporary file, then replace), previous version kept."""

    path: pulumi.Output[str]
    sha256: pulumi.Output[str]
    size: pulumi.Output[int]
    backup_path: pulumi.Output[str | None]

    def __init__(
        self,
        resource_name: str,
        *,
        connection: pulumi.Input[dict[str, Any]],
        path: pulumi.Input[str],
        content: pulumi.Input[str],
        secret: bool = False,
        encoding: pulumi.Input[str] = "utf-8",
        keep_backup: pulumi.Input[bool] = True,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``secret=True`` makes the content, and the hash that could reveal it, Pulumi secrets."""
        props: dict[str, Any] = {
            "connection": connection,
            "path": path,
            "content": pulumi.Output.secret(content) if secret else content,
            "encoding": encoding,
            "keep_backup": keep_backup,
            "sha256": None,
            "size": None,
            "backup_path": None,
        }
        secret_opts = pulumi.ResourceOptions(additional_secret_outputs=["content", "sha256"] if secret else [])
        super().__init__(SettingsFileProvider(), resource_name, props, pulumi.ResourceOptions.merge(opts, secret_opts))

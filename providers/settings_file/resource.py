"""The Pulumi resource class users write in their programs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
from pulumi.dynamic import Resource

from providers.framework.adoption import refuse_import
from providers.settings_file.provider import SettingsFileProvider


class SettingsFile(Resource, module="windows", name="SettingsFile"):
    """One file on a Windows host, written atomically (temporary file, then replace), previous version kept.

    Give ``content`` (text) or ``json_content`` (a JSON object whose values may be Pulumi secrets;
    ``preview --diff`` then shows changes key by key with the secrets masked).
    """

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
        content: pulumi.Input[str] | None = None,
        json_content: pulumi.Input[dict[str, Any]] | None = None,
        secret: bool = False,
        encoding: pulumi.Input[str] = "utf-8",
        keep_backup: pulumi.Input[bool] = True,
        readers: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``secret=True`` makes the text content, and the hash that could reveal it, Pulumi secrets.
        ``readers``: for a file with secrets, the only accounts besides SYSTEM and Administrators that may
        read it (protected permissions, set before any content is written)."""
        if secret and content is not None:
            content = pulumi.Output.secret(content)
        props: dict[str, Any] = {
            "connection": connection,
            "path": path,
            "content": content,
            "json_content": json_content,
            "encoding": encoding,
            "keep_backup": keep_backup,
            "readers": readers,
            "sha256": None,
            "size": None,
            "backup_path": None,
        }
        # The hash of a file that embeds secrets could confirm a guessed secret: keep it secret too.
        hidden = ["sha256"] if (secret or json_content is not None) else []
        secret_opts = pulumi.ResourceOptions(additional_secret_outputs=hidden)
        refuse_import("SettingsFile", resource_name, opts)
        super().__init__(SettingsFileProvider(), resource_name, props, pulumi.ResourceOptions.merge(opts, secret_opts))

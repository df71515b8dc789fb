"""The Pulumi resource class users write in their programs."""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import Resource

from providers.framework.adoption import refuse_import
from providers.runtime_archive.provider import RuntimeArchiveProvider


class RuntimeArchive(Resource, module="windows", name="RuntimeArchive"):
    """The vendor's runtime archive, extracted into an agent's Runtime folder.

    The archive travels in chunks to a folder only SYSTEM and Administrators can read, resumably; the host
    checks its SHA-256, extracts it beside Runtime's content and swaps it in with the agent stopped, keeping
    ``keep_files`` (the settings files the stack writes, and only those: make those resources depend on this
    one; an agent component lists them once, components.building_blocks.RuntimeFiles).
    ``source_path``, ``archive_name``, ``size`` and ``sha256`` describe the local file
    (``providers.runtime_archive.local.inspect_archive``).
    """

    runtime_path: pulumi.Output[str]
    sha256: pulumi.Output[str]
    file_count: pulumi.Output[int]

    def __init__(
        self,
        resource_name: str,
        *,
        connection: pulumi.Input[dict[str, Any]],
        source_path: pulumi.Input[str],
        archive_name: pulumi.Input[str],
        sha256: pulumi.Input[str],
        size: pulumi.Input[int],
        runtime_path: pulumi.Input[str],
        keep_files: pulumi.Input[list[str]],
        app_pool: pulumi.Input[str] = "",
        service_name: pulumi.Input[str] = "",
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "connection": connection,
            "source_path": source_path,
            "archive_name": archive_name,
            "sha256": sha256,
            "size": size,
            "runtime_path": runtime_path,
            "keep_files": keep_files,
            "app_pool": app_pool,
            "service_name": service_name,
            "files_present": True,
            "file_count": None,
        }
        refuse_import("RuntimeArchive", resource_name, opts)
        super().__init__(RuntimeArchiveProvider(), resource_name, props, opts)

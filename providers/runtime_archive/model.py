"""The RuntimeArchive properties: the single source of truth for validation, diffs and docs."""

from __future__ import annotations

import re
from typing import Any

from pydantic import field_validator, model_validator

from providers.framework.model import ResourceModel, prop
from providers.framework.upload import absolute_local_path, sha256_hex
from providers.framework.validators import MAX_FOLDER_PATH, windows_absolute_path

_FORBIDDEN = re.compile(r'[<>:"/|?*\x00-\x1f]')
# Folders inside Runtime the host scripts use for the swap; an archive entry may not use these names.
WORK_FOLDERS = (".iac-new", ".iac-old")
# The share of the connection's command_timeout_s that set and remove may spend waiting for the agent to stop and
# start (the scripts' Get-WaitBudget); the rest is for the work between the waits (hashing, extraction, the swap)
# and the transport, so that the client never gives up on a run that still goes on on the host.
WAIT_BUDGET_SHARE = 0.8


def same_paths(left: list[str], right: list[str]) -> bool:
    """Whether two lists of relative paths name the same files (in any order; NTFS names ignore case)."""
    return {path.lower() for path in left} == {path.lower() for path in right}


def wait_budget_s(command_timeout_s: int) -> int:
    """The seconds set and remove may spend in their waits: WAIT_BUDGET_SHARE of the command's time-out."""
    return int(command_timeout_s * WAIT_BUDGET_SHARE)


class RuntimeArchiveModel(ResourceModel):
    """The vendor's runtime archive, uploaded in resumable chunks and extracted into the agent's Runtime folder."""

    kind = "RuntimeArchive"

    source_path: str = prop(
        description="Absolute path of the zip on the machine that runs Pulumi. Only read to upload it; moving the "
        "file (another checkout, another CI runner) is no change: the archive is tracked by sha256.",
        local=True,
    )
    archive_name: str = prop(
        description="The archive's file name, shown in previews with its sha256 (e.g. IdentityManager-Runtime.zip).",
        manual="install-agents-6.2: the agent runtime content is extracted from the runtime archive",
    )
    sha256: str = prop(
        description="SHA-256 of the archive (lower-case hex). The host checks the uploaded file against it before "
        "extracting; a new value is an upgrade (upload, then extraction with the agent stopped).",
    )
    size: int = prop(description="Size of the archive in bytes.", gt=0)
    runtime_path: str = prop(
        description="The agent's Runtime folder (e.g. C:\\identitymanagerContoso\\Runtime), created when missing.",
        replaces=True,
        manual="install-production-agent-6.1: working directory, Runtime",
    )
    # No default: which settings files an agent writes depends on its kind and hosting (components.building_blocks
    # RuntimeFiles), and a file kept that nothing writes is a vendor file the agent lacks.
    keep_files: list[str] = prop(
        description="Paths relative to runtime_path that this project writes itself (SettingsFile resources): "
        "never taken from the archive, never removed by an upgrade. The host records them with what it "
        "extracted: another list is drift, and an update extracts the archive again (a file no longer kept "
        "then comes from the archive).",
    )
    app_pool: str = prop(
        "",
        description="IIS application pool that runs the agent: stopped for an upgrade (a running agent holds its "
        "DLLs) and started again after. Empty: none.",
    )
    service_name: str = prop(
        "", description="Windows service that runs the agent, stopped and started like app_pool. Empty: none."
    )
    files_present: bool = prop(
        True,
        description="Whether every file the archive put in Runtime is there. Always true as desired; refresh reads "
        "it from the host, so a file deleted by hand is drift that `up --refresh` repairs (the archive is sent "
        "and extracted again). Also false while a run that broke off left the agent stopped (or it did not start "
        "again), a swap unfinished or a work folder in Runtime (agent-stopped.json, swap.json in the staging "
        "folder, Runtime\\.iac-new or .iac-old); `up --refresh` finishes it.",
    )

    @field_validator("source_path")
    @classmethod
    def _absolute_local(cls, value: str) -> str:
        return absolute_local_path(value, "archive")

    @field_validator("archive_name")
    @classmethod
    def _file_name(cls, value: str) -> str:
        if not value or "/" in value or "\\" in value:
            raise ValueError(f"{value!r} is not a file name; give the archive's name without its folder")
        return value

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str) -> str:
        return sha256_hex(value)

    @field_validator("runtime_path")
    @classmethod
    def _folder(cls, value: str) -> str:
        return windows_absolute_path(value, max_length=MAX_FOLDER_PATH)

    @field_validator("keep_files")
    @classmethod
    def _relative_files(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        for path in value:
            parts = path.split("\\")
            if "/" in path:
                fixed = path.replace("/", "\\")
                raise ValueError(f"{path!r}: write relative paths with backslashes: {fixed!r}")
            if any(part in ("", ".", "..") or _FORBIDDEN.search(part) for part in parts):
                raise ValueError(f"{path!r} is not a file path relative to runtime_path (no drive, '.' or '..')")
            if path.lower() in seen:
                raise ValueError(f"{path!r} is listed twice (paths are case-insensitive on Windows)")
            seen.add(path.lower())
        return value

    @model_validator(mode="after")
    def _one_runner(self) -> RuntimeArchiveModel:
        if self.app_pool and self.service_name:
            raise ValueError("give app_pool (IIS hosting) or service_name (a Windows service), not both")
        return self

    def resource_id(self) -> str:
        return self.runtime_path

    def script_input(self) -> dict[str, Any]:
        # Never the local path: the host has no use for it. The waits' budget comes from the connection's time-out,
        # which goes too: the scripts' note on a spent budget names both (review-archive5 W6).
        return {
            **self.model_dump(mode="json", exclude={"connection", "source_path", "files_present"}),
            "wait_budget_s": wait_budget_s(self.connection.command_timeout_s),
            "command_timeout_s": self.connection.command_timeout_s,
        }

    def chunk_input(self, offset: int, data: str) -> dict[str, Any]:
        """The input of one upload chunk: ``data`` (base64) goes at ``offset`` of the staging file."""
        return {
            "runtime_path": self.runtime_path,
            "sha256": self.sha256,
            "size": self.size,
            "offset": offset,
            "data": data,
        }

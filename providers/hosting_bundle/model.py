"""The HostingBundle properties: the single source of truth for validation, diffs and docs."""

from __future__ import annotations

import re
from typing import Any

from pydantic import field_validator, model_validator

from providers.framework.model import ResourceModel, prop
from providers.framework.upload import absolute_local_path, sha256_hex

_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
# A name Windows accepts for a file (no folder, none of Path.GetInvalidFileNameChars()).
_FILE_NAME = re.compile(r'^[^<>:"/\\|?*\x00-\x1f]{1,200}$')


class HostingBundleModel(ResourceModel):
    """The .NET Hosting Bundle: installed silently (`/install /quiet /norestart`) when the host has no ASP.NET Core
    runtime of the installer's major.minor at its version or newer, repaired (`/repair`) when IIS was installed after
    it and AspNetCoreModuleV2 is missing, or when the .NET runtime (Microsoft.NETCore.App) of that major.minor is below
    the version; skipped otherwise. Never uninstalled; restarts the host only with restart."""

    kind = "HostingBundle"

    source_path: str = prop(
        description="Absolute path of the installer on the machine that runs Pulumi. Only read to upload it; moving "
        "the file is no change: the installer is tracked by sha256.",
        local=True,
    )
    installer_name: str = prop(
        description="The installer's file name, shown in previews (e.g. dotnet-hosting-8.0.11-win.exe).",
        manual="install-agents-6.2: Hosting Bundle (version 8.0 or higher)",
    )
    sha256: str = prop(
        description="SHA-256 of the installer (lower-case hex); the host checks the uploaded file against it before "
        "running it. Another installer is an update: it runs when the host needs it.",
    )
    size: int = prop(description="Size of the installer in bytes.", gt=0)
    version: str = prop(
        description="The ASP.NET Core runtime version the installer installs, e.g. 8.0.11. The host needs it, or a "
        "newer one of the same major.minor (an app built for 8.0 runs on any 8.0.x, not on 9.0).",
        manual="agent-requirements: .NET 8 (or newer) ASP.NET Core Hosting Bundle",
    )
    install_timeout_s: int = prop(
        480,
        description="Longest the installer may run, in seconds (below the connection's command_timeout_s).",
        ge=30,
        le=3600,
    )
    restart: bool = prop(
        False,
        description="Restart the host when the installer asks for it (exit code 3010), then wait until it answers "
        "again with a new boot time. Off: the restart is only reported (restart_pending and a warning).",
    )
    restart_timeout_s: int = prop(
        900, description="Longest wait for the host to answer again after a restart, in seconds.", ge=60, le=7200
    )
    installed: bool = prop(
        True,
        description="Whether the host has the ASP.NET Core and .NET runtimes at this version (or newer ones of its "
        "major.minor) and, when IIS is installed, AspNetCoreModuleV2. Always true as desired; refresh reads it, so "
        "a module lost to an IIS reinstall is drift that `up --refresh` repairs.",
        manual="install-agents-saas-full-guide: Finalize, step 1 (repair the bundle when IIS came after it)",
    )

    @field_validator("source_path")
    @classmethod
    def _absolute_local(cls, value: str) -> str:
        return absolute_local_path(value, "installer")

    @field_validator("installer_name")
    @classmethod
    def _file_name(cls, value: str) -> str:
        if not _FILE_NAME.match(value) or value in (".", ".."):
            raise ValueError(f"{value!r} is not a file name; give the installer's name without its folder")
        return value

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str) -> str:
        return sha256_hex(value)

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not _VERSION.match(value):
            raise ValueError(f"{value!r} is not a version like 8.0.11 (major.minor.patch of the ASP.NET Core runtime)")
        return value

    @model_validator(mode="after")
    def _fits_the_command_limit(self) -> HostingBundleModel:
        limit = self.connection.command_timeout_s
        if self.install_timeout_s + 30 > limit:
            raise ValueError(
                f"install_timeout_s ({self.install_timeout_s}) must stay 30 s below the connection's command_timeout_s "
                f"({limit}), or the transport gives up on the operation first; lower it or raise command_timeout_s"
            )
        return self

    def resource_id(self) -> str:
        return "hosting-bundle"

    def script_input(self) -> dict[str, Any]:
        # Never the local path: the host has no use for it.
        return self.model_dump(
            mode="json", exclude={"connection", "source_path", "installed", "restart", "restart_timeout_s"}
        )

    def chunk_input(self, offset: int, data: str) -> dict[str, Any]:
        """The input of one upload chunk: ``data`` (base64) goes at ``offset`` of the staging file."""
        return {"sha256": self.sha256, "size": self.size, "offset": offset, "data": data}

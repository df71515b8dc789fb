"""The IisPrerequisites properties: the single source of truth for validation, diffs and docs."""

from __future__ import annotations

import re
from typing import Any

from pydantic import field_validator

from providers.framework.model import ResourceModel, prop

MINIMUM_IIS_MAJOR = 10
_VERSION = re.compile(r"^\d+\.\d+(\.\d+)?$")
# agent-requirements: the .NET 8 (or newer) ASP.NET Core Hosting Bundle; an older one cannot run the agent.
MANUAL_MINIMUM_BUNDLE = (8, 0)


def hosting_bundle_version(value: str) -> str:
    """A hosting bundle version like 8.0 or 8.0.11, not older than the manual's .NET 8."""
    if not _VERSION.match(value):
        raise ValueError(f"{value!r} is not a version like 8.0 or 8.0.11")
    if tuple(int(part) for part in value.split(".")[:2]) < MANUAL_MINIMUM_BUNDLE:
        raise ValueError(f"{value!r} is older than the .NET 8 hosting bundle the manual requires; give 8.0 or newer")
    return value


class IisPrerequisitesModel(ResourceModel):
    """Checks the host (changes nothing): IIS 10 or newer, the .NET hosting bundle, and the AspNetCoreModuleV2
    global module the bundle adds to IIS (missing when the bundle was installed before IIS)."""

    kind = "IisPrerequisites"

    minimum_hosting_bundle: str = prop(
        "8.0",
        description="Lowest acceptable ASP.NET Core runtime of the hosting bundle, e.g. 8.0 or 8.0.11.",
        manual="agent-requirements: .NET 8 (or newer) ASP.NET Core Hosting Bundle",
    )

    @field_validator("minimum_hosting_bundle")
    @classmethod
    def _version(cls, value: str) -> str:
        return hosting_bundle_version(value)

    def resource_id(self) -> str:
        return "iis-prerequisites"

    def script_input(self) -> dict[str, Any]:
        return {"minimum_hosting_bundle": self.minimum_hosting_bundle, "minimum_iis_major": MINIMUM_IIS_MAJOR}

"""The WindowsFeature properties: the single source of truth for validation, diffs and docs."""

from __future__ import annotations

import re
from typing import Any

from pydantic import field_validator

from providers.framework.model import ResourceModel, prop

# Names as Get-WindowsFeature prints them: Web-Server, Web-AppInit, RSAT-ADDS-Tools, NET-Framework-45-Core.
_FEATURE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class WindowsFeatureModel(ResourceModel):
    """Windows Server roles and features (Install-WindowsFeature), e.g. IIS and Application Initialization."""

    kind = "WindowsFeature"

    names: list[str] = prop(
        description="Feature names as Get-WindowsFeature shows them, e.g. Web-Server, Web-AppInit, RSAT-ADDS-Tools. "
        "Names dropped from the list stay installed.",
        manual="install-agents-saas-full-guide: Install IIS via Server Manager (Web Server, Application "
        "Initialization, AD DS Snap-Ins and Command-Line Tools)",
    )
    include_management_tools: bool = prop(
        False,
        description="Also install each feature's management tools (Install-WindowsFeature -IncludeManagementTools), "
        "e.g. the IIS Manager console. An install option: tools removed later are not reported as drift.",
    )
    uninstall_on_delete: bool = prop(
        False,
        description="Uninstall the features when the resource is deleted. Off by default: other software on the "
        "server (and IIS sites) may depend on them.",
    )

    @field_validator("names")
    @classmethod
    def _feature_names(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("give at least one feature name, e.g. ['Web-Server', 'Web-AppInit']")
        seen: set[str] = set()
        for name in value:
            if not _FEATURE_NAME.match(name):
                raise ValueError(
                    f"{name!r} is not a feature name; give the Name column of Get-WindowsFeature "
                    "(e.g. 'Web-Server', not 'Web Server (IIS)'; no wildcards)"
                )
            if name.lower() in seen:
                raise ValueError(f"{name!r} is listed twice")
            seen.add(name.lower())
        return value

    def resource_id(self) -> str:
        return ",".join(self.names)

    def actual_from(self, state: dict[str, Any]) -> dict[str, Any]:
        """The named features that are installed, spelt as the program spells them."""
        installed = {str(n).lower() for n in state.get("installed_names", [])}
        return {"names": [n for n in self.names if n.lower() in installed]}

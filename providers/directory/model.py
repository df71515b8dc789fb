"""The Directory properties: the single source of truth for validation, diffs and docs."""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationInfo, field_validator

from providers.framework.model import ResourceModel, prop
from providers.framework.validators import MAX_FOLDER_PATH, windows_absolute_path

_FORBIDDEN = re.compile(r'[<>:"/\\|?*\x00-\x1f]')
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


class DirectoryModel(ResourceModel):
    """A folder and its named sub-folders (e.g. the agent's working directory), created when missing."""

    kind = "Directory"

    path: str = prop(
        description="Absolute Windows path of the root folder, e.g. C:\\identitymanagerContoso.",
        replaces=True,
        manual="install-production-agent-6.1: working directory",
    )
    subfolders: list[str] = prop(
        [],
        description="Names of sub-folders directly below path, e.g. ['Runtime', 'Mails', 'Sources', 'Temp', "
        "'Work']. A name is one folder: no backslash, no '..'. A name dropped from the list is left on the host "
        "(and removed by destroy if this resource created it and it is empty).",
        manual="install-production-agent-6.1: Runtime, Mails, Sources, Temp, Work",
    )
    delete_contents: bool = prop(
        False,
        description="On destroy, also delete the folders this resource created when they hold files. Default "
        "false: Work, Temp, Mails and Sources hold synchronization data and provisioning orders, so destroy "
        "removes only the empty folders it created and keeps (and names) the others.",
    )

    @field_validator("path")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        return windows_absolute_path(value, max_length=MAX_FOLDER_PATH)

    @field_validator("subfolders")
    @classmethod
    def _folder_names(cls, value: list[str], info: ValidationInfo) -> list[str]:
        seen: set[str] = set()
        root = info.data.get("path")
        for name in value:
            if name in ("", ".", "..") or "\\" in name or "/" in name:
                raise ValueError(
                    f"{name!r} is not one folder name; give names directly below path (no '\\\\', '/', '.' or '..'), "
                    "and a separate Directory resource for a deeper tree"
                )
            if _FORBIDDEN.search(name):
                raise ValueError(f'{name!r} contains a character Windows forbids in names (<>:"|?*)')
            if name.rstrip(" .") != name:
                raise ValueError(f"{name!r} ends with a space or dot, which Windows strips silently")
            if name.split(".")[0].upper() in _RESERVED:
                raise ValueError(f"{name!r} is a reserved device name on Windows")
            if name.lower() in seen:
                raise ValueError(f"{name!r} is listed twice (folder names are case-insensitive on Windows)")
            seen.add(name.lower())
            if isinstance(root, str) and len(f"{root}\\{name}") > MAX_FOLDER_PATH:
                raise ValueError(
                    f"{root}\\{name} is {len(root) + 1 + len(name)} characters long; Windows PowerShell 5.1 (.NET "
                    f"Framework, no long-path support) creates folders of at most {MAX_FOLDER_PATH}: shorten path "
                    f"or {name!r}"
                )
        return value

    def resource_id(self) -> str:
        return self.path

    def folder_paths(self) -> dict[str, str]:
        return {name: f"{self.path}\\{name}" for name in self.subfolders}

    def script_input(self) -> dict[str, Any]:
        return {"path": self.path, "subfolders": list(self.subfolders), "delete_contents": self.delete_contents}

"""What names an operation script and what it answers: light, so that a provider imports them without
loading the WinRM client (a preview that reads no host never needs it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ScriptRef:
    """A script file ``<package>/scripts/<name>.ps1``, e.g. ``ScriptRef("providers.settings_file", "get")``."""

    package: str
    name: str

    @property
    def operation(self) -> str:
        return f"{self.package.rsplit('.', 1)[-1]}/{self.name}"


@dataclass(frozen=True)
class OperationResult:
    changed: bool
    state: dict[str, Any]
    changes: list[dict[str, Any]] = field(default_factory=list)

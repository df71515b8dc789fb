"""SIMULATOR: the JSON envelope the project's scripts print, built the way the prelude builds it."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devhost.fs import WindowsFs


@dataclass
class Envelope:
    ok: bool
    state: dict[str, Any] = field(default_factory=dict)
    changed: bool = False
    changes: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        if self.ok:
            return {"ok": True, "changed": self.changed, "changes": self.changes, "state": self.state}
        return {"ok": False, "error": self.error}

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1


def succeed(state: dict[str, Any], changes: list[dict[str, Any]] | None = None) -> Envelope:
    return Envelope(ok=True, state=state, changed=bool(changes), changes=changes or [])


def fail(error_id: str, message: str, *, prop: str | None = None, category: str = "InvalidOperation") -> Envelope:
    return Envelope(ok=False, error={"id": error_id, "category": category, "message": message, "property": prop})


def change(prop: str, before: Any, after: Any, *, secret: bool = False) -> dict[str, Any]:
    if secret:
        before = after = "[secret]"
    return {"property": prop, "before": before, "after": after}


class OperationStopped(Exception):
    """The script called Stop-Operation: it exits with this envelope (raised deep inside a model)."""

    def __init__(self, envelope: Envelope) -> None:
        super().__init__(envelope.error)
        self.envelope = envelope


Operation = Callable[[WindowsFs, dict[str, Any]], Envelope]


def operation(
    model: Operation,
) -> Operation:
    """Mark a model of an operation script: a Stop-Operation raised anywhere inside it
    (``OperationStopped``) becomes the envelope the script prints, as the prelude's exit does."""

    @functools.wraps(model)
    def run(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
        try:
            return model(fs, spec)
        except OperationStopped as stopped:
            return stopped.envelope

    return run


class InputContractError(Exception):
    """The script's input does not match what the model expects: a contract drift, reported loudly."""


def require_keys(spec: dict[str, Any], required: set[str], optional: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    missing = required - spec.keys()
    extra = spec.keys() - required - optional
    if missing or extra:
        raise InputContractError(f"missing keys {sorted(missing)}, unexpected keys {sorted(extra)}")

"""Configuration errors: each names the key path (as `pulumi config set --path` writes it) and the fix."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

PROJECT = "usercube-agents"
_PLAIN_SEGMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")

Loc = Sequence[str | int]


def key_path(loc: Loc) -> str:
    """``('agents', 1, 'hostName')`` -> ``agents[1].hostName``; odd keys quoted as Pulumi's --path does."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_SEGMENT.match(part):
            text += f".{part}" if text else part
        else:
            text += f'["{part}"]'
    return text


def nearest(word: str, candidates: Iterable[str]) -> str | None:
    """The valid key a typo most likely meant (case-insensitive), or None."""
    options = {candidate.lower(): candidate for candidate in candidates}
    match = difflib.get_close_matches(word.lower(), list(options), n=1, cutoff=0.6)
    return options[match[0]] if match else None


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"  {PROJECT}:{self.path}: {self.message}" if self.path else f"  {self.message}"


class ConfigError(Exception):
    """The stack configuration is invalid; raised before any resource is declared."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        head = f"invalid stack configuration ({count} problem{'s' if count != 1 else ''}):"
        super().__init__("\n".join([head, *(str(p) for p in self.problems)]))

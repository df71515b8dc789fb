"""Which configuration values are secrets, and whether the stack file really holds them encrypted.

The engine hands a program its configuration decrypted, and tells it only which *top-level* keys
contain a secret somewhere (``PULUMI_CONFIG_SECRET_KEYS``). Taking ``agents`` as one secret would
hide every diff of every agent, so the program reads the stack file itself: a value that
``pulumi config set --secret --path`` encrypted is written there as ``{secure: v1:...}``. Values
that must be secrets (``SECRET_PATHS``) are wrapped as Pulumi secrets one by one; all others stay
plain and show in ``preview --diff``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from typing import Any

from components.stack.errors import PROJECT, Loc, Problem, key_path

# Paths (with * for any key or index) whose values must be encrypted in the stack file.
SECRET_PATHS: tuple[tuple[str, ...], ...] = (
    ("hosts", "*", "password"),
    ("agents", "*", "identity", "password"),
    ("agents", "*", "sslCertificate", "pfx"),
    ("agents", "*", "sslCertificate", "password"),
    ("agents", "*", "encryptionCertificate", "pfx"),
    ("agents", "*", "encryptionCertificate", "password"),
    ("agents", "*", "identityServerCertificate", "pfx"),
    ("agents", "*", "identityServerCertificate", "password"),
    ("agents", "*", "settings", "openIdClients", "*"),
    ("agents", "*", "license"),
    ("agents", "*", "connectionString"),
)
# Managed-system settings are the vendor's free-form objects: any key that names a password or a
# secret must be encrypted, anything else there may be (and is then kept secret).
_CONNECTIONS = ("agents", "*", "settings", "connections")
_SECRET_WORD = re.compile(r"pass(word)?|pwd|secret|token|key$", re.IGNORECASE)


def _matches(loc: Loc, pattern: tuple[str, ...]) -> bool:
    return len(loc) == len(pattern) and all(
        p == "*" or fnmatch.fnmatchcase(str(part), p) for part, p in zip(loc, pattern, strict=True)
    )


def _in_connections(loc: Loc) -> bool:
    return len(loc) > len(_CONNECTIONS) + 1 and _matches(loc[: len(_CONNECTIONS)], _CONNECTIONS)


def must_be_secret(loc: Loc) -> bool:
    if any(_matches(loc, pattern) for pattern in SECRET_PATHS):
        return True
    return _in_connections(loc) and bool(_SECRET_WORD.search(str(loc[-1])))


def may_be_secret(loc: Loc) -> bool:
    return must_be_secret(loc) or _in_connections(loc)


def _is_secure(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"secure"}


def secure_paths(stack_file_config: dict[str, Any]) -> set[tuple[str | int, ...]]:
    """Every path under ``usercube-agents:hosts`` / ``:agents`` written as ``{secure: ...}``."""
    found: set[tuple[str | int, ...]] = set()

    def walk(value: Any, loc: tuple[str | int, ...]) -> None:
        if _is_secure(value):
            found.add(loc)
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, (*loc, str(key)))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, (*loc, index))

    for top in ("hosts", "agents"):
        if f"{PROJECT}:{top}" in stack_file_config:
            walk(stack_file_config[f"{PROJECT}:{top}"], (top,))
    return found


def leaves(value: Any, loc: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*loc, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, (*loc, index))
    else:
        yield loc, value


def check_secrets(raw: dict[str, Any], secure: set[tuple[str | int, ...]], stack: str) -> list[Problem]:
    """Secrets encrypted, everything else in plain text; each problem prints the command that fixes it."""
    problems: list[Problem] = []
    for top in ("hosts", "agents"):
        if (top,) in secure:
            problems.append(
                Problem(
                    top,
                    "is encrypted as a whole, which would hide every change of every agent in previews; set it "
                    "in plain text and encrypt only the secret values, each with "
                    f"`pulumi config set --stack {stack} --secret --path '<path>'`",
                )
            )
    if problems:
        return problems
    for loc, value in leaves(raw, ()):
        path = key_path(loc)
        if must_be_secret(loc) and value not in ("", None) and loc not in secure:
            problems.append(
                Problem(
                    path,
                    "must be a secret but is stored in plain text; encrypt it with "
                    f"`pulumi config set --stack {stack} --secret --path '{path}'` (it prompts for the value)",
                )
            )
        elif loc in secure and not may_be_secret(loc):
            problems.append(
                Problem(
                    path,
                    "is encrypted but is not a secret: previews would hide its changes; store it in plain "
                    f"text with `pulumi config set --stack {stack} --path '{path}' <value>`",
                )
            )
    return problems

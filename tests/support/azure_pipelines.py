"""Azure Pipelines YAML checked against Microsoft's own schema (tests/schemas/azure-pipelines/, MIT).

The schema is the one the Azure Pipelines extension for VS Code validates with. Two things make it
differ from a plain JSON Schema, and both are followed here:

- Azure reads every YAML scalar as a string: the schema's `boolean` is a string matching `^true$`,
  `^false$`, `^yes$`... So the document is loaded with PyYAML's BaseLoader, which keeps every scalar
  as written, not with safe_load (which would turn `always: true` into a bool the schema refuses).
- It adds keywords of its own (microsoft/azure-pipelines-language-server, docs/schema-extensions.md):
  `firstProperty` (the mapping is valid only when one of these keys comes first: `- task:` before
  `displayName:`), and `ignoreCase` (`value` or `all`: an enum or pattern compares without case).
  `ignoreCase: key` (key names without case) and `aliases` are not followed, so a key spelt in
  another case than the schema's is refused here although Azure takes it: stricter, never laxer.
  `doNotSuggest` and `deprecationMessage` are editor hints.

What the schema does not cover: template expressions (`${{ }}`), the inputs a task version really
accepts beyond what the schema lists, and whether a service connection or environment exists.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from jsonschema import validators

SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "azure-pipelines" / "service-schema.json"


def _without_case(schema: dict[str, Any]) -> bool:
    return schema.get("ignoreCase") in ("value", "all")


def _enum(validator: Any, enums: Any, instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
    # Loaded with BaseLoader, an instance holds only strings, lists and mappings: plain equality is exact.
    if instance in enums:
        return
    folded = instance.casefold() if _without_case(schema) and isinstance(instance, str) else None
    if folded is not None and any(isinstance(value, str) and value.casefold() == folded for value in enums):
        return
    yield jsonschema.ValidationError(f"{instance!r} is not one of {enums!r}")


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
    if not isinstance(instance, str):
        return
    flags = re.IGNORECASE if _without_case(schema) else 0
    if not re.search(pattern, instance, flags):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def _first_property(validator: Any, first: Any, instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
    if not isinstance(instance, dict) or not instance:
        return
    allowed = [first] if isinstance(first, str) else list(first)
    leading = next(iter(instance))
    if leading not in allowed:
        yield jsonschema.ValidationError(f"{leading!r} comes first; Azure Pipelines wants {allowed} first here")


_AzurePipelinesValidator = validators.extend(
    validators.Draft7Validator,
    {"enum": _enum, "pattern": _pattern, "firstProperty": _first_property},
)


@functools.cache
def _validator() -> Any:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return _AzurePipelinesValidator(schema)


def load(text: str) -> Any:
    """The document as Azure reads it: every scalar a string, keys in their written order."""
    return yaml.load(text, Loader=yaml.BaseLoader)  # BaseLoader builds no objects


def problems(document: Any) -> list[str]:
    """Each leaf error (the deepest reason inside anyOf/oneOf), as 'path: message', sorted."""
    found: set[str] = set()

    def leaves(error: jsonschema.ValidationError) -> None:
        if not error.context:
            path = "/".join(str(part) for part in error.absolute_path) or "(top)"
            found.add(f"{path}: {error.message[:200]}")
        for child in error.context:
            leaves(child)

    for error in _validator().iter_errors(document):
        leaves(error)
    return sorted(found)

"""Turn pydantic validation errors into Pulumi check failures that name the property and the fix."""

from __future__ import annotations

from typing import Any

from pulumi.dynamic import CheckFailure
from pulumi.output import Unknown
from pydantic import ValidationError

from providers.framework.model import ResourceModel

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # the SDK's marker for a value not known during preview


def contains_unknown(value: Any) -> bool:
    # check and diff receive unknowns as pulumi.output.Unknown objects (deserialized with keep_unknowns).
    if isinstance(value, Unknown):
        return True
    if isinstance(value, str):
        return value == UNKNOWN
    if isinstance(value, dict):
        return any(contains_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_unknown(v) for v in value)
    return False


def failures_from(error: ValidationError, prefix: str = "") -> list[CheckFailure]:
    failures = []
    for item in error.errors(include_url=False):
        path = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "is not a property of this resource; remove it or check its spelling"
        elif item["type"] == "missing":
            message = "is required"
        failures.append(CheckFailure(prefix + path if path else prefix.rstrip(".") or "(resource)", message))
    return failures


def validate_inputs(model: type[ResourceModel], raw: dict[str, Any]) -> tuple[ResourceModel | None, list[CheckFailure]]:
    """Validate ``raw``; with values still unknown (preview), validate each known property on its own."""
    if not contains_unknown(raw):
        try:
            return model.model_validate(raw), []
        except ValidationError as error:
            return None, failures_from(error)
    failures: list[CheckFailure] = []
    for name, value in raw.items():
        if name not in model.model_fields:
            failures.append(CheckFailure(name, "is not a property of this resource; remove it or check its spelling"))
            continue
        if contains_unknown(value):
            continue
        try:
            # validate_assignment runs the field's own validators; model-level (cross-property)
            # rules need every value and are checked again once they are all known.
            blank = model.model_construct()  # type: ignore[call-arg]  # deliberately without values
            model.__pydantic_validator__.validate_assignment(blank, name, value)
        except ValidationError as error:
            failures.extend(f for f in failures_from(error) if f.property != "(resource)")
    return None, failures

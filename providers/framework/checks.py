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


def validate_inputs(
    model: type[ResourceModel], raw: dict[str, Any]
) -> tuple[ResourceModel | None, list[CheckFailure], dict[str, Any]]:
    """Validate ``raw``: (the model, failures, the inputs as the engine should record them).

    With every value known, the recorded inputs are the model's own dump (defaults applied,
    values normalized). With some still unknown (preview), each known property is validated and
    normalized on its own and defaults are applied, so the preview compares like with like: a
    default or a normalized value must not show as removed or changed only because another
    property is not known yet. Model-level (cross-property) rules need every value and run once
    they are all known.
    """
    if not contains_unknown(raw):
        try:
            spec = model.model_validate(raw)
            return spec, [], spec.model_dump(mode="json")
        except ValidationError as error:
            return None, failures_from(error), raw
    failures: list[CheckFailure] = []
    normalized: dict[str, Any] = {}
    blank = model.model_construct()  # type: ignore[call-arg]  # deliberately without values
    for name, value in raw.items():
        if name not in model.model_fields:
            failures.append(CheckFailure(name, "is not a property of this resource; remove it or check its spelling"))
            continue
        if contains_unknown(value):
            normalized[name] = value
            continue
        try:
            # validate_assignment runs the field's own validators (and converts the value).
            model.__pydantic_validator__.validate_assignment(blank, name, value)
            normalized[name] = blank.model_dump(mode="json", include={name})[name]
        except ValidationError as error:
            failures.extend(f for f in failures_from(error) if f.property != "(resource)")
            normalized[name] = value
    for name, field in model.model_fields.items():
        if name not in normalized and not field.is_required():
            normalized[name] = model.model_construct(**{name: field.get_default(call_default_factory=True)}).model_dump(
                mode="json", include={name}
            )[name]
    return None, failures, normalized

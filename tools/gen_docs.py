"""Generate the README's reference tables from the models (the single source of truth).

Two generated parts, each between its markers: the resource property tables (from the resource
models) and the stack configuration reference (from the stack schema, components/stack/schema.py,
and the secret paths, components/stack/secrets.py). `make docs` rewrites them; a test fails when
either is stale.
"""

from __future__ import annotations

import importlib
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from components.stack import secrets  # noqa: E402
from components.stack.errors import PROJECT  # noqa: E402
from components.stack.schema import EstateSpec  # noqa: E402
from providers.framework.model import CONNECTION, ResourceModel  # noqa: E402

README = ROOT / "README.md"
BEGIN = "<!-- BEGIN GENERATED: resource properties (tools/gen_docs.py) -->"
END = "<!-- END GENERATED: resource properties -->"
STACK_BEGIN = "<!-- BEGIN GENERATED: stack configuration (tools/gen_docs.py) -->"
STACK_END = "<!-- END GENERATED: stack configuration -->"


def resource_models() -> list[type[ResourceModel]]:
    models = []
    for model_file in sorted((ROOT / "providers").glob("*/model.py")):
        module = importlib.import_module(f"providers.{model_file.parent.name}.model")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, ResourceModel)
                and value is not ResourceModel
                and value.__module__ == module.__name__
            ):
                models.append(value)
    return models


def _type_name(annotation: Any) -> str:
    text = str(annotation) if not isinstance(annotation, type) else annotation.__name__
    text = text.replace("typing.", "").replace("NoneType", "None")
    if typing.get_origin(annotation) is typing.Literal:
        text = " / ".join(repr(a) for a in typing.get_args(annotation))
    return text.replace("|", "\\|")


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        return f"`{field.default_factory()!r}`"
    return f"`{field.default!r}`"


def _change(extra: dict[str, Any]) -> str:
    if extra.get("local"):
        return "none (local, not compared)"
    return "replace" if extra.get("replaces") else "update in place"


def table(model: type[ResourceModel]) -> str:
    lines = [
        f"### {model.kind}",
        "",
        (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else "",
        "",
        "| property | type | default | change | secret | manual | description |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, field in model.model_fields.items():
        if name == CONNECTION:
            continue
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        description = (field.description or "").replace("|", "\\|").replace("\n", " ")
        lines.append(
            f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | "
            f"{_change(extra)} | {'yes' if extra.get('secret') else ''} | "
            f"{extra.get('manual', '')} | {description} |"
        )
    return "\n".join(line for line in lines if line is not None) + "\n"


def generated() -> str:
    intro = (
        "Every resource also takes `connection` (host, port, transport, use_https, validate_certificate, "
        "ca_bundle, username, password — a secret) and is checked before any WinRM call.\n"
    )
    return "\n".join([BEGIN, "", intro, *[table(m) for m in resource_models()], END])


# -- stack configuration reference -------------------------------------------------------------
#
# A key path is a tuple of segments: a key (its camelCase alias), or ANY_KEY (a key the user names,
# e.g. a host name) or ANY_INDEX (a list position). Both wildcards are "*" in SECRET_PATHS.

ANY_KEY = "<name>"
ANY_INDEX = "[i]"
KeyPath = tuple[str, ...]


def _key(field_name: str, field: FieldInfo) -> str:
    return field.alias or field_name


def _as_model(annotation: Any) -> type[BaseModel] | None:
    """``Model`` or ``Model | None`` -> Model."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return None
    models = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
    return models[0] if len(models) == 1 else None


def _children(path: KeyPath, annotation: Any) -> tuple[KeyPath, type[BaseModel]] | None:
    """Where a field's value holds a model: itself, a map of them (hosts) or a list of them (agents)."""
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is dict and _as_model(arguments[-1]):
        return (*path, ANY_KEY), typing.cast(type[BaseModel], _as_model(arguments[-1]))
    if origin is list and _as_model(arguments[0]):
        return (*path, ANY_INDEX), typing.cast(type[BaseModel], _as_model(arguments[0]))
    model = _as_model(annotation)
    return (path, model) if model else None


def stack_models() -> list[tuple[type[BaseModel], list[KeyPath]]]:
    """Every model of the stack schema below EstateSpec, with the paths it is found at (in schema order)."""
    found: dict[type[BaseModel], list[KeyPath]] = {}
    queue: list[tuple[KeyPath, type[BaseModel]]] = [((), EstateSpec)]
    while queue:
        path, model = queue.pop(0)
        for name, field in model.model_fields.items():
            child = _children((*path, _key(name, field)), field.annotation)
            if child is None:
                continue
            child_path, child_model = child
            if child_path not in found.setdefault(child_model, []):
                found[child_model].append(child_path)
                queue.append((child_path, child_model))
    return list(found.items())


def stack_keys() -> list[tuple[KeyPath, FieldInfo]]:
    """Every key the tables document, with its field."""
    return [
        ((*path, _key(name, field)), field)
        for model, paths in stack_models()
        for path in paths
        for name, field in model.model_fields.items()
    ]


def _label(path: KeyPath) -> str:
    text = ""
    for part in path:
        text += part if part == ANY_INDEX else f".{part}" if text else part
    return text


def _pattern(path: KeyPath) -> KeyPath:
    return tuple("*" if part in (ANY_KEY, ANY_INDEX) else part for part in path)


def _secret(path: KeyPath) -> str:
    pattern = _pattern(path)
    if secrets.must_be_secret(pattern):
        return "yes"
    if secrets.must_be_secret((*pattern, "*")):
        return "yes (every value)"
    if pattern == secrets._CONNECTIONS:
        return f"values whose key matches `{secrets._SECRET_WORD.pattern}` (case-insensitive)"
    return ""


_ESCAPED_BACKSLASH = re.compile(r"\\(?=[!-/:-@\[-`{-~])")


def _cell(text: str) -> str:
    """Markdown table cell: `|` escaped; outside code spans `<` too (GitHub takes `<pool>` for a tag),
    and a backslash in front of punctuation (`AppPool\\<pool>`), so the text renders as written."""
    parts = text.replace("\n", " ").split("`")
    parts[::2] = [_ESCAPED_BACKSLASH.sub(r"\\\\", part).replace("<", "\\<") for part in parts[::2]]
    return "`".join(parts).replace("|", "\\|")


def _yaml(value: Any) -> str:
    if isinstance(value, BaseModel):
        return "`{}` (every key at its default)"
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True).strip()
    return f"`{text.removesuffix('...').strip()}`"


def _stack_default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    return "not set" if value is None else _yaml(value)


def _stack_type(annotation: Any, field: FieldInfo | None = None) -> str:
    model = _as_model(annotation)
    if model is not None:
        return f"object, see `{_label(_model_label(model))}`"
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " / ".join(f"`{a}`" for a in arguments)
    if origin is dict:
        return "object" if arguments[-1] is Any else f"map of {_stack_type(arguments[-1])}"
    if origin is list:
        return f"list of {_stack_type(arguments[0])}"
    names = {str: "string", int: "integer", bool: "boolean", float: "number", Any: "any value"}
    text = names.get(annotation, _type_name(annotation))
    bounds = {
        attr: getattr(item, attr)
        for item in (field.metadata if field else [])
        for attr in ("ge", "le", "max_length")
        if hasattr(item, attr)
    }
    if "ge" in bounds and "le" in bounds:
        text += f", {bounds['ge']} to {bounds['le']}"
    if "max_length" in bounds:
        text += f", at most {bounds['max_length']} characters"
    return text


def _model_label(model: type[BaseModel]) -> KeyPath:
    """The heading path of a model: its path, or with a placeholder where several keys hold it."""
    paths = dict(stack_models())[model]
    if len(paths) == 1:
        return paths[0]
    placeholder = model.__name__.removesuffix("Spec")
    return (*paths[0][:-1], f"<{placeholder[0].lower()}{placeholder[1:]}>")


def stack_table(model: type[BaseModel], paths: list[KeyPath]) -> str:
    label = _label(_model_label(model))
    heading = f"### `{label}`"
    if len(paths) > 1:
        heading += f" ({' / '.join(f'`{path[-1]}`' for path in paths)})"
    doc = (model.__doc__ or "").strip().splitlines()[0].replace("``", "`")
    lines = [
        heading,
        "",
        _cell(doc),
        "",
        "| key | type | default | secret | description |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, field in model.model_fields.items():
        key = _key(name, field)
        secret = {_secret((*path, key)) for path in paths}
        lines.append(
            f"| `{key}` | {_cell(_stack_type(field.annotation, field))} | {_stack_default(field)} | "
            f"{_cell(' / '.join(sorted(secret)))} | {_cell(field.description or '')} |"
        )
    return "\n".join(lines) + "\n"


def stack_generated() -> str:
    tops = [
        f"- `{PROJECT}:{_key(name, field)}` ({_stack_type(field.annotation)}): {_cell(field.description or '')}"
        for name, field in EstateSpec.model_fields.items()
    ]
    intro = (
        "Top-level keys of the stack file:\n\n"
        + "\n".join(tops)
        + "\n\nUnknown keys are refused (with the nearest valid one suggested). A value marked *secret* must be "
        "set with `pulumi config set --secret --path '<key path>'`; every other value stays plain text.\n"
    )
    return "\n".join([STACK_BEGIN, "", intro, *[stack_table(m, p) for m, p in stack_models()], STACK_END])


def _replace(readme: str, begin: str, end: str, text: str) -> str:
    start, stop = readme.index(begin), readme.index(end) + len(end)
    return readme[:start] + text + readme[stop:]


def render(readme: str) -> str:
    readme = _replace(readme, BEGIN, END, generated())
    return _replace(readme, STACK_BEGIN, STACK_END, stack_generated())


def main() -> int:
    README.write_text(render(README.read_text(encoding="utf-8")), encoding="utf-8")
    print("README.md resource tables and stack configuration reference regenerated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Generate the README's resource property tables from the resource models (the single source of truth).

`make docs` rewrites the part of README.md between the markers; a test fails when it is stale.
"""

from __future__ import annotations

import importlib
import sys
import typing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from providers.framework.model import CONNECTION, ResourceModel  # noqa: E402

README = ROOT / "README.md"
BEGIN = "<!-- BEGIN GENERATED: resource properties (tools/gen_docs.py) -->"
END = "<!-- END GENERATED: resource properties -->"


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
            f"{'replace' if extra.get('replaces') else 'update in place'} | {'yes' if extra.get('secret') else ''} | "
            f"{extra.get('manual', '')} | {description} |"
        )
    return "\n".join(line for line in lines if line is not None) + "\n"


def generated() -> str:
    intro = (
        "Every resource also takes `connection` (host, port, transport, use_https, validate_certificate, "
        "ca_bundle, username, password — a secret) and is checked before any WinRM call.\n"
    )
    return "\n".join([BEGIN, "", intro, *[table(m) for m in resource_models()], END])


def render(readme: str) -> str:
    start, end = readme.index(BEGIN), readme.index(END) + len(END)
    return readme[:start] + generated() + readme[end:]


def main() -> int:
    README.write_text(render(README.read_text(encoding="utf-8")), encoding="utf-8")
    print("README.md resource tables regenerated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

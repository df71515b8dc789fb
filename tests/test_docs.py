"""The README's property tables are generated from the models; stale tables fail the suite."""

from __future__ import annotations

from tools.gen_docs import README, render, resource_models


def test_readme_tables_match_the_models() -> None:
    text = README.read_text(encoding="utf-8")
    assert render(text) == text, "README.md is stale: run `make docs`"


def test_every_model_property_is_described() -> None:
    for model in resource_models():
        for name, field in model.model_fields.items():
            assert field.description, f"{model.kind}.{name} has no description"

"""The README's reference tables are generated from the models; stale tables fail the suite."""

from __future__ import annotations

import inspect

from pydantic import BaseModel

from components.stack import schema
from components.stack.secrets import SECRET_PATHS
from tools.gen_docs import README, _pattern, render, resource_models, stack_keys, stack_models


def test_readme_tables_match_the_models() -> None:
    text = README.read_text(encoding="utf-8")
    assert render(text) == text, "README.md is stale: run `make docs`"


def test_every_model_property_is_described() -> None:
    for model in resource_models():
        for name, field in model.model_fields.items():
            assert field.description, f"{model.kind}.{name} has no description"


def test_every_stack_key_is_described() -> None:
    for path, field in stack_keys():
        assert field.description, f"{'.'.join(path)} has no description"


def test_every_stack_model_has_a_table() -> None:
    documented = {model for model, _ in stack_models()}
    for name, model in inspect.getmembers(schema, inspect.isclass):
        if issubclass(model, BaseModel) and model.__module__ == schema.__name__ and name.endswith("Spec"):
            assert model in documented or model is schema.EstateSpec, f"{name} is not in the stack reference"


def test_every_secret_path_is_a_documented_key() -> None:
    keys = {_pattern(path) for path, _ in stack_keys()}
    for pattern in SECRET_PATHS:
        # a key, or the values of a map key (openIdClients.*)
        assert pattern in keys or (pattern[-1] == "*" and pattern[:-1] in keys), (
            f"SECRET_PATHS entry {'.'.join(pattern)} names no key of the stack schema"
        )


def test_the_readme_states_the_bad_input_corpus_as_it_is() -> None:
    from tests.components import test_bad_inputs_engine as inputs
    from tests.stacks import test_bad_configuration as stacks

    text = " ".join(README.read_text(encoding="utf-8").split())
    total = len(stacks.CASES) + len(inputs.CASES)
    for phrase in (
        f"The bad-input corpus: {total} cases.",
        f"holds {len(stacks.CASES)} invalid stack configurations",
        f"{len(inputs.CASES)} bad inputs: {len(inputs.RESOURCE_CASES)} to the ten resources",
        f"{len(inputs.COMPONENT_CASES)} to `ProductionAgent` and `IntegratedAgent`",
    ):
        assert phrase in text, f"README.md: update the corpus counts ({phrase!r})"
    assert total >= 60


def test_the_readme_quotes_the_pulumi_import_refusal_as_the_plugin_words_it() -> None:
    from providers.framework.adoption import pulumi_import_refusal

    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Adopting objects that already exist") :].split("\n## ", 1)[0]
    quoted = " ".join(line.removeprefix(">").strip() for line in section.splitlines() if line.startswith(">"))
    assert quoted == pulumi_import_refusal("Directory", "adopted", "C:\\identitymanagerContoso"), (
        "README.md 'Adopting objects that already exist': quote the message of providers/framework/adoption.py"
    )

"""Read the stack configuration and validate all of it before the program declares any resource."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

import pulumi
import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from components.stack.errors import PROJECT, ConfigError, Loc, Problem, key_path, nearest
from components.stack.estate import archive_path, check_estate, installer_path
from components.stack.schema import EstateSpec
from components.stack.secrets import check_secrets, leaves, may_be_secret, secure_paths
from providers.hosting_bundle.local import InstallerFile, inspect_installer
from providers.runtime_archive.local import ArchiveFile, inspect_archive

TOP_LEVEL_KEYS = ("hosts", "agents")
# The one-agent keys of the first version: named so an old stack file gets a pointer, not a typo hint.
_FLAT_KEYS = {
    "windowsHost", "winrmPort", "winrmTransport", "winrmUseHttps", "winrmValidateCertificate", "winrmCaBundle",
    "winrmUser", "winrmPassword", "organization", "workingDirectory", "agentIdentifier", "applicationUri",
    "openIdClientSecret", "hosting", "hostName", "siteName", "poolName", "httpsPort", "httpPort", "identityKind",
    "identityAccount", "identityPassword", "dataFolderRights", "removeDefaultSite", "rsatAdTools", "sslPfx",
    "sslPfxPassword", "encryptionPfx", "encryptionPfxPassword",
}  # fmt: skip


@dataclass(frozen=True)
class Estate:
    """The validated environment, with the paths whose values are Pulumi secrets."""

    spec: EstateSpec
    secret_paths: frozenset[tuple[str | int, ...]]
    stack: str
    project_dir: Path = Path()

    def is_secret(self, loc: Loc) -> bool:
        return tuple(loc) in self.secret_paths

    def runtime_archive(self, index: int) -> ArchiveFile | None:
        """The local file of ``agents[index].runtimeArchive`` (checked on load), or None when not set."""
        archive = self.spec.agents[index].runtime_archive
        return None if archive is None else inspect_archive(archive_path(archive, self.project_dir))

    def hosting_bundle(self, host: str) -> InstallerFile | None:
        """The local installer of ``hosts.<host>.hostingBundle`` (checked on load), or None when not set."""
        bundle = self.spec.hosts[host].hosting_bundle
        return None if bundle is None else inspect_installer(installer_path(bundle, self.project_dir), bundle.version)


# libyaml's parser when PyYAML was built with it (its wheels are): the same documents, about 15 times faster
# than the pure-Python one, which took 0.19 s for the stack file of a 20-host estate (its PFX secrets make it
# 200 KB), and the program reads that file on every verb.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def stack_file(project_dir: Path, stack: str) -> Path:
    project = yaml.safe_load((project_dir / "Pulumi.yaml").read_text(encoding="utf-8")) or {}
    return project_dir / str(project.get("stackConfigDir", ".")) / f"Pulumi.{stack}.yaml"


def load(project_dir: Path) -> Estate:
    """The current stack's configuration, as the engine passes it, checked against its stack file."""
    stack = pulumi.get_stack()
    path = stack_file(project_dir, stack)
    if not path.is_file():
        raise ConfigError([Problem("", f"stack file {path} not found; create it with `pulumi stack init {stack}`")])
    document = yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER) or {}
    config = pulumi.Config(PROJECT)
    raw = {key: config.get_object(key) for key in TOP_LEVEL_KEYS}
    return load_from({k: v for k, v in raw.items() if v is not None}, document.get("config") or {}, stack, project_dir)


def load_from(raw: dict[str, Any], stack_file_config: dict[str, Any], stack: str, project_dir: Path) -> Estate:
    """Validate ``raw`` (decrypted values) against the schema, the stack file's secrets and the estate rules."""
    problems = _top_level(raw, stack_file_config)
    secure = secure_paths(stack_file_config)
    problems += check_secrets(raw, secure, stack)
    try:
        spec = EstateSpec.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_once(problems, _schema_problems(error), raw, secure)) from None
    problems = _once(problems, check_estate(spec, project_dir), raw, secure)
    if problems:
        raise ConfigError(problems)
    secret = {loc for loc in secure if may_be_secret(loc)}
    return Estate(spec, frozenset(secret), stack, project_dir)


def _once(
    first: list[Problem], more: list[Problem], raw: dict[str, Any], secure: set[tuple[str | int, ...]]
) -> list[Problem]:
    """``first`` then the ``more`` about other keys (one message per key path), with the plaintext of
    every value the stack file holds encrypted masked: a non-secret set with --secret stays hidden."""
    reported = {problem.path for problem in first}
    hidden = {value for loc, value in leaves(raw, ()) if loc in secure and isinstance(value, str) and value}
    problems = []
    for problem in [*first, *(p for p in more if p.path not in reported)]:
        message = problem.message
        for value in sorted(hidden, key=len, reverse=True):
            message = message.replace(value, "[secret]")
        problems.append(Problem(problem.path, message))
    return problems


def _top_level(raw: dict[str, Any], stack_file_config: dict[str, Any]) -> list[Problem]:
    problems = []
    for full_key in stack_file_config:
        namespace, _, key = str(full_key).partition(":")
        if namespace != PROJECT or key in TOP_LEVEL_KEYS:
            continue
        guess = nearest(key, TOP_LEVEL_KEYS)
        flat = key if key in _FLAT_KEYS else None if guess else nearest(key, _FLAT_KEYS)
        if flat:
            known = "is" if flat == key else f"looks like {flat!r},"
            message = (
                f"{known} a key of the one-agent layout, replaced by `hosts` and `agents` (README: Stack configuration)"
            )
        else:
            message = f"is not a setting of this project{f'; did you mean {guess!r}?' if guess else ''}"
        problems.append(Problem(key, f"{message}; remove it with `pulumi config rm {key}`"))
    for key in TOP_LEVEL_KEYS:
        if key not in raw:
            problems.append(Problem(key, "is required: describe the environment's hosts and agents (see README)"))
    return problems


def _fields_by_key(model: type[BaseModel] | None) -> dict[str, FieldInfo]:
    """A schema model's fields by the key a stack file writes (the camelCase alias)."""
    return {field.alias or name: field for name, field in model.model_fields.items()} if model else {}


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The schema model that holds the keys at ``loc`` (to suggest the key a typo meant)."""
    current: Any = EstateSpec
    for part in loc:
        model = _as_model(current)
        if model is not None and isinstance(part, str):
            fields = _fields_by_key(model)
            current = fields[part].annotation if part in fields else None
        else:  # a list index or a dict key (a host name, a client name): step into the item type
            arguments = [a for a in get_args(current) if a is not type(None)]
            current = arguments[-1] if get_origin(current) in (list, dict) and arguments else None
    return _as_model(current)


def _as_model(annotation: Any) -> type[BaseModel] | None:
    """``Model`` or ``Model | None`` -> Model."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, UnionType):
        models = [a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
        return models[0] if len(models) == 1 else None
    return None


def _schema_problems(error: ValidationError) -> list[Problem]:
    problems = []
    for item in error.errors(include_url=False):
        loc = tuple(item["loc"])
        if item["type"] == "extra_forbidden":
            keys = list(_fields_by_key(_model_at(loc[:-1])))
            guess = nearest(str(loc[-1]), keys)
            hint = f"did you mean {guess!r}?" if guess else f"valid keys: {', '.join(keys)}"
            message = f"is not a known key; {hint}"
        elif item["type"] == "missing":
            described = _fields_by_key(_model_at(loc[:-1])).get(str(loc[-1]))
            message = f"is required: {described.description}" if described and described.description else "is required"
        elif item["type"] in ("bool_parsing", "bool_type"):
            shown = f" {item['input']!r}" if isinstance(item.get("input"), str | int) else ""
            message = f"is{shown}, not a boolean: write true or false"
        else:
            message = str(item["msg"]).removeprefix("Value error, ")
            if "input" in item and item["type"] in ("literal_error", "string_pattern_mismatch", "enum"):
                message = f"{message}, not {item['input']!r}" if isinstance(item["input"], str | int) else message
            if item["type"] == "string_pattern_mismatch":
                # The pattern alone names no fix; the key's description gives the form with an example.
                described = _fields_by_key(_model_at(loc[:-1])).get(str(loc[-1]))
                if described is not None and described.description:
                    message = f"{message}: {described.description}"
        problems.append(Problem(key_path(loc), message))
    return problems

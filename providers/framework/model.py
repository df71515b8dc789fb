"""The base of every resource model.

Each field of a model says everything about one property: type, default, description,
whether a change replaces the resource, whether it is a secret and which manual step it
implements. ``check`` validates with it, ``diff`` derives replacements from it, the resource
class derives ``additional_secret_outputs`` from it, and the README's tables are generated
from it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from providers.transport.connection import HostConnection

CONNECTION = "connection"


def prop(
    default: Any = ...,
    *,
    description: str,
    replaces: bool = False,
    secret: bool = False,
    manual: str | None = None,
    local: bool = False,
    **constraints: Any,
) -> Any:
    """Declare a resource property (a pydantic ``Field`` with our metadata). ``local``: a fact of the machine
    that runs Pulumi (a local file's path), not of the Windows object: never compared, never a change."""
    extra: dict[str, Any] = {"replaces": replaces, "secret": secret}
    if local:
        extra["local"] = True
    if manual:
        extra["manual"] = manual
    return Field(default, description=description, json_schema_extra=extra, **constraints)


class ResourceModel(BaseModel):
    """Inputs of one Windows resource. Subclasses add their properties with ``prop``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ClassVar[str] = "Resource"

    connection: HostConnection = Field(description="How to reach the host over WinRM (password is a secret).")

    @classmethod
    def _meta(cls, name: str) -> dict[str, Any]:
        extra = cls.model_fields[name].json_schema_extra
        return extra if isinstance(extra, dict) else {}

    @classmethod
    def desired_keys(cls) -> list[str]:
        """Properties that describe the Windows object (everything but how to reach the host and local facts)."""
        return [name for name in cls.model_fields if name != CONNECTION and not cls._meta(name).get("local")]

    @classmethod
    def replace_keys(cls) -> set[str]:
        return {name for name in cls.desired_keys() if cls._meta(name).get("replaces")}

    @classmethod
    def secret_keys(cls) -> set[str]:
        return {name for name in cls.desired_keys() if cls._meta(name).get("secret")}

    def resource_id(self) -> str:
        """The Pulumi id: what identifies the object on the host."""
        raise NotImplementedError

    def script_input(self) -> dict[str, Any]:
        """The JSON the host scripts receive: the desired properties, never the WinRM credentials."""
        return self.model_dump(mode="json", exclude={CONNECTION})

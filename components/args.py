"""Inputs of the agent components, validated before any resource is declared.

Plain settings are checked with pydantic; secrets must arrive as Pulumi secrets (``Output``
objects from ``config.require_secret`` or ``pulumi.Output.secret``): a plain string where a
secret is required is refused, so it can never land unencrypted in state.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import pulumi
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from providers.framework.validators import windows_absolute_path

IdentityKind = Literal["ApplicationPoolIdentity", "GroupManagedServiceAccount", "User"]
DataFolderRights = Literal["Modify", "FullControl"]
_DNS_ALIAS = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


ORGANIZATION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$"
APPLICATION_URI_PATTERN = r"^https://[^\s/]+(/\S*)?$"


def dns_alias(value: str) -> str:
    """The agent's DNS alias: the manual requires it in lower case (agent-requirements)."""
    if value != value.lower():
        raise ValueError(f"{value!r}: the manual requires the DNS alias in lower case: {value.lower()!r}")
    if not _DNS_ALIAS.match(value):
        raise ValueError(f"{value!r} is not a DNS name (letters, digits, '-' and '.')")
    return value


def agent_identifier(value: str) -> str:
    """OpenId.AgentIdentifier: anything but 'Local', which Identity Manager reserves for the integrated agent."""
    if value.lower() == "local":
        raise ValueError("'Local' is reserved by Identity Manager for the integrated agent; choose another name")
    return value


def require_secret(value: Any, setting: str) -> pulumi.Output[Any]:
    """A Pulumi secret, or a clear error naming the setting."""
    if not isinstance(value, pulumi.Output):
        raise ValueError(
            f"{setting} must be a Pulumi secret, not a plain value: use `pulumi config set --secret` and "
            "config.require_secret(...), or wrap it with pulumi.Output.secret(...)"
        )
    return pulumi.Output.secret(value)


class PfxCertificate(BaseModel):
    """A certificate with its private key, as PFX bytes (base64) and password — both secrets."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    pfx_base64: Any = Field(description="PFX file content, base64 (a Pulumi secret).")
    password: Any = Field(description="PFX password (a Pulumi secret).")

    @model_validator(mode="after")
    def _secrets(self) -> PfxCertificate:
        require_secret(self.pfx_base64, "pfx_base64")
        require_secret(self.password, "password")
        return self


class StoreCertificate(BaseModel):
    """A certificate already in LocalMachine\\My (the manual's recommended store method), by thumbprint.

    Nothing is imported or removed; whoever put it there grants the agent's account read access
    to its private key (the program says so in a warning)."""

    model_config = ConfigDict(frozen=True)

    thumbprint: str = Field(pattern=r"^[0-9A-Fa-f]{40}$")


CertificateSource = PfxCertificate | StoreCertificate


class Identity(BaseModel):
    """The account that runs the agent (pool identity or service account)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    kind: IdentityKind = "ApplicationPoolIdentity"
    account: str | None = Field(None, description="DOMAIN\\user, or DOMAIN\\name$ for a gMSA.")
    password: Any = Field(None, description="Password of a User account (a Pulumi secret).")

    @model_validator(mode="after")
    def _consistent(self) -> Identity:
        if self.kind == "ApplicationPoolIdentity":
            if self.account or self.password is not None:
                raise ValueError("identity: ApplicationPoolIdentity takes no account or password")
            return self
        if not self.account or "\\" not in self.account:
            raise ValueError(f"identity.account: give DOMAIN\\name for kind {self.kind}")
        if self.kind == "GroupManagedServiceAccount":
            if not self.account.endswith("$"):
                raise ValueError("identity.account: a group managed service account name ends with '$'")
            if self.password is not None:
                raise ValueError("identity.password: a gMSA has no password (Windows manages it); remove it")
        else:
            if self.account.endswith("$"):
                raise ValueError(
                    "identity.kind: an account ending with '$' is a gMSA; set kind GroupManagedServiceAccount"
                )
            require_secret(self.password, "identity.password")
        return self


class AgentSettings(BaseModel):
    """What goes into appsettings.agent.json (DOMAIN.md: settings files)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    agent_identifier: str = Field(min_length=1, max_length=64)
    application_uri: str = Field(pattern=APPLICATION_URI_PATTERN)
    openid_clients: dict[str, Any] = Field(description="OpenId client name -> secret (Pulumi secrets).")
    default_openid_client: str
    connections: dict[str, Any] = Field(default_factory=dict, description="Managed systems (secrets inside).")

    @field_validator("agent_identifier")
    @classmethod
    def _not_local(cls, value: str) -> str:
        return agent_identifier(value)

    @model_validator(mode="after")
    def _clients(self) -> AgentSettings:
        if not self.openid_clients:
            raise ValueError("openid_clients: give at least one OpenId client (name -> secret)")
        for name, secret in self.openid_clients.items():
            require_secret(secret, f"openid_clients[{name!r}]")
        if self.default_openid_client not in self.openid_clients:
            raise ValueError(
                f"default_openid_client {self.default_openid_client!r} is not a key of openid_clients "
                f"({sorted(self.openid_clients)})"
            )
        return self


class WebHosting(BaseModel):
    """IIS site and pool (DOMAIN.md: IIS application pool, IIS site)."""

    model_config = ConfigDict(frozen=True)

    site_name: str
    pool_name: str
    host_name: str = Field(description="The agent's DNS alias, lower case (agent-requirements).")
    ip_address: str = Field("*", description="IP address of the bindings; * means all unassigned (the manual's).")
    http_port: int | None = Field(None, ge=1, le=65535, description="Optional plain-HTTP binding.")
    https_port: int = Field(443, ge=1, le=65535)
    remove_default_site: bool = True

    @field_validator("host_name")
    @classmethod
    def _lowercase_dns(cls, value: str) -> str:
        return dns_alias(value)


class HostingBundleSource(BaseModel):
    """The .NET Hosting Bundle installer on this machine, as checked when the stack was loaded."""

    model_config = ConfigDict(frozen=True)

    path: str = Field(description="Absolute path of the installer.")
    name: str = Field(description="Its file name (what previews show).")
    size: int = Field(gt=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$", description="The runtime version it installs.")
    restart: bool = Field(False, description="Restart the host when the installer asks for it.")


def working_directory(organization: str, explicit: str | None) -> str:
    return windows_absolute_path(explicit) if explicit else f"C:\\identitymanager{organization}"

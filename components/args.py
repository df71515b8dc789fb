"""Inputs of the agent components, validated before any resource is declared.

Plain settings are checked with pydantic; secrets must arrive as Pulumi secrets (``Output``
objects from ``config.require_secret`` or ``pulumi.Output.secret``): a plain string where a
secret is required is refused, so it can never land unencrypted in state.
"""

from __future__ import annotations

import re
from typing import Any, Literal, TypeVar

import pulumi
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from providers.framework.validators import MAX_FILE_PATH, MAX_FOLDER_PATH, account_name, windows_absolute_path
from providers.iis_app_pool.model import pool_identity_user, pool_name
from providers.iis_site.model import binding_address, site_name
from providers.settings_file.model import MAX_SETTINGS_FILE_PATH
from providers.windows_service.model import service_account

_T = TypeVar("_T")
IdentityKind = Literal["ApplicationPoolIdentity", "GroupManagedServiceAccount", "User"]
DataFolderRights = Literal["Modify", "FullControl"]
_DNS_ALIAS = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


ORGANIZATION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$"
APPLICATION_URI_PATTERN = r"^https://[^\s/]+(/\S*)?$"
# The longest path an agent writes below its working directory; as a SettingsFile it must leave room for
# the temporary file beside it, which sets the working directory's own limit.
LONGEST_BELOW_ROOT = "\\Runtime\\appsettings.agent.json"
MAX_WORKING_DIRECTORY = MAX_SETTINGS_FILE_PATH - len(LONGEST_BELOW_ROOT)


def working_directory_path(value: str) -> str:
    """An agent's working directory: a folder path short enough for every file the agent puts below it."""
    root = windows_absolute_path(value, max_length=MAX_FOLDER_PATH)
    if len(root) > MAX_WORKING_DIRECTORY:
        raise ValueError(
            f"is {len(root)} characters long: with {LONGEST_BELOW_ROOT[1:]} below it and that file's temporary "
            f"copy, paths pass the {MAX_FILE_PATH} characters Windows PowerShell 5.1 (no long-path support) can "
            f"write; keep it to {MAX_WORKING_DIRECTORY} characters, e.g. C:\\identitymanager<Organization>"
        )
    return root


def identity_account(account: str, hosting: str) -> str:
    """The account that runs the agent, as every resource that names it accepts it: the pool's identity or
    the service's account, and the principal of the folders', key files' and settings files' entries."""
    account_name(account)
    return service_account(account) if hosting == "service" else pool_identity_user(account)


def configuration_key_problems(value: Any, loc: tuple[str | int, ...] = ()) -> list[tuple[tuple[str | int, ...], str]]:
    """(where, what) for each key of a settings object the agent's .NET configuration cannot read back.

    Microsoft.Extensions.Configuration flattens the JSON with ':' between nested keys and compares keys
    case-insensitively (learn.microsoft.com, "Configuration in ASP.NET Core", configuration keys and
    values): a key holding ':' would be read as another section, and two keys differing only in case
    are one setting, the last one silently winning."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    if isinstance(value, list):
        for index, item in enumerate(value):
            problems += configuration_key_problems(item, (*loc, index))
    if not isinstance(value, dict):
        return problems
    seen: dict[str, str] = {}
    for name, item in value.items():
        key = str(name)
        at = (*loc, key)
        if not key.strip():
            problems.append((at, "is an empty key; give the setting its name"))
        elif ":" in key:
            problems.append((at, "holds ':', which .NET configuration reads as a nested section; rename the key"))
        elif key.lower() in seen:
            problems.append(
                (
                    at,
                    f"differs from {seen[key.lower()]!r} only in case: .NET configuration reads both as one "
                    "setting; keep one of them",
                )
            )
        seen.setdefault(key.lower(), key)
        problems += configuration_key_problems(item, at)
    return problems


def check_configuration_keys(value: _T, setting: str) -> _T:
    """``value`` unchanged, or the first of its configuration_key_problems as a ValueError naming ``setting``."""
    for loc, message in configuration_key_problems(value):
        raise ValueError(f"{setting}{''.join(f'[{part!r}]' for part in loc)}: {message}")
    return value


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

    @field_validator("openid_clients")
    @classmethod
    def _client_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_configuration_keys(dict.fromkeys(value), "openid_clients")  # the names; the values are secrets
        return value

    @field_validator("connections")
    @classmethod
    def _connection_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_configuration_keys(value, "connections")

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

    @field_validator("site_name")
    @classmethod
    def _site(cls, value: str) -> str:
        return site_name(value)

    @field_validator("pool_name")
    @classmethod
    def _pool(cls, value: str) -> str:
        return pool_name(value)

    @field_validator("ip_address")
    @classmethod
    def _address(cls, value: str) -> str:
        return binding_address(value)

    @model_validator(mode="after")
    def _two_ports(self) -> WebHosting:
        if self.http_port == self.https_port:
            raise ValueError(
                f"http_port equals https_port ({self.https_port}): one port serves one protocol; give another "
                "http_port, or none"
            )
        return self


class RuntimeArchiveSource(BaseModel):
    """The vendor's runtime archive on this machine, as checked when the stack was loaded."""

    model_config = ConfigDict(frozen=True)

    path: str = Field(description="Absolute path of the zip.")
    name: str = Field(description="Its file name (what previews show).")
    size: int = Field(gt=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


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
    return working_directory_path(explicit) if explicit else f"C:\\identitymanager{organization}"


class AgentArgsBase(BaseModel):
    """What both agent kinds take the same way; each kind adds its own hosting, certificates and settings."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    organization: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
    working_directory: str | None = None
    identity: Identity = Field(default_factory=Identity)
    encryption_certificate: CertificateSource
    data_folder_rights: DataFolderRights = "Modify"
    install_features: bool = True
    rsat_ad_tools: bool = False
    minimum_hosting_bundle: str = "8.0"
    runtime_archive: RuntimeArchiveSource | None = None

    @field_validator("working_directory")
    @classmethod
    def _root(cls, value: str | None) -> str | None:
        return None if value is None else working_directory_path(value)

    def check_identity_account(self, hosting: str) -> None:
        """The configured account suits the hosting (called by each kind's model validator)."""
        if self.identity.account is not None:
            try:
                identity_account(self.identity.account, hosting)
            except ValueError as error:
                raise ValueError(f"identity.account: {error}") from None

    @property
    def root(self) -> str:
        return working_directory(self.organization, self.working_directory)

"""The shape of a stack: ``hosts`` (name -> WinRM connection) and ``agents`` (a list).

Keys are camelCase as written in ``stacks/Pulumi.<stack>.yaml``; every model forbids unknown keys,
so a typo fails (with the nearest valid key suggested) instead of being ignored. Defaults are the
manual's (DOMAIN.md). Which values must be secrets is declared in ``secrets.SECRET_PATHS``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from components.args import (
    APPLICATION_URI_PATTERN,
    ORGANIZATION_PATTERN,
    DataFolderRights,
    IdentityKind,
    agent_identifier,
    dns_alias,
    working_directory_path,
)
from providers.iis_app_pool.model import pool_name
from providers.iis_prerequisites.model import hosting_bundle_version
from providers.iis_site.model import binding_address, site_name
from providers.transport.connection import HostConnection
from providers.windows_service.model import service_name

AGENT_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,39}$"
HOST_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9-]{0,39}$"
_THUMBPRINT = re.compile(r"^[0-9A-Fa-f]{40}$")
_SHA256 = re.compile(r"^[0-9A-Fa-f]{64}$")


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)


DEFAULT_PARALLEL_OPERATIONS = HostConnection.model_fields["max_parallel_operations"].default
DEFAULT_COMMAND_TIMEOUT_S = HostConnection.model_fields["command_timeout_s"].default


class HostingBundleSpec(_Schema):
    """The .NET Hosting Bundle installer for this host (``hosts.<name>.hostingBundle``), a file on this machine."""

    path: str = Field(
        min_length=1,
        description="Path of the installer you downloaded from Microsoft, e.g. dotnet-hosting-8.0.11-win.exe "
        "(relative paths start at the project directory). Run only when the host needs it.",
    )
    version: str = Field(
        pattern=r"^\d+\.\d+\.\d+$",
        description="The ASP.NET Core runtime version it installs, e.g. 8.0.11: installed when the host has none of "
        "that major.minor at this version or newer; repaired when AspNetCoreModuleV2 is missing.",
    )
    restart: bool = Field(
        False,
        description="Restart the host when the installer asks for it (exit code 3010) and wait for it; every other "
        "resource of the host then waits for the bundle. Off: the restart is reported (restartPending), not done.",
    )


class HostSpec(_Schema):
    """How to reach one Windows host over WinRM (``hosts.<name>``)."""

    address: str = Field(min_length=1, description="DNS name or IP address of the host (no scheme, no port).")
    port: int = Field(0, ge=0, le=65535, description="WinRM port; 0 means the standard one (5986 HTTPS, 5985 HTTP).")
    transport: Literal["ntlm", "kerberos", "credssp", "basic"] = Field(
        "ntlm", description="WinRM authentication; basic only over HTTPS."
    )
    use_https: bool = Field(True, description="HTTPS (recommended); over HTTP ntlm/kerberos encrypt messages.")
    validate_certificate: bool = Field(True, description="Validate the host's WinRM HTTPS certificate.")
    ca_bundle: str = Field("", description="PEM file of the CAs that issued the host's WinRM HTTPS certificate.")
    user: str = Field(min_length=1, description="WinRM account (a local administrator), e.g. CONTOSO\\deploy.")
    password: str = Field(min_length=1, description="Password of `user`. Always a secret.")
    max_parallel_operations: int = Field(
        DEFAULT_PARALLEL_OPERATIONS,
        ge=1,
        le=32,
        description="Operations run on this host at once, all in one shell and one powershell.exe.",
    )
    command_timeout_s: int = Field(
        DEFAULT_COMMAND_TIMEOUT_S,
        ge=30,
        le=86400,
        description="Longest one operation may run on this host, in seconds (the messages of a wait cut short name "
        "it command_timeout_s). Raise it for a slow host: an agent that takes long to stop or start, a large "
        "runtime archive.",
    )
    hosting_bundle: HostingBundleSpec | None = Field(
        None,
        description="The .NET Hosting Bundle installer to install or repair on this host; not set: the host must "
        "have it already (the prerequisites check says so). A restart it asks for is reported, done only with restart.",
    )

    def connection(self, password: Any) -> dict[str, Any]:
        """The resources' WinRM ``connection`` (providers.transport.HostConnection's fields), with
        ``password`` as given: the plain value to validate it, a Pulumi secret to declare resources."""
        return {
            "host": self.address,
            "port": self.port or None,
            "transport": self.transport,
            "use_https": self.use_https,
            "validate_certificate": self.validate_certificate,
            "ca_bundle": self.ca_bundle or None,
            "username": self.user,
            "password": password,
            # Only when set: a key every resource's connection gained would show as a change of each.
            **(
                {"max_parallel_operations": self.max_parallel_operations}
                if self.max_parallel_operations != DEFAULT_PARALLEL_OPERATIONS
                else {}
            ),
            **(
                {"command_timeout_s": self.command_timeout_s}
                if self.command_timeout_s != DEFAULT_COMMAND_TIMEOUT_S
                else {}
            ),
        }


class IdentitySpec(_Schema):
    """The account that runs the agent (``agents[i].identity``)."""

    kind: IdentityKind = Field(
        "ApplicationPoolIdentity",
        description="ApplicationPoolIdentity (IIS AppPool\\<pool>), GroupManagedServiceAccount (recommended custom "
        "account) or User.",
    )
    account: str = Field("", description="DOMAIN\\name of the gMSA (ending with $) or user; empty otherwise.")
    password: str = Field("", description="Password of a User account. Always a secret.")

    @model_validator(mode="after")
    def _consistent(self) -> IdentitySpec:
        if self.kind == "ApplicationPoolIdentity":
            if self.account or self.password:
                raise ValueError("ApplicationPoolIdentity takes no account or password; remove them")
            return self
        if "\\" not in self.account:
            raise ValueError(f"kind {self.kind} needs account as DOMAIN\\name (set identity.account)")
        if self.kind == "GroupManagedServiceAccount":
            if not self.account.endswith("$"):
                raise ValueError("a group managed service account name ends with '$' (identity.account)")
            if self.password:
                raise ValueError("a gMSA has no password (Windows manages it); remove identity.password")
        else:
            if self.account.endswith("$"):
                raise ValueError("an account ending with '$' is a gMSA; set identity.kind GroupManagedServiceAccount")
            if not self.password:
                raise ValueError("kind User needs identity.password (a secret)")
        return self


class CertificateSpec(_Schema):
    """A certificate with its private key: a PFX to import, or one already in LocalMachine\\My."""

    pfx: str = Field("", description="PFX file content, base64. Always a secret.")
    password: str = Field("", description="Password of the PFX. Always a secret.")
    thumbprint: str = Field("", description="Thumbprint of a certificate already in LocalMachine\\My (instead of pfx).")

    @model_validator(mode="after")
    def _one_source(self) -> CertificateSpec:
        if self.thumbprint:
            if self.pfx or self.password:
                raise ValueError("give either thumbprint (a certificate already in the store) or pfx + password")
            if not _THUMBPRINT.match(self.thumbprint):
                raise ValueError(f"thumbprint {self.thumbprint!r} is not 40 hexadecimal characters")
            return self
        if not self.pfx or not self.password:
            raise ValueError("give pfx and password (secrets), or the thumbprint of a certificate in LocalMachine\\My")
        return self

    @property
    def from_store(self) -> bool:
        return bool(self.thumbprint)


class RuntimeArchiveSpec(_Schema):
    """The vendor's runtime archive for ``Runtime`` (``agents[i].runtimeArchive``), a zip on this machine."""

    path: str = Field(
        min_length=1,
        description="Path of the zip the vendor distributes (relative paths start at the project directory). "
        "This project never ships or downloads it.",
    )
    sha256: str = Field(
        "",
        description="Expected SHA-256 of the file (64 hexadecimal digits); a file that does not match is refused "
        "before any host is contacted. Empty: not checked.",
    )

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str) -> str:
        if value and not _SHA256.match(value):
            raise ValueError(f"{value!r} is not a SHA-256: give 64 hexadecimal digits (e.g. from `sha256sum FILE`)")
        return value.lower()


class AgentSettingsSpec(_Schema):
    """What goes into appsettings.agent.json (``agents[i].settings``)."""

    agent_identifier: str = Field(
        "", max_length=64, description="OpenId.AgentIdentifier; any name but the reserved 'Local' (production agents)."
    )
    application_uri: str = Field("", description="URL of the Identity Manager server (production agents).")
    open_id_clients: dict[str, str] = Field(
        default_factory=dict, description="OpenId client name -> secret (OpenIdClients). Values always secrets."
    )
    default_open_id_client: str = Field("", description="DefaultOpenIdClient; empty means the only client.")
    connections: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Managed systems (Connections), e.g. ADExport; keys naming a password or secret must be secrets.",
    )

    @field_validator("agent_identifier")
    @classmethod
    def _identifier(cls, value: str) -> str:
        return agent_identifier(value) if value else value

    @field_validator("application_uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        if value and not re.match(APPLICATION_URI_PATTERN, value):
            raise ValueError(f"{value!r} is not an https:// URL of the Identity Manager server")
        return value

    @property
    def default_client(self) -> str:
        if self.default_open_id_client:
            return self.default_open_id_client
        return next(iter(self.open_id_clients)) if len(self.open_id_clients) == 1 else ""


class AgentSpec(_Schema):
    """One agent (``agents[i]``): a production agent, or the integrated agent inside the server."""

    name: str = Field(pattern=AGENT_NAME_PATTERN, description="Name in the stack (resource names): lower case, '-'.")
    kind: Literal["production", "integrated"] = Field(description="production (separate agent) or integrated (server).")
    host: str = Field(description="Key of `hosts` this agent runs on.")
    organization: str = Field(pattern=ORGANIZATION_PATTERN, description="Organization, used in default names.")
    working_directory: str = Field("", description="Working directory; empty means C:\\identitymanager<organization>.")
    hosting: Literal["iis", "service"] = Field("iis", description="iis (the manual's choice) or service (production).")
    site_name: str = Field("", description="IIS site; default 'Identity Manager Agent <org>' (server: '... <org>').")
    pool_name: str = Field("", description="IIS pool; default IdentityManagerAgent<org> (server IdentityManager<org>).")
    service_name: str = Field("", description="Windows service (hosting: service); default IdentityManagerAgent<org>.")
    host_name: str = Field(description="The agent's DNS alias, lower case: binding host header and certificate name.")
    ip_address: str = Field(
        "*", description="IP address of the bindings: * (all unassigned), IPv4, or IPv6 with or without [ ]."
    )
    https_port: int = Field(443, ge=1, le=65535, description="Port of the https binding.")
    http_port: int = Field(0, ge=0, le=65535, description="Port of an additional plain-http binding; 0 means none.")
    identity: IdentitySpec = Field(default_factory=IdentitySpec, description="The account that runs the agent.")
    ssl_certificate: CertificateSpec | None = Field(None, description="SSL certificate of the https binding (iis).")
    encryption_certificate: CertificateSpec = Field(description="Encryption key pair (RSA >= 2048, SHA-256).")
    identity_server_certificate: CertificateSpec | None = Field(
        None, description="Identity-server key pair (integrated only)."
    )
    settings: AgentSettingsSpec = Field(default_factory=AgentSettingsSpec, description="appsettings.agent.json.")
    license: str = Field("", description="License key (integrated only). Always a secret.")
    connection_string: str = Field("", description="Database connection string (integrated only). Always a secret.")
    data_folder_rights: DataFolderRights = Field("Modify", description="Rights on Temp, Work and Mails.")
    remove_default_site: bool = Field(
        True,
        description="Remove the Default Web Site and DefaultAppPool (host-wide); refused (DefaultSiteHasContent) "
        "when applications or virtual directories were added to the site, which a restore could not bring back.",
    )
    rsat_ad_tools: bool = Field(False, description="Also install RSAT AD DS Snap-Ins and Command-Line Tools.")
    install_features: bool = Field(True, description="Install Web-Server and Web-AppInit (iis).")
    minimum_hosting_bundle: str = Field("8.0", description="Lowest hosting bundle (8.0 or newer).")
    display_name: str = Field("", description="DisplayName_L1 of the agent in the XML configuration.")
    runtime_archive: RuntimeArchiveSpec | None = Field(
        None,
        description="The vendor's runtime archive, uploaded and extracted into Runtime (upgraded when it changes); "
        "not set: Runtime is left as it is.",
    )
    verify: bool = Field(
        True,
        description="After up, check from the host that the agent answers (HTTPS with its host name and bound "
        "certificate; the server's /hc: Healthy; a service: running), naming the likely cause when not; false: skip.",
    )

    @field_validator("host_name")
    @classmethod
    def _dns(cls, value: str) -> str:
        return dns_alias(value)

    @field_validator("working_directory")
    @classmethod
    def _path(cls, value: str) -> str:
        return working_directory_path(value) if value else value

    # The resources' own checks (one definition each), so a name IIS or the service control manager
    # would refuse stops the program before any resource is declared, not at that resource's turn.
    @field_validator("site_name")
    @classmethod
    def _site(cls, value: str) -> str:
        return site_name(value) if value else value

    @field_validator("pool_name")
    @classmethod
    def _pool(cls, value: str) -> str:
        return pool_name(value) if value else value

    @field_validator("service_name")
    @classmethod
    def _service(cls, value: str) -> str:
        return service_name(value) if value else value

    @field_validator("ip_address")
    @classmethod
    def _ip(cls, value: str) -> str:
        return binding_address(value)

    @field_validator("minimum_hosting_bundle")
    @classmethod
    def _bundle(cls, value: str) -> str:
        return hosting_bundle_version(value)

    # -- effective values (the manual's defaults) -------------------------------------------------

    @property
    def root(self) -> str:
        return self.working_directory or f"C:\\identitymanager{self.organization}"

    @property
    def effective_site_name(self) -> str:
        default = "Identity Manager" if self.kind == "integrated" else "Identity Manager Agent"
        return self.site_name or f"{default} {self.organization}"

    @property
    def effective_pool_name(self) -> str:
        default = "IdentityManager" if self.kind == "integrated" else "IdentityManagerAgent"
        return self.pool_name or f"{default}{self.organization}"

    @property
    def effective_service_name(self) -> str:
        return self.service_name or f"IdentityManagerAgent{self.organization}"

    @property
    def identifier(self) -> str:
        """The agent's Identifier in the XML configuration; the integrated agent is 'Local'."""
        return "Local" if self.kind == "integrated" else self.settings.agent_identifier

    @property
    def url(self) -> str:
        port = "" if self.https_port == 443 else f":{self.https_port}"
        return f"https://{self.host_name}{port}"


class EstateSpec(_Schema):
    """The whole environment: ``hosts`` and ``agents``."""

    hosts: dict[str, HostSpec] = Field(min_length=1, description="Host name -> WinRM connection.")
    agents: list[AgentSpec] = Field(min_length=1, description="Every agent of the environment.")

    @field_validator("hosts")
    @classmethod
    def _host_names(cls, value: dict[str, HostSpec]) -> dict[str, HostSpec]:
        for name in value:
            if not re.match(HOST_NAME_PATTERN, name):
                raise ValueError(f"host name {name!r}: use letters, digits and '-' (it names resources)")
        return value

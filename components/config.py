"""The stack configuration, typed and validated before any resource is declared.

Every error names the configuration key (as written in ``stacks/Pulumi.<stack>.yaml``) and the fix.
"""

from __future__ import annotations

from typing import Any, Literal

import pulumi
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from providers.framework.validators import windows_absolute_path

PROJECT = "usercube-agents"


class ConfigError(Exception):
    pass


class StackConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    windows_host: str = Field(alias="windowsHost")
    winrm_port: int = Field(0, alias="winrmPort", ge=0, le=65535)
    winrm_transport: str = Field("ntlm", alias="winrmTransport", pattern="^(ntlm|kerberos|credssp|basic)$")
    winrm_use_https: bool = Field(True, alias="winrmUseHttps")
    winrm_validate_certificate: bool = Field(True, alias="winrmValidateCertificate")
    winrm_ca_bundle: str = Field("", alias="winrmCaBundle")
    winrm_user: str = Field(alias="winrmUser", min_length=1)
    organization: str = Field("Contoso", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
    working_directory: str = Field("", alias="workingDirectory")
    agent_identifier: str = Field(alias="agentIdentifier", min_length=1, max_length=64)
    application_uri: str = Field(alias="applicationUri", pattern=r"^https://[^\s/]+(/\S*)?$")
    hosting: Literal["iis", "service"] = "iis"
    host_name: str = Field(alias="hostName", min_length=1)
    site_name: str = Field("", alias="siteName")
    pool_name: str = Field("", alias="poolName")
    https_port: int = Field(443, alias="httpsPort", ge=1, le=65535)
    http_port: int = Field(0, alias="httpPort", ge=0, le=65535)
    identity_kind: Literal["ApplicationPoolIdentity", "GroupManagedServiceAccount", "User"] = Field(
        "ApplicationPoolIdentity", alias="identityKind"
    )
    identity_account: str = Field("", alias="identityAccount")
    data_folder_rights: Literal["Modify", "FullControl"] = Field("Modify", alias="dataFolderRights")
    remove_default_site: bool = Field(True, alias="removeDefaultSite")
    rsat_ad_tools: bool = Field(False, alias="rsatAdTools")

    @field_validator("agent_identifier")
    @classmethod
    def _not_local(cls, value: str) -> str:
        if value.lower() == "local":
            raise ValueError("'Local' is reserved by Identity Manager for the integrated agent; choose another name")
        return value

    @field_validator("working_directory")
    @classmethod
    def _path(cls, value: str) -> str:
        return windows_absolute_path(value) if value else value

    @property
    def effective_working_directory(self) -> str:
        return self.working_directory or f"C:\\identitymanager{self.organization}"

    def connection(self, password: pulumi.Output[str]) -> dict[str, Any]:
        """The WinRM connection input of every resource; the password stays a Pulumi secret."""
        return {
            "host": self.windows_host,
            "port": self.winrm_port or None,
            "transport": self.winrm_transport,
            "use_https": self.winrm_use_https,
            "validate_certificate": self.winrm_validate_certificate,
            "ca_bundle": self.winrm_ca_bundle or None,
            "username": self.winrm_user,
            "password": password,
        }


def load() -> tuple[StackConfig, dict[str, pulumi.Output[str]]]:
    """Read and validate the stack configuration; return it with its secrets (as secret Outputs)."""
    config = pulumi.Config(PROJECT)
    raw: dict[str, Any] = {}
    for name, field in StackConfig.model_fields.items():
        key = field.alias or name
        value = config.get_object(key) if field.annotation in (int, bool) else config.get(key)
        if value is not None:
            raw[key] = value
    try:
        settings = StackConfig.model_validate(raw)
    except ValidationError as error:
        lines = []
        for item in error.errors(include_url=False):
            key = ".".join(str(part) for part in item["loc"])
            message = "is required" if item["type"] == "missing" else item["msg"].removeprefix("Value error, ")
            lines.append(f"  {PROJECT}:{key} {message} (set it with `pulumi config set {key} ...`)")
        raise ConfigError("invalid stack configuration:\n" + "\n".join(lines)) from None
    secrets = {
        key: config.require_secret(key)
        for key in (
            "winrmPassword",
            "openIdClientSecret",
            "sslPfx",
            "sslPfxPassword",
            "encryptionPfx",
            "encryptionPfxPassword",
        )
    }
    if settings.identity_kind == "User":
        secrets["identityPassword"] = config.require_secret("identityPassword")
    return settings, secrets

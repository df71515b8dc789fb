"""The AgentVerification properties: the single source of truth for validation, diffs and docs."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import field_validator, model_validator

from providers.framework.model import ResourceModel, prop
from providers.framework.validators import windows_absolute_path

_THUMBPRINT = re.compile(r"^[0-9A-Fa-f]{40}$")
_FAMILY = re.compile(r"^\d+\.\d+$")


class AgentVerificationModel(ResourceModel):
    """Checks, from the host itself, that an agent answers: its HTTPS endpoint requested with its host name (the
    server's /hc must answer Healthy) serving the certificate bound, or its Windows service running. When it does
    not, names the likely cause (site or pool stopped, binding or certificate missing, hosting bundle or
    AspNetCoreModuleV2 missing, runtime missing, private key not readable by the agent's account). Changes nothing."""

    kind = "AgentVerification"

    hosting: Literal["iis", "service"] = prop(description="iis: request the site; service: the service must run.")
    url: str = prop(
        description="The agent's URL as clients use it (shown in messages), e.g. https://agent.contoso.com."
    )
    host_name: str = prop("", description="Host name sent as the TLS server name (SNI) and in the Host header.")
    port: int = prop(443, description="Port of the https binding.", ge=1, le=65535)
    ip_address: str = prop("*", description="Address of the binding; * is requested on 127.0.0.1.")
    path: str = prop(
        "/",
        description="Path requested: /hc for the server (Identity Manager's health check), / for an agent.",
        manual="install-server-6.2: Test Your Installation (<hostname>:<port>/hc answers Healthy)",
    )
    expect_body: str = prop(
        "",
        description="The exact body the path must answer with status 200 (Healthy for /hc). Empty: any answer of the "
        "agent itself passes (not a 5xx, not an IIS or ASP.NET Core Module error page).",
    )
    expected_thumbprint: str = prop(
        "", description="Thumbprint of the certificate the stack bound: the one the endpoint must serve."
    )
    site_name: str = prop("", description="IIS site of the agent (for the causes).")
    pool_name: str = prop("", description="IIS application pool of the agent (for the causes).")
    service_name: str = prop("", description="Windows service of the agent (hosting service).")
    runtime_path: str = prop(description="The agent's Runtime folder.")
    app_file: str = prop(
        description="The agent's main file in Runtime: identitymanager-Agent.dll, identitymanager-Server.dll or "
        "Usercube-Agent.exe; missing means the runtime was not extracted.",
        manual="install-production-agent-6.1: working directory content (the runtime archive)",
    )
    identity: str = prop(description="The account the agent runs as (IIS APPPOOL\\<pool>, a gMSA or a user).")
    key_thumbprints: list[str] = prop(
        [], description="Certificates whose private keys the agent opens (encryption, identity server)."
    )
    runtime_family: str = prop("8.0", description="The ASP.NET Core major.minor the agent runs on.")
    wait_seconds: int = prop(
        60,
        description="How long a failure with no cause in the configuration (a pool starting) is asked again.",
        ge=0,
        le=600,
    )
    answers: bool = prop(
        True,
        description="Whether the agent answers. Always true as desired; refresh asks again, so an agent that stopped "
        "answering is drift (named with its cause in the warning), and `up --refresh` checks it again after repairs.",
        manual="install-production-agent-6.1: Verify Agent Installation",
    )

    @field_validator("runtime_path")
    @classmethod
    def _folder(cls, value: str) -> str:
        return windows_absolute_path(value)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or any(c.isspace() for c in value):
            raise ValueError(f"{value!r} is not a URL path: start it with '/', without spaces")
        return value

    @field_validator("runtime_family")
    @classmethod
    def _family(cls, value: str) -> str:
        if not _FAMILY.match(value):
            raise ValueError(f"{value!r} is not a major.minor like 8.0")
        return value

    @field_validator("key_thumbprints")
    @classmethod
    def _thumbprints(cls, value: list[str]) -> list[str]:
        for thumbprint in value:
            if not _THUMBPRINT.match(thumbprint):
                raise ValueError(f"{thumbprint!r} is not a certificate thumbprint (40 hexadecimal digits)")
        return [thumbprint.upper() for thumbprint in value]

    @model_validator(mode="after")
    def _hosting(self) -> AgentVerificationModel:
        if self.hosting == "iis":
            missing = [key for key in ("host_name", "site_name", "pool_name") if not getattr(self, key)]
            if missing:
                raise ValueError(f"hosting iis needs {', '.join(missing)}")
            if not _THUMBPRINT.match(self.expected_thumbprint):
                raise ValueError("expected_thumbprint: give the thumbprint (40 hex digits) of the bound certificate")
        elif not self.service_name:
            raise ValueError("hosting service needs service_name")
        return self

    def resource_id(self) -> str:
        return self.url if self.hosting == "iis" else f"service {self.service_name}"

    def script_input(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"connection", "answers"})

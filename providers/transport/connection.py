"""How to reach one Windows host over WinRM: the settings, validated before any network call."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Literal

from cryptography import x509
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

WinRMTransportKind = Literal["ntlm", "kerberos", "credssp", "basic"]

# A DNS name or an IPv4/IPv6 literal; no scheme, port or path (those have their own settings).
_HOST_PATTERN = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:]+:[0-9A-Fa-f:.]*|[A-Za-z0-9]([A-Za-z0-9.-]{0,252}))$")


def ca_bundle_file(path: str) -> str:
    """A readable PEM file holding at least one CA certificate: what pywinrm hands to requests (``verify``)
    and requests to OpenSSL, which would otherwise fail at the first connection with an error that names
    neither the setting nor the file. Checked locally, before any host is contacted."""
    fix = "give the PEM file of the CAs that issued the host's WinRM HTTPS certificate"
    file = Path(path)
    if not file.exists():
        raise ValueError(f"file {path!r} does not exist; {fix}")
    if not file.is_file():
        raise ValueError(f"{path!r} is not a file; {fix}")
    try:
        data = file.read_bytes()
    except OSError as error:
        raise ValueError(f"file {path!r} cannot be read ({error.strerror}); {fix}") from None
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ValueError(
            f"file {path!r} holds no valid PEM certificate ('-----BEGIN CERTIFICATE-----' ...); {fix}, e.g. "
            "converted from DER with `openssl x509 -inform der -in ca.cer -out ca.pem`"
        ) from None
    return path


def port_in_use(port: int | None, use_https: bool) -> int:
    """The WinRM port a connection really uses: the declared one, or WinRM's default listener port (5986 for
    HTTPS, 5985 for HTTP) when none (or 0) is declared."""
    return port if port else (5986 if use_https else 5985)


class HostConnection(BaseModel):
    """WinRM connection settings for one host. ``password`` must reach us as a Pulumi secret."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(description="DNS name or IP address of the Windows host (no scheme, no port).")
    port: int | None = Field(
        default=None, ge=1, le=65535, description="WinRM port; default 5986 with HTTPS, 5985 without."
    )
    transport: WinRMTransportKind = Field(
        default="ntlm", description="Authentication: ntlm, kerberos, credssp, or basic (HTTPS only)."
    )
    use_https: bool = Field(default=True, description="Use HTTPS (recommended); HTTP relies on message encryption.")
    validate_certificate: bool = Field(
        default=True, description="Validate the host's HTTPS certificate. Turn off only for throw-away labs."
    )
    ca_bundle: str | None = Field(
        default=None, description="PEM file of CA certificates to trust for the host's HTTPS certificate."
    )
    username: str = Field(min_length=1, description="Account on the host, e.g. DOMAIN\\deploy or deploy@domain.")
    password: str = Field(min_length=1, repr=False, description="Password of that account (a Pulumi secret).")
    operation_timeout_s: int = Field(default=20, ge=1, le=3600, description="WS-Man OperationTimeout per request.")
    read_timeout_s: int = Field(default=30, ge=2, le=3600, description="HTTP connect/read time-out per request.")
    command_timeout_s: int = Field(default=600, ge=1, le=86400, description="Longest a single script may run.")
    retries: int = Field(
        default=3, ge=0, le=10, description="Retries of an idempotent operation after a transient failure."
    )
    max_parallel_operations: int = Field(
        default=8, ge=1, le=32, description="Operations in flight on this host at once (one shell, one process)."
    )
    process_max_requests: int = Field(
        default=1000, ge=1, le=100000, description="Requests a PowerShell process answers before it is replaced."
    )
    process_max_memory_mb: int = Field(
        default=1024, ge=64, le=65536, description="Working set after which a PowerShell process is replaced."
    )

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not _HOST_PATTERN.match(value):
            raise ValueError(
                f"{value!r} is not a DNS name or IP address; give only the name, "
                "without 'http://', port or path (set 'port' and 'use_https' separately)"
            )
        return value

    @field_validator("ca_bundle")
    @classmethod
    def _ca_bundle(cls, value: str | None) -> str | None:
        return None if value is None else ca_bundle_file(value)

    @model_validator(mode="after")
    def _check_consistency(self) -> HostConnection:
        if self.transport == "basic" and not self.use_https:
            raise ValueError(
                "transport 'basic' over plain HTTP would send the password readable on the wire; "
                "set use_https=true or use transport 'ntlm'/'kerberos' (which encrypt messages over HTTP)"
            )
        if self.read_timeout_s <= self.operation_timeout_s:
            raise ValueError(
                f"read_timeout_s ({self.read_timeout_s}) must be greater than operation_timeout_s "
                f"({self.operation_timeout_s}): the host may hold a request open that long"
            )
        return self

    @property
    def effective_port(self) -> int:
        return port_in_use(self.port, self.use_https)

    @property
    def endpoint(self) -> str:
        scheme = "https" if self.use_https else "http"
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{scheme}://{host}:{self.effective_port}/wsman"

    @property
    def label(self) -> str:
        """How errors name the host: address and port, never credentials."""
        return f"{self.host}:{self.effective_port}"

    def fingerprint(self) -> str:
        """Identifies sessions that may be shared; includes a hash of the password so a rotation opens a new one."""
        payload = json.dumps(self.model_dump(), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()

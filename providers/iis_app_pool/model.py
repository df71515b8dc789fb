"""The IisAppPool properties: the single source of truth for validation, diffs, secrets and docs."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import field_validator, model_validator

from providers.framework.model import ResourceModel, prop

IdentityType = Literal["ApplicationPoolIdentity", "NetworkService", "LocalSystem", "LocalService", "SpecificUser"]

# IIS's applicationPoolName validation refuses these; '$' and '%' are refused too because the pool
# name becomes the account IIS APPPOOL\<name>, and a trailing '$' would read as a machine account.
_POOL_FORBIDDEN = set("\\/\"[]:|<>+=;,?*'$%&")
_ACCOUNT = re.compile(r"^[^\\/\s][^\\/]*\\[^\\/\s][^\\/]*$")
MAX_MINUTES = 43_200  # 30 days: the largest time-outs IIS Manager accepts for these settings


def pool_name(value: str) -> str:
    """A name IIS accepts for an application pool (also used for IIS APPPOOL\\<name>)."""
    if not value or value.strip() != value:
        raise ValueError(f"{value!r}: give a non-empty name without leading or trailing spaces")
    bad = sorted({c for c in value if c in _POOL_FORBIDDEN or ord(c) < 32})
    if bad:
        raise ValueError(
            f"{value!r} contains {''.join(bad)!r}; a pool name holds none of \\ / \" [ ] : | < > + = ; , ? * ' "
            "(IIS refuses them) nor $ % & (the name becomes the account IIS APPPOOL\\<name>): leave them out, "
            "e.g. 'IdentityManagerAgentContoso'"
        )
    if value in (".", ".."):
        raise ValueError(f"{value!r} is not a valid application pool name")
    if len(value) > 64:
        raise ValueError(f"{value!r} has {len(value)} characters; keep pool names to 64 (the IIS APPPOOL account name)")
    return value


def pool_identity_user(value: str) -> str:
    """The SpecificUser account of a pool: a down-level logon name DOMAIN\\name."""
    if not _ACCOUNT.match(value):
        raise ValueError(f"{value!r}: give the account as DOMAIN\\name (down-level logon name), e.g. CONTOSO\\svc-im")
    return value


class IisAppPoolModel(ResourceModel):
    """One IIS application pool; defaults are the manual's settings for the Identity Manager pool."""

    kind = "IisAppPool"

    name: str = prop(
        description="Pool name, e.g. 'Identity Manager Contoso'. The built-in identity is then 'IIS APPPOOL\\<name>'.",
        replaces=True,
        manual="install-agents-6.2: Application Pool > Identity Manager <Organization>",
    )
    managed_runtime_version: Literal["", "v4.0", "v2.0"] = prop(
        "",
        description="'' is 'No Managed Code', which the manual makes mandatory for ASP.NET Core; v4.0 is accepted "
        "for pools that host something else, but the agent and server do not need it.",
        manual="install-agents-6.2: .NET CLR Version > No Managed Code (mandatory)",
    )
    pipeline_mode: Literal["Integrated", "Classic"] = prop("Integrated", description="Managed pipeline mode.")
    start_mode: Literal["AlwaysRunning", "OnDemand"] = prop(
        "AlwaysRunning",
        description="AlwaysRunning starts the worker with IIS, so the agent's scheduler runs without a first request.",
        manual="install-agents-6.2: Advanced Settings > General > Start Mode = AlwaysRunning",
    )
    idle_timeout_minutes: int = prop(
        0,
        description="Idle time-out in minutes; 0 never shuts the worker down.",
        manual="install-agents-6.2: Process Model > Idle Time-out (minutes) = 0",
        ge=0,
        le=MAX_MINUTES,
    )
    load_user_profile: bool = prop(
        True, description="Load the identity's user profile.", manual="install-agents-6.2: Load User Profile = True"
    )
    periodic_restart_minutes: int = prop(
        0,
        description="Regular recycling interval in minutes; 0 disables it (recycling breaks the server-agent link).",
        manual="install-agents-6.2: Recycling > Regular time interval = 0",
        ge=0,
        le=MAX_MINUTES,
    )
    identity_type: IdentityType = prop(
        "ApplicationPoolIdentity",
        description="Who the pool runs as: the built-in ApplicationPoolIdentity (IIS APPPOOL\\<name>), a built-in "
        "account, or SpecificUser (identity_user; a gMSA is recommended).",
        manual="install-agents-6.2: Set an IIS Identity",
    )
    identity_user: str | None = prop(
        None,
        description="For SpecificUser: DOMAIN\\user, or a group managed service account DOMAIN\\name$ (no password).",
        manual="agent-requirements: service account / gMSA",
    )
    identity_password: str | None = prop(
        None,
        description="For SpecificUser with a user account: its password (a Pulumi secret; IIS stores it encrypted). "
        "Never given for a gMSA.",
        secret=True,
    )
    state: Literal["Started", "Stopped"] = prop("Started", description="Whether the pool runs (and starts with IIS).")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return pool_name(value)

    @field_validator("identity_user")
    @classmethod
    def _user(cls, value: str | None) -> str | None:
        return None if value is None else pool_identity_user(value)

    @model_validator(mode="after")
    def _identity(self) -> IisAppPoolModel:
        if self.identity_type != "SpecificUser":
            if self.identity_user is not None or self.identity_password is not None:
                raise ValueError(
                    f"identity_user and identity_password apply to identity_type SpecificUser only; "
                    f"remove them or set identity_type to SpecificUser (it is {self.identity_type})"
                )
            return self
        if self.identity_user is None:
            raise ValueError("identity_type SpecificUser needs identity_user (DOMAIN\\user or DOMAIN\\gmsa$)")
        gmsa = self.identity_user.endswith("$")
        if gmsa and self.identity_password is not None:
            raise ValueError(
                f"{self.identity_user!r} is a group managed service account: Windows manages its password; "
                "remove identity_password"
            )
        if not gmsa and not self.identity_password:
            raise ValueError(
                f"identity_password is required for the user account {self.identity_user!r} "
                "(or use a group managed service account DOMAIN\\name$, which needs none)"
            )
        return self

    def resource_id(self) -> str:
        return self.name

"""The IisSite properties: the single source of truth for validation, diffs, secrets and docs."""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from providers.framework.model import ResourceModel, prop
from providers.framework.validators import MAX_FOLDER_PATH, windows_absolute_path
from providers.iis_app_pool.model import pool_name

# IIS's siteName validation refuses these characters.
_SITE_FORBIDDEN = set('\\/?;:@&=+$,|"<>*')
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_THUMBPRINT = re.compile(r"^[0-9A-F]{40}$")


def binding_address(value: str) -> str:
    """The address part of a binding: '*' (all unassigned), an IPv4 address in dotted decimal, or an
    IPv6 address with or without the brackets IIS writes around it in bindingInformation
    ('[2001:db8::5]:443:host'); returned in Python's canonical form (IPv6 compressed, lower case, no
    brackets), so two spellings of one address compare equal. A zone index ('fe80::1%12') is refused:
    it names an interface of one machine, and bindingInformation has no place for it."""
    if value == "*":
        return value
    bracketed = value.startswith("[") and value.endswith("]")
    text = value[1:-1] if bracketed else value
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        address = None
    if address is None or (bracketed and address.version == 4) or "%" in text:
        raise ValueError(
            f"{value!r} is not '*' or an IP address; give '*' (all unassigned), an IPv4 address (10.0.0.5) or an "
            "IPv6 address without a zone index (2001:db8::5 or [2001:db8::5])"
        )
    return str(address)


class BindingModel(BaseModel):
    """One site binding, as IIS Manager's Edit Bindings dialog has it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    protocol: Literal["http", "https"] = Field(description="http or https.")
    ip_address: str = Field("*", description="'*' (all unassigned) or one IPv4/IPv6 address of the host.")
    port: int = Field(description="TCP port, 1-65535.", ge=1, le=65535)
    host_header: str = Field("", description="Host name the binding answers to ('' = any); lower case.")
    certificate_thumbprint: str | None = Field(
        None,
        description="https only: SHA-1 thumbprint (40 hex digits) of a certificate in Cert:\\LocalMachine\\<store>.",
    )
    certificate_store: str | None = Field(None, description="https only: the store, My (default) or WebHosting.")
    sni: bool = Field(False, description="https with a host header only: Server Name Indication.")

    @field_validator("ip_address")
    @classmethod
    def _ip(cls, value: str) -> str:
        return binding_address(value)

    @field_validator("host_header")
    @classmethod
    def _host(cls, value: str) -> str:
        host = value.lower()
        if host and not all(_HOST_LABEL.match(label) for label in host.removeprefix("*.").split(".")):
            raise ValueError(f"{value!r} is not a DNS host name (letters, digits, '-' and '.', e.g. agent.contoso.com)")
        return host

    @field_validator("certificate_thumbprint")
    @classmethod
    def _thumbprint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        cleaned = value.replace(" ", "").upper()
        if not _THUMBPRINT.match(cleaned):
            raise ValueError(f"{value!r} is not a certificate thumbprint: 40 hexadecimal digits (SHA-1)")
        return cleaned

    @field_validator("certificate_store")
    @classmethod
    def _store(cls, value: str | None) -> str | None:
        if value is not None and value not in ("My", "WebHosting"):
            raise ValueError(f"{value!r}: IIS binds certificates from the LocalMachine store My or WebHosting")
        return value

    @model_validator(mode="after")
    def _tls(self) -> BindingModel:
        if self.protocol == "http":
            if self.certificate_thumbprint is not None or self.certificate_store is not None or self.sni:
                raise ValueError("an http binding takes no certificate_thumbprint, certificate_store or sni; use https")
            return self
        if self.certificate_thumbprint is None:
            raise ValueError("an https binding needs certificate_thumbprint (the SSL certificate in LocalMachine\\My)")
        if self.sni and not self.host_header:
            raise ValueError("sni needs a host_header: Server Name Indication selects the certificate by host name")
        if self.certificate_store is None:
            object.__setattr__(self, "certificate_store", "My")
        return self

    def binding_information(self) -> str:
        """IIS's '<ip>:<port>:<host>' (IPv6 in brackets)."""
        ip = self.ip_address
        if ip != "*" and ":" in ip:
            ip = f"[{ip}]"
        return f"{ip}:{self.port}:{self.host_header}"

    def endpoint(self) -> tuple[str, int, str]:
        return self.ip_address, self.port, self.host_header

    @staticmethod
    def from_host(item: dict[str, Any]) -> dict[str, Any]:
        """A binding as the get script reports it, in this model's form."""
        info = str(item["binding_information"])
        if info.startswith("["):
            closing = info.index("]")
            ip, rest = info[1:closing], info[closing + 2 :]
        else:
            ip, rest = info.split(":", 1)
        port, host = rest.split(":", 1)
        https = item["protocol"] == "https"
        return {
            "protocol": item["protocol"],
            "ip_address": ip,
            "port": int(port),
            "host_header": host,
            "certificate_thumbprint": item.get("certificate_hash") if https else None,
            "certificate_store": item.get("certificate_store") if https else None,
            "sni": bool(int(item.get("ssl_flags") or 0) & 1),
        }


def site_name(value: str) -> str:
    if not value or value.strip() != value:
        raise ValueError(f"{value!r}: give a non-empty name without leading or trailing spaces")
    bad = sorted({c for c in value if c in _SITE_FORBIDDEN or ord(c) < 32})
    if bad:
        raise ValueError(
            f'{value!r} contains {"".join(bad)!r}; IIS refuses \\ / ? ; : @ & = + $ , | " < > * in site names: '
            "leave them out, e.g. 'Identity Manager Agent Contoso'"
        )
    return value


class IisSiteModel(ResourceModel):
    """One IIS site with its root application in an existing pool."""

    kind = "IisSite"

    name: str = prop(
        description="Site name, e.g. 'Identity Manager Agent Contoso'.",
        replaces=True,
        manual="install-agents-6.2: Create an IIS Website, Step 1 (site name)",
    )
    physical_path: str = prop(
        description="The root folder: the working directory's Runtime folder "
        "(e.g. C:\\identitymanagerContoso\\Runtime).",
        manual="install-agents-6.2: web.config dwells in the runtime directory",
    )
    app_pool: str = prop(description="The application pool of the root application (an IisAppPool's name).")
    bindings: list[BindingModel] = prop(
        description="The site's bindings: http and/or https (host name and port reserved for Identity Manager; "
        "https with the SSL certificate). A change updates the site in place.",
        manual="install-saas-full-guide: Configure the Pool and Site, step 6 (https binding, 443, host name)",
        min_length=1,
    )
    preload_enabled: bool = prop(
        True,
        description="Preload the root application when the pool starts (with start mode AlwaysRunning).",
        manual="install-agents-6.2: Configure the Starting Mode in IIS (preloadEnabled = true)",
    )
    state: Literal["Started", "Stopped"] = prop("Started", description="Whether the site runs (and starts with IIS).")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return site_name(value)

    @field_validator("app_pool")
    @classmethod
    def _pool(cls, value: str) -> str:
        return pool_name(value)

    @field_validator("physical_path")
    @classmethod
    def _path(cls, value: str) -> str:
        return windows_absolute_path(value, max_length=MAX_FOLDER_PATH)

    @field_validator("bindings")
    @classmethod
    def _unique(cls, value: list[BindingModel]) -> list[BindingModel]:
        # HTTP.sys serves one binding per address, port and host name, whatever the protocol.
        seen: dict[tuple[str, int, str], int] = {}
        for index, binding in enumerate(value):
            key = binding.endpoint()
            if key in seen:
                raise ValueError(
                    f"bindings {seen[key]} and {index} both use {binding.binding_information()!r}; "
                    "each address, port and host name can appear once"
                )
            seen[key] = index
        # Without SNI, HTTP.sys keeps one certificate per address and port (the ip:port entry of
        # `netsh http show sslcert`), whatever the host names: two such bindings with different
        # certificates would overwrite each other's entry on every `up`.
        certificates: dict[tuple[str, int], tuple[int, str | None]] = {}
        for index, binding in enumerate(value):
            if binding.protocol != "https" or binding.sni:
                continue
            endpoint = (binding.ip_address, binding.port)
            first = certificates.setdefault(endpoint, (index, binding.certificate_thumbprint))
            if first[1] != binding.certificate_thumbprint:
                raise ValueError(
                    f"bindings {first[0]} and {index} share the HTTP.sys entry {binding.ip_address}:{binding.port} "
                    "(https without SNI) with different certificates; HTTP.sys keeps one certificate per address "
                    "and port: use sni: true with a host name, or the same certificate"
                )
        return value

    def resource_id(self) -> str:
        return self.name

    def script_input(self) -> dict[str, Any]:
        data = super().script_input()
        # The host sees IIS's own binding form; the model's form is rebuilt from get (actual_from).
        data["bindings"] = [
            {
                "protocol": b.protocol,
                "binding_information": b.binding_information(),
                "ssl_flags": 1 if b.sni else 0,
                "certificate_hash": b.certificate_thumbprint,
                "certificate_store": b.certificate_store,
            }
            for b in self.bindings
        ]
        return data

    def actual_from(self, state: dict[str, Any]) -> dict[str, Any]:
        actual = {key: state[key] for key in ("name", "physical_path", "app_pool", "preload_enabled", "state")}
        # A site's bindings are exactly the declared ones (set removes any other), so a non-HTTP
        # binding added by hand (WCF non-HTTP activation: net.tcp '808:*', net.pipe '*',
        # msmq.formatname 'localhost'; learn.microsoft.com "Configuring WAS for Use with WCF") is
        # drift too. It has no ip:port:host to parse, so it is shown as IIS lists it.
        found = [
            BindingModel.from_host(item)
            if item.get("protocol") in ("http", "https")
            else {"protocol": item.get("protocol"), "binding_information": item.get("binding_information")}
            for item in state.get("bindings") or []
        ]
        desired = [b.model_dump(mode="json") for b in self.bindings]
        # IIS keeps bindings in the order they were added; the same set in another order is no drift.
        found.sort(key=lambda b: desired.index(b) if b in desired else len(desired))
        actual["bindings"] = found
        return actual

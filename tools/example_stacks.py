"""Write the example stacks (stacks/Pulumi.{local,staging,prod}.yaml) with their secrets encrypted.

    .venv/bin/python tools/example_stacks.py [local|staging|prod ...]

Each stack is described below as plain data; every value that must be a secret (``SECRET``) is
set with `pulumi config set --secret --path`, everything else in plain text, exactly as a user
would. Certificates are throw-away self-signed ones (RSA-2048, SHA-256), made afresh.

Passphrases (published here on purpose, they protect nothing real):
- local: ``usercube-local-dev-only`` (simulated hosts on loopback; stackrun knows it);
- staging and prod: ``example-passphrase-not-for-production``. A real environment moves to its own
  secrets provider: `pulumi stack change-secrets-provider --stack prod "awskms://..."` (README).
"""

from __future__ import annotations

import base64
import datetime
import secrets
import sys
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12
from cryptography.x509.oid import NameOID
from pulumi import automation as auto

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stackrun.workspace import LOCAL_DEV_PASSPHRASE, PROJECT, open_stack  # noqa: E402

EXAMPLE_PASSPHRASE = "example-passphrase-not-for-production"
# The simulated hosts' administrator password (Makefile: DEVHOST_PASSWORD), dev-only.
LOCAL_HOST_PASSWORD = "DevHost-Only-Passw0rd"


class Secret(str):
    """A value set with --secret."""


def self_signed_pfx(common_name: str, dns: str | None = None) -> dict[str, Secret]:
    password = secrets.token_urlsafe(18)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=5 * 365))
    )
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
    certificate = builder.sign(key, hashes.SHA256())
    pfx = pkcs12.serialize_key_and_certificates(
        common_name.encode(), key, certificate, None, BestAvailableEncryption(password.encode())
    )
    return {"pfx": Secret(base64.b64encode(pfx).decode()), "password": Secret(password)}


def token() -> Secret:
    return Secret(secrets.token_urlsafe(24))


def server(name: str, host: str, org: str, dns: str) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "integrated",
        "host": host,
        "organization": org,
        "hostName": dns,
        "sslCertificate": self_signed_pfx(dns, dns),
        "encryptionCertificate": self_signed_pfx(f"IdentityManager{org} encryption"),
        "identityServerCertificate": self_signed_pfx(f"IdentityManager{org} identity server"),
        "license": Secret(f"EXAMPLE-LICENSE-{secrets.token_hex(8).upper()}"),
        "connectionString": Secret(
            f"Data Source=sql.{dns.split('.', 1)[1]};Database=IdentityManager{org};Integrated Security=SSPI;"
            "Min Pool Size=10;Encrypt=True"
        ),
    }


def production(name: str, host: str, org: str, dns: str, server_url: str, **extra: Any) -> dict[str, Any]:
    agent: dict[str, Any] = {
        "name": name,
        "kind": "production",
        "host": host,
        "organization": org,
        "hostName": dns,
        "encryptionCertificate": self_signed_pfx(f"{dns} encryption"),
        "settings": {
            "agentIdentifier": f"{org}-{name}",
            "applicationUri": server_url,
            "openIdClients": {"Job": token()},
            "defaultOpenIdClient": "Job",
        },
    }
    if extra.get("hosting") != "service":
        agent["sslCertificate"] = self_signed_pfx(dns, dns)
    for key, value in extra.items():
        if key == "connections":
            agent["settings"]["connections"] = value
        else:
            agent[key] = value
    return agent


def ad_export(server_name: str, base_dn: str) -> dict[str, Any]:
    return {
        "ADExport": {
            "Servers": [{"Server": server_name, "BaseDN": base_dn}],
            "AuthType": "Basic",
            "Login": "CONTOSO\\svc-ad-export",
            "Password": token(),
            "Filter": "(objectClass=user)",
            "EnableSSL": True,
        }
    }


def local() -> dict[str, Any]:
    """A small estate on the simulated hosts: the server and two production agents on other hosts."""
    hosts = {
        name: {"address": address, "useHttps": False, "user": "administrator", "password": Secret(LOCAL_HOST_PASSWORD)}
        for name, address in (("server", "127.0.0.2"), ("zone-a", "127.0.0.3"), ("zone-b", "127.0.0.4"))
    }
    url = "https://identitymanager.contoso.example"
    return {
        "hosts": hosts,
        "agents": [
            server("server", "server", "Contoso", "identitymanager.contoso.example"),
            production(
                "zone-a",
                "zone-a",
                "Contoso",
                "agent-zone-a.contoso.example",
                url,
                connections=ad_export("dc01.contoso.example", "DC=contoso,DC=example"),
            ),
            production(
                "zone-b",
                "zone-b",
                "Contoso",
                "agent-zone-b.contoso.example",
                url,
                hosting="service",
                identity={"kind": "GroupManagedServiceAccount", "account": "CONTOSO\\svc-agent-b$"},
            ),
        ],
    }


def estate(domain: str, zones: list[str], service_zone: str | None) -> dict[str, Any]:
    """A realistic estate: the server on its own host plus one production agent per network zone."""

    def host(address: str) -> dict[str, Any]:
        return {"address": address, "user": "CONTOSO\\svc-pulumi-deploy", "password": token()}

    hosts = {"server": host(f"idm01.{domain}")} | {zone: host(f"idm-agent-{zone}.{domain}") for zone in zones}
    url = f"https://identitymanager.{domain}"
    agents = [server("server", "server", "Contoso", f"identitymanager.{domain}")]
    for zone in zones:
        extra: dict[str, Any] = {
            "identity": {"kind": "GroupManagedServiceAccount", "account": f"CONTOSO\\gmsa-idm-{zone[:8]}$"},
            "connections": ad_export(f"dc-{zone}.{domain}", "DC=contoso,DC=com"),
        }
        if zone == service_zone:
            extra["hosting"] = "service"
        agents.append(production(f"agent-{zone}", zone, "Contoso", f"idm-agent-{zone}.{domain}", url, **extra))
    return {"hosts": hosts, "agents": agents}


STACKS = {
    "local": (local, LOCAL_DEV_PASSPHRASE),
    "staging": (lambda: estate("staging.contoso.com", ["paris", "dmz"], "dmz"), EXAMPLE_PASSPHRASE),
    "prod": (lambda: estate("contoso.com", ["paris", "london", "dmz", "sap"], "dmz"), EXAMPLE_PASSPHRASE),
}


def config_map(value: Any, path: str) -> dict[str, auto.ConfigValue]:
    """Every leaf as a `--path` key; Secret leaves encrypted."""
    if isinstance(value, dict):
        out: dict[str, auto.ConfigValue] = {}
        for key, item in value.items():
            segment = f".{key}" if key.replace("-", "").isalnum() else f'["{key}"]'
            out |= config_map(item, f"{path}{segment}")
        return out
    if isinstance(value, list):
        out = {}
        for index, item in enumerate(value):
            out |= config_map(item, f"{path}[{index}]")
        return out
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return {path: auto.ConfigValue(text, secret=isinstance(value, Secret))}


def write(name: str) -> None:
    describe, passphrase = STACKS[name]
    stack_file = ROOT / "stacks" / f"Pulumi.{name}.yaml"
    stack_file.unlink(missing_ok=True)
    stack = open_stack(name, extra_env={"PULUMI_CONFIG_PASSPHRASE": passphrase})
    values: dict[str, auto.ConfigValue] = {}
    for key, item in describe().items():
        values |= config_map(item, f"{PROJECT}:{key}")
    stack.set_all_config(values, path=True)
    print(f"{stack_file.relative_to(ROOT)}: {len(values)} values, {sum(v.secret for v in values.values())} secret")


if __name__ == "__main__":
    for stack_name in sys.argv[1:] or list(STACKS):
        write(stack_name)

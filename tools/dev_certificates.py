"""Generate the dev-only certificates of the `local` stack and store them as encrypted secrets.

The `local` stack targets the simulated host, so its certificates are throw-away self-signed ones
(RSA-2048, SHA-256, 5 years), kept as Pulumi secrets in stacks/Pulumi.local.yaml (encrypted with
the dev-only passphrase). Run once: `.venv/bin/python tools/dev_certificates.py`.
"""

from __future__ import annotations

import base64
import datetime
import secrets
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12
from cryptography.x509.oid import NameOID
from pulumi import automation as auto

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stackrun.workspace import LOCAL_STACK, PROJECT, open_stack


def self_signed_pfx(common_name: str, password: str, dns: str | None = None) -> bytes:
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
    return pkcs12.serialize_key_and_certificates(
        common_name.encode(), key, certificate, None, BestAvailableEncryption(password.encode())
    )


def main() -> int:
    stack = open_stack(LOCAL_STACK)
    for prefix, common_name, dns in (
        ("ssl", "agent01.contoso.example", "agent01.contoso.example"),
        ("encryption", "IdentityManagerContoso", None),
    ):
        password = secrets.token_urlsafe(18)
        pfx = base64.b64encode(self_signed_pfx(common_name, password, dns)).decode()
        stack.set_config(f"{PROJECT}:{prefix}Pfx", auto.ConfigValue(pfx, secret=True))
        stack.set_config(f"{PROJECT}:{prefix}PfxPassword", auto.ConfigValue(password, secret=True))
    print("dev-only certificates stored as secrets in stacks/Pulumi.local.yaml")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

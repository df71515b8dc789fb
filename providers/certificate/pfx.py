"""Local inspection of a PFX before any host is contacted: what Windows would refuse, and what the manual forbids.

Runs in ``check`` with the ``cryptography`` package, so a weak, expired or undecryptable PFX is refused
in ``preview`` without a WinRM call, and the thumbprint (the resource id) is known before the import.
Messages never contain the PFX or its password.

Decrypting a PFX is slow on purpose (its key derivation runs thousands of hash rounds: about 45 ms
each), and the same PFX is opened by the stack loader, the program (its thumbprint), and the
provider's ``check`` and ``diff`` of every preview. So each process decrypts a PFX once: the outcome
(certificates, the key's public half and algorithm, or the refusal) is kept in memory, keyed by a
keyed hash of the PFX and its password, never by the secrets themselves, and never written anywhere.
The private key itself is not kept.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12

MIN_RSA_BITS = 2048
ALLOWED_CURVES = ("secp256r1", "secp384r1", "secp521r1")
# The manual's agent guide shows `openssl req ... -newkey rsa:1024`, which this rule refuses.
OPENSSL_FIX = (
    "create a new key pair with RSA-2048 and SHA-256, e.g. `openssl req -x509 -newkey rsa:2048 -sha256 "
    "-days 730 -nodes -keyout agent.key -out agent.crt -subj /CN=<host>` then `openssl pkcs12 -export "
    "-inkey agent.key -in agent.crt -out agent.pfx` (not rsa:1024 as the agent guide shows), "
    "or have your PKI issue one"
)
WRONG_PASSWORD = "The specified network password is not correct."
# Distinct PFX/password pairs kept per process: a stack has a handful; the oldest goes first.
_CACHE_SIZE = 256


class PfxRefused(ValueError):
    """The PFX cannot or must not be imported; ``property`` is the input to fix."""

    def __init__(self, property_name: str, message: str) -> None:
        super().__init__(message)
        self.property = property_name
        self.message = message


@dataclass(frozen=True)
class PfxInfo:
    thumbprint: str  # SHA-1 of the DER, upper-case hex: what Windows shows as the thumbprint
    subject: str
    not_before: datetime
    not_after: datetime
    key_algorithm: str  # "RSA-2048", "EC-secp256r1"
    signature_hash: str | None


def _decode(pfx: str) -> bytes:
    try:
        data = base64.b64decode("".join(pfx.split()), validate=True)
    except (binascii.Error, ValueError):
        data = b""
    if not data:
        raise PfxRefused(
            "pfx",
            "is not base64 text; give the PFX file's bytes base64-encoded, "
            "e.g. base64.b64encode(Path('agent.pfx').read_bytes()).decode()",
        )
    return data


def _looks_like_pfx(data: bytes) -> bool:
    """PFX = DER SEQUENCE { version INTEGER 3, ... }: tells a wrong password from bytes that are no PFX."""
    if len(data) < 8 or data[0] != 0x30:
        return False
    length_octets = data[1] - 0x80 if data[1] & 0x80 else 0
    start = 2 + length_octets
    return data[start : start + 3] == b"\x02\x01\x03"


def _load(data: bytes, password: str) -> tuple[PrivateKeyTypes | None, x509.Certificate | None, list[x509.Certificate]]:
    candidates = [password.encode("utf-8")] + ([None] if password == "" else [])
    for candidate in candidates:
        try:
            return pkcs12.load_key_and_certificates(data, candidate)
        except ValueError:
            continue
    if not _looks_like_pfx(data):
        raise PfxRefused("pfx", "is not a PFX (PKCS#12) file; give the bytes of the .pfx/.p12 file, base64-encoded")
    raise PfxRefused(
        "pfx_password",
        f"{WRONG_PASSWORD} The PFX could not be decrypted with pfx_password; give the password it was exported with",
    )


@dataclass(frozen=True)
class _KeySummary:
    """What the rules need of the private key, without the key: its public half and its algorithm."""

    public_der: bytes
    kind: str  # "RSA", "EC", "DSA" or the key class's name
    size: int
    curve: str | None


@dataclass(frozen=True)
class _Contents:
    """A decrypted PFX: the certificate that goes with the key (if any), the others, and the key's summary."""

    certificate: x509.Certificate | None
    others: tuple[x509.Certificate, ...]
    key: _KeySummary | None


def _summary(key: PrivateKeyTypes | None) -> _KeySummary | None:
    if key is None:
        return None
    curve = key.curve.name if isinstance(key, ec.EllipticCurvePrivateKey) else None
    if isinstance(key, rsa.RSAPrivateKey):
        kind = "RSA"
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        kind = "EC"
    elif isinstance(key, dsa.DSAPrivateKey):
        kind = "DSA"
    else:
        kind = type(key).__name__
    return _KeySummary(_public_der(key), kind, int(getattr(key, "key_size", 0)), curve)


def _open(pfx: str, password: str) -> _Contents:
    key, certificate, others = _load(_decode(pfx), password)
    return _Contents(certificate, tuple(others), _summary(key))


_CACHE_KEY = secrets.token_bytes(32)  # per process: a cache key reveals nothing, even beside a guess
_cache: dict[bytes, Future[_Contents]] = {}
_cache_lock = threading.Lock()


def _cache_key(pfx: str, password: str) -> bytes:
    digest = hashlib.blake2b(key=_CACHE_KEY, digest_size=32)
    for part in (pfx.encode("utf-8"), password.encode("utf-8")):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


def _contents(pfx: str, password: str) -> _Contents:
    """The PFX decrypted once per process; threads asking for the same PFX meanwhile wait for that one."""
    key = _cache_key(pfx, password)
    with _cache_lock:
        outcome = _cache.get(key)
        opener = outcome is None
        if outcome is None:
            outcome = _cache[key] = Future()
            while len(_cache) > _CACHE_SIZE:
                del _cache[next(iter(_cache))]
    if opener:
        try:
            outcome.set_result(_open(pfx, password))
        except PfxRefused as refused:  # the same answer next time: wrong password or no PFX
            outcome.set_exception(refused)
        except BaseException as error:  # anything else is not remembered
            with _cache_lock:
                _cache.pop(key, None)
            outcome.set_exception(error)
            raise
    try:
        return outcome.result()
    except PfxRefused as refused:
        raise PfxRefused(refused.property, refused.message) from None


def clear_cache() -> None:
    """Forget every decrypted PFX (tests)."""
    with _cache_lock:
        _cache.clear()


def _public_der(key: object) -> bytes:
    public = key.public_key()  # type: ignore[attr-defined]
    der: bytes = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return der


def windows_subject(name: x509.Name) -> str:
    """The subject as .NET's X509Certificate2.Subject prints it: last RDN first, ', ' between, S= and E=."""
    overrides = {x509.NameOID.STATE_OR_PROVINCE_NAME: "S", x509.NameOID.EMAIL_ADDRESS: "E"}
    return ", ".join(rdn.rfc4514_string(overrides) for rdn in reversed(name.rdns))


def _key_algorithm(key: _KeySummary) -> str:
    if key.kind == "RSA":
        if key.size < MIN_RSA_BITS:
            raise PfxRefused(
                "pfx", f"holds an RSA-{key.size} key; the manual requires RSA-2048 or larger: {OPENSSL_FIX}"
            )
        return f"RSA-{key.size}"
    if key.kind == "EC":
        if key.curve not in ALLOWED_CURVES:
            raise PfxRefused("pfx", f"holds an EC key on {key.curve}; use P-256 or larger, or {OPENSSL_FIX}")
        return f"EC-{key.curve}"
    raise PfxRefused("pfx", f"holds a {key.kind} key, which IIS and Identity Manager do not use: {OPENSSL_FIX}")


def thumbprint(certificate: x509.Certificate) -> str:
    der = certificate.public_bytes(serialization.Encoding.DER)
    return hashlib.sha1(der).hexdigest().upper()  # the thumbprint Windows uses is SHA-1 by definition


def inspect_pfx(pfx: str, password: str, now: datetime | None = None) -> PfxInfo:
    """Every rule of the manual, in the order a user would fix them; raises ``PfxRefused``."""
    contents = _contents(pfx, password)
    key, certificate, chain = contents.key, contents.certificate, contents.others
    if certificate is None and key is not None and chain:
        raise PfxRefused(
            "pfx", "holds a private key that belongs to none of its certificates; export the matching pair"
        )
    # Without a key, cryptography lists the certificate among the others; Windows takes the first one.
    certificate = certificate or (chain[0] if chain else None)
    if certificate is None:
        raise PfxRefused("pfx", "holds no certificate; export the certificate together with its private key")
    if key is None:
        raise PfxRefused(
            "pfx",
            "holds a certificate but no private key; export it with its key (`openssl pkcs12 -export -inkey "
            "agent.key -in agent.crt`, or Export-PfxCertificate from a store where the key is present)",
        )
    if key.public_der != certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise PfxRefused("pfx", "holds a private key that does not belong to its certificate; export the matching pair")
    algorithm = _key_algorithm(key)
    digest = certificate.signature_hash_algorithm
    if isinstance(digest, hashes.SHA1 | hashes.MD5):
        raise PfxRefused(
            "pfx",
            f"holds a certificate signed with {digest.name.upper()}, which the manual forbids (never SHA-1); "
            f"re-issue it signed with SHA-256 (-sha256): {OPENSSL_FIX}",
        )
    moment = now or datetime.now(UTC)
    not_before, not_after = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if not_after <= moment:
        raise PfxRefused("pfx", f"holds a certificate that expired on {not_after:%Y-%m-%d %H:%M} UTC; {OPENSSL_FIX}")
    if not_before > moment:
        raise PfxRefused(
            "pfx",
            f"holds a certificate not valid before {not_before:%Y-%m-%d %H:%M} UTC; wait until then or "
            "check the issuing machine's clock and re-issue it",
        )
    return PfxInfo(
        thumbprint=thumbprint(certificate),
        subject=windows_subject(certificate.subject),
        not_before=not_before,
        not_after=not_after,
        key_algorithm=algorithm,
        signature_hash=digest.name if digest else None,
    )


def pfx_thumbprint(pfx: str, password: str) -> str:
    """The thumbprint alone (no policy rules): for ids and diffs of a PFX already accepted once."""
    contents = _contents(pfx, password)
    certificate = contents.certificate or (contents.others[0] if contents.others else None)
    if certificate is None:
        raise PfxRefused("pfx", "holds no certificate")
    return thumbprint(certificate)

"""Authentication for the SIMULATED Windows host's WinRM endpoint.

SIMULATOR: nothing here is Windows. Two schemes, as a default WinRM listener
configured with ``AllowUnencrypted=false`` offers them:

* NTLM (``Authorization: Negotiate <raw NTLMSSP token>``, what pywinrm's
  ``transport="ntlm"`` sends, or the same NTLM wrapped in SPNEGO, what pypsrp's
  ``auth="negotiate"`` sends) through pyspnego's acceptor. NTLM authenticates
  the TCP connection, not a request, so one ``NtlmConnection`` lives as long
  as the connection. Over plain HTTP the SOAP bodies must then be sealed with
  the NTLM session key in the ``multipart/encrypted`` framing of MS-WSMV
  2.2.9.1.1, exactly as ``winrm/encryption.py`` writes and reads it.
* Basic, accepted only over HTTPS (Windows refuses Basic on an unencrypted
  channel, and pywinrm reports that as InvalidCredentialsError).

Users come from a file in pyspnego's ``NTLM_USER_FILE`` format
(``DOMAIN:user:password`` lines); Basic checks the same file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

import spnego
import spnego.channel_bindings
import spnego.exceptions

ENCRYPTED_PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
ENCRYPTED_CONTENT_TYPE = f'multipart/encrypted;protocol="{ENCRYPTED_PROTOCOL}";boundary="Encrypted Boundary"'
_BOUNDARY = b"--Encrypted Boundary"
_OCTET_HEADER = b"\tContent-Type: application/octet-stream\r\n"

# pyspnego's NTLM acceptor reads its user file from this process-wide env var
# whenever it needs it; serialise every use so two servers in one process
# (tests) with different user files cannot see each other's.
_ENV_LOCK = threading.Lock()


class AuthFailed(Exception):
    """The client must get HTTP 401 (pywinrm: InvalidCredentialsError)."""


@dataclass(frozen=True)
class UserEntry:
    domain: str
    user: str
    password: str

    @property
    def principal(self) -> str:
        return f"{self.domain}\\{self.user}" if self.domain else self.user


def split_user(name: str) -> tuple[str, str]:
    """``DOMAIN\\user`` → (DOMAIN, user); ``user@domain`` and ``user`` → ("", name)."""
    if "\\" in name:
        domain, _, user = name.partition("\\")
        return domain, user
    return "", name


def user_line(name: str, password: str) -> str:
    """One ``NTLM_USER_FILE`` line; refuses what the format cannot hold."""
    domain, user = split_user(name)
    for label, value in (("user name", user), ("domain", domain), ("password", password)):
        if ":" in value or "\n" in value or "\r" in value:
            raise ValueError(f"the {label} must not contain ':' or line breaks (NTLM_USER_FILE format)")
    if not user:
        raise ValueError("the user name must not be empty")
    return f"{domain}:{user}:{password}"


def load_users(path: Path) -> list[UserEntry]:
    entries: list[UserEntry] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split(":")
        if len(parts) == 3:
            entries.append(UserEntry(parts[0], parts[1], parts[2]))
    return entries


def write_user(path: Path, name: str, password: str) -> None:
    """Add or replace ``name`` in the users file (created 0600)."""
    line = user_line(name, password)
    domain, user = split_user(name)
    kept: list[str] = []
    if path.exists():
        for existing in path.read_text(encoding="utf-8").splitlines():
            parts = existing.split(":")
            same = len(parts) == 3 and parts[0].upper() == domain.upper() and parts[1].upper() == user.upper()
            if existing.strip() and not same:
                kept.append(existing)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join([*kept, line]) + "\n")


def check_basic(header_value: str, users_file: Path) -> str:
    """Verify a Basic credential; return the principal or raise AuthFailed."""
    try:
        decoded = base64.b64decode(header_value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise AuthFailed("malformed Basic credentials") from exc
    name, sep, password = decoded.partition(":")
    if not sep:
        raise AuthFailed("malformed Basic credentials")
    domain, user = split_user(name)
    for entry in load_users(users_file):
        same_user = entry.user.upper() == user.upper() and entry.domain.upper() == domain.upper()
        if same_user and hmac.compare_digest(entry.password.encode("utf-8"), password.encode("utf-8")):
            return entry.principal
    raise AuthFailed(f"wrong user name or password for {name!r}")


def parse_authorization(value: str | None) -> tuple[str, str]:
    """``Negotiate abc=`` → ("negotiate", "abc="); missing → ("", "")."""
    if not value:
        return "", ""
    scheme, _, rest = value.strip().partition(" ")
    return scheme.lower(), rest.strip()


def tls_channel_bindings(cert_der: bytes, hash_name: str = "sha256") -> spnego.channel_bindings.GssChannelBindings:
    """RFC 5929 tls-server-end-point bindings, as requests_ntlm sends them over HTTPS."""
    digest = hashlib.new(hash_name, cert_der).digest()
    return spnego.channel_bindings.GssChannelBindings(application_data=b"tls-server-end-point:" + digest)


class NtlmConnection:
    """NTLM acceptor state for one TCP connection, and its message sealing."""

    def __init__(
        self, users_file: Path, channel_bindings: spnego.channel_bindings.GssChannelBindings | None = None
    ) -> None:
        self._users_file = users_file
        self._bindings = channel_bindings
        self._context: spnego.ContextProxy | None = None
        self._protocol = ""
        self.user: str | None = None

    @property
    def complete(self) -> bool:
        return self._context is not None and self._context.complete and self.user is not None

    def step(self, token_b64: str) -> bytes | None:
        """Feed one client token; return the token to send back (if any).

        A NEGOTIATE message (re)starts the handshake on this connection.
        Raises AuthFailed on a bad token or wrong credentials.
        """
        try:
            token = base64.b64decode(token_b64, validate=True)
        except binascii.Error as exc:
            raise AuthFailed("malformed Negotiate token") from exc
        # Windows' Negotiate package takes a raw NTLMSSP token (pywinrm's transport="ntlm") or an SPNEGO token
        # (RFC 4178; what pypsrp and Ansible's psrp send with auth="negotiate"): a NegTokenInit, a GSS-API
        # InitialContextToken (tag 0x60), starts it and NegTokenResp tokens (tag 0xa1) continue it. Inside SPNEGO
        # the simulator offers NTLM only: a client that proposes only Kerberos is refused, as by a host that is
        # not in a domain.
        if token.startswith(b"NTLMSSP\x00"):
            message_type = struct.unpack("<I", token[8:12])[0] if len(token) >= 12 else 0
            protocol, starts = "ntlm", message_type == 1
        elif token[:1] == b"\x60":
            protocol, starts = "negotiate", True
        elif token[:1] == b"\xa1" and self._protocol == "negotiate":
            protocol, starts = "negotiate", False
        else:
            raise AuthFailed("the Negotiate token is neither NTLMSSP nor SPNEGO (the simulator has no Kerberos)")
        with _ENV_LOCK:
            saved = os.environ.get("NTLM_USER_FILE")
            os.environ["NTLM_USER_FILE"] = str(self._users_file)
            try:
                if starts or self._context is None or protocol != self._protocol:
                    self.user = None
                    self._protocol = protocol
                    self._context = spnego.server(protocol=protocol, channel_bindings=self._bindings)
                out = self._context.step(token)
                if self._context.complete:
                    self.user = self._context.client_principal or ""
                return out
            # pyspnego raises ValueError or struct.error on garbage as well as SpnegoError: each is a 401.
            except Exception as exc:
                self._context = None
                self.user = None
                raise AuthFailed(f"NTLM authentication failed: {exc}") from exc
            finally:
                if saved is None:
                    os.environ.pop("NTLM_USER_FILE", None)
                else:
                    os.environ["NTLM_USER_FILE"] = saved

    def unwrap(self, body: bytes) -> bytes:
        """Open a ``multipart/encrypted`` request body (MS-WSMV 2.2.9.1.1)."""
        if not self.complete or self._context is None:
            raise AuthFailed("encrypted message on a connection that has not completed NTLM authentication")
        match = re.search(rb"Length=(\d+)\r\n", body)
        start = body.find(_OCTET_HEADER)
        if match is None or start < 0:
            raise ValueError("not an HTTP-SPNEGO-session-encrypted body")
        payload = body[start + len(_OCTET_HEADER) :]
        trailer = _BOUNDARY + b"--\r\n"
        if payload.endswith(trailer):
            payload = payload[: -len(trailer)]
        (sig_len,) = struct.unpack("<i", payload[:4])
        header, sealed = payload[4 : 4 + sig_len], payload[4 + sig_len :]
        try:
            plain = self._context.unwrap_winrm(header, sealed)
        except spnego.exceptions.SpnegoError as exc:
            raise AuthFailed(f"could not unseal the message: {exc}") from exc
        if len(plain) != int(match.group(1)):
            raise ValueError("encrypted length does not match OriginalContent Length")
        return plain

    def wrap(self, message: bytes) -> bytes:
        """Seal a response body in the framing pywinrm's Encryption._decrypt_response reads."""
        if self._context is None:
            raise AuthFailed("no NTLM context")
        result = self._context.wrap_winrm(message)
        return (
            _BOUNDARY + b"\r\n"
            b"\tContent-Type: " + ENCRYPTED_PROTOCOL.encode() + b"\r\n"
            b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length="
            + str(len(message)).encode()
            + b"\r\n"
            + _BOUNDARY
            + b"\r\n"
            + _OCTET_HEADER
            + struct.pack("<i", len(result.header))
            + result.header
            + result.data
            + _BOUNDARY
            + b"--\r\n"
        )

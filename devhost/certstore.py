"""SIMULATOR: the simulated host's certificate stores and machine key files.

A certificate in ``Cert:\\<Location>\\<Store>`` is the file
``<state>/_sim/certstore/<Location>/<Store>/<THUMBPRINT>.json`` (subject, not_after, thumbprint,
has_private_key, key_file, key_storage, exportable, der). Its private key is a file at the real
Windows path, ``C:\\ProgramData\\Microsoft\\Crypto\\RSA\\MachineKeys\\<unique name>`` for a legacy
CSP key or ``...\\Crypto\\Keys\\<unique name>`` for a CNG key, and that file's ACL is kept in
``devhost.ntfs`` like any other file's.

The PFX is opened with ``cryptography`` and accepted or refused as ``X509Certificate2``'s constructor
does on Windows: a wrong password is "The specified network password is not correct.", bytes that
are no PFX are "Cannot find the requested object.". An RSA key goes where its key bag's provider attribute
says (devhost.pkcs12_bags): a PFX naming none (``cryptography``'s and OpenSSL's default) puts it in the legacy
CSP (CAPI), one naming the Microsoft Software Key Storage Provider in CNG; an ECDSA key can only go to CNG.

Also the administrator's hand edits (Import-PfxCertificate, Remove-Item Cert:..., icacls on a key
file) for tests and the devhost CLI: ``admin_import_pfx``, ``admin_remove``, ``admin_grant_key_read``,
``admin_revoke_key_access``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12

from devhost import accounts, ntfs, pkcs12_bags
from devhost.fs import WindowsFs

LOCATIONS = ("LocalMachine",)
STORES = ("My", "WebHosting", "TrustedPeople", "Root", "CA")
MACHINE_GUID = "5f3d2c1e-8a4b-4c6d-9e0f-1a2b3c4d5e6f"  # the simulated host's MachineGuid
KEY_FOLDERS = {
    "CAPI": "C:\\ProgramData\\Microsoft\\Crypto\\RSA\\MachineKeys",
    "CNG": "C:\\ProgramData\\Microsoft\\Crypto\\Keys",
}
SYSTEM, ADMINISTRATORS = "S-1-5-18", "S-1-5-32-544"
KEY_READ = 0x120089  # FileSystemRights.Read as stored in an allow entry (with Synchronize)
WRONG_PASSWORD = "The specified network password is not correct."
NOT_A_PFX = "Cannot find the requested object."


# Windows' generic mapping for files (learn.microsoft.com, "File Security and Access Rights"): an ACE
# may hold generic bits (icacls (GR) writes GENERIC_READ), which mean the FILE_GENERIC_* rights.
GENERIC_FILE_RIGHTS = {0x80000000: 0x120089, 0x40000000: 0x120116, 0x20000000: 0x1200A0, 0x10000000: 0x1F01FF}


def specific_file_rights(mask: int) -> int:
    for generic, specific in GENERIC_FILE_RIGHTS.items():
        if mask & generic:
            mask = (mask & ~generic) | specific
    return mask


class CertificateError(Exception):
    """What .NET raises as CryptographicException; ``hresult`` as Windows reports it."""

    def __init__(self, message: str, hresult: int) -> None:
        super().__init__(message)
        self.hresult = hresult


@dataclass(frozen=True)
class StoredCertificate:
    thumbprint: str
    subject: str
    not_after: str  # ISO 8601 UTC, "2027-01-01T00:00:00Z"
    has_private_key: bool
    key_file: str | None  # the key's unique name (file name), None without a key
    key_storage: str | None  # "CAPI" or "CNG"
    exportable: bool | None
    der: str  # base64 of the certificate's DER

    @property
    def key_path(self) -> str | None:
        """The key file's Windows path."""
        if self.key_file is None or self.key_storage is None:
            return None
        return f"{KEY_FOLDERS[self.key_storage]}\\{self.key_file}"


@dataclass(frozen=True)
class OpenedPfx:
    certificate: x509.Certificate
    key: PrivateKeyTypes | None
    others: tuple[x509.Certificate, ...] = ()  # the PFX's other certificates (its chain), in file order
    provider: str | None = None  # the key storage provider the key bag names (devhost.pkcs12_bags), if any

    @property
    def intermediates(self) -> list[x509.Certificate]:
        """The chain's CA certificates that are not self-signed (subject differs from issuer)."""
        return [c for c in self.others if c.subject != c.issuer]

    @property
    def thumbprint(self) -> str:
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        return hashlib.sha1(der).hexdigest().upper()  # Windows' thumbprint is SHA-1


def windows_subject(name: x509.Name) -> str:
    """X509Certificate2.Subject: last RDN first, ', ' between, S= for the state, E= for the e-mail."""
    overrides = {x509.NameOID.STATE_OR_PROVINCE_NAME: "S", x509.NameOID.EMAIL_ADDRESS: "E"}
    return ", ".join(rdn.rfc4514_string(overrides) for rdn in reversed(name.rdns))


# The simulator's own speed: parsing a PKCS#12 file and checking its RSA key costs OpenSSL 3 several
# milliseconds (pyca/cryptography#7236), and every get of a Certificate opens the same PFX again. The same
# bytes and password always give the same result, so one parse per process is kept.
@functools.lru_cache(maxsize=64)
def open_pfx(data: bytes, password: str) -> OpenedPfx:
    """new X509Certificate2(bytes, password, flags): the first certificate that has its key, else the first."""
    for candidate in [password.encode("utf-8"), *([None] if password == "" else [])]:
        try:
            key, certificate, chain = pkcs12.load_key_and_certificates(data, candidate)
        except ValueError:
            continue
        if certificate is None:
            if not chain:
                raise CertificateError(NOT_A_PFX, -2146885620)  # CRYPT_E_NOT_FOUND
            return OpenedPfx(chain[0], None, tuple(chain[1:]))
        return OpenedPfx(certificate, key, tuple(chain), pkcs12_bags.key_provider(data))
    if not data.startswith(b"\x30"):
        raise CertificateError(NOT_A_PFX, -2146885620)
    raise CertificateError(WRONG_PASSWORD, -2147024810)  # ERROR_INVALID_PASSWORD


@dataclass(frozen=True)
class PrivateKeyHandle:
    """What ``GetRSAPrivateKey`` / ``GetECDsaPrivateKey`` return on .NET Framework 4.6+ (powershell.exe 5.1).

    Every key is opened through CNG, a legacy CSP key too (the Microsoft Software Key Storage Provider
    reads CAPI keys: learn.microsoft.com/windows/win32/seccng/key-storage-and-retrieval), so the object
    is RSACng or ECDsaCng, never RSACryptoServiceProvider, and ``.Key.UniqueName`` is the key file's
    name, in RSA\\MachineKeys for a CAPI key and in Crypto\\Keys for a CNG key. The handle does not
    say which folder: a script has to look."""

    dotnet_type: str  # "RSACng" or "ECDsaCng"
    unique_name: str
    exportable: bool | None


# The providers a key bag may name (learn.microsoft.com, "Microsoft Cryptographic Service Providers" and "Key
# Storage Providers"): the software KSP keeps its machine keys in Crypto\Keys; the legacy CSPs theirs in
# RSA\MachineKeys. Smart card, TPM (Platform Crypto Provider) and HSM providers keep no file there: not modelled.
_CNG_PROVIDERS = {"microsoft software key storage provider"}
_CAPI_PROVIDERS = {
    "microsoft enhanced rsa and aes cryptographic provider",
    "microsoft enhanced cryptographic provider v1.0",
    "microsoft strong cryptographic provider",
    "microsoft base cryptographic provider v1.0",
    "microsoft rsa schannel cryptographic provider",
}


def _storage_of(provider: str | None) -> str:
    """Where PFXImportCertStore puts an RSA key: the provider its key bag names, else the legacy CSP."""
    if provider is None or provider.lower() in _CAPI_PROVIDERS:
        return "CAPI"
    if provider.lower() in _CNG_PROVIDERS:
        return "CNG"
    raise NotImplementedError(f"SIMULATOR: a key bag naming the provider {provider!r} is not modelled")


class CertStore:
    """The stores of one simulated host."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.root = state_dir / "_sim" / "certstore"
        self.fs = WindowsFs(state_dir)
        self.ntfs = ntfs.NtfsStore(state_dir)

    def _file(self, location: str, store: str, thumbprint: str) -> Path:
        if location not in LOCATIONS or store not in STORES:
            raise ValueError(f"the simulator does not model the store Cert:\\{location}\\{store}")
        return self.root / location / store / f"{thumbprint.upper()}.json"

    def find(self, location: str, store: str, thumbprint: str) -> StoredCertificate | None:
        path = self._file(location, store, thumbprint)
        if not path.is_file():
            return None
        return StoredCertificate(**json.loads(path.read_text(encoding="utf-8")))

    def entries(self, location: str, store: str) -> list[StoredCertificate]:
        folder = self.root / location / store
        found = [self.find(location, store, p.stem) for p in sorted(folder.glob("*.json"))]
        return [entry for entry in found if entry is not None]

    def key_exists(self, entry: StoredCertificate) -> bool:
        return entry.key_path is not None and self.fs.resolve(entry.key_path).is_file()

    def open_private_key(self, entry: StoredCertificate) -> PrivateKeyHandle | None:
        """GetRSAPrivateKey, else GetECDsaPrivateKey: None without a key; "Keyset does not exist" when
        the certificate says it has a key whose file is gone."""
        if not entry.has_private_key or entry.key_file is None:
            return None
        if not self.key_exists(entry):
            raise CertificateError("Keyset does not exist", -2146893802)  # NTE_BAD_KEYSET
        der = self.fs.resolve(entry.key_path or "").read_bytes()
        # Only the key's type is needed here; the RSA consistency check (OpenSSL 3's slowest part of a load)
        # was made when the PFX was opened for the import.
        key = serialization.load_der_private_key(der, None, unsafe_skip_rsa_key_validation=True)
        dotnet_type = "ECDsaCng" if isinstance(key, ec.EllipticCurvePrivateKey) else "RSACng"
        return PrivateKeyHandle(dotnet_type, entry.key_file, entry.exportable)

    def machine_key_file(self, unique_name: str) -> str | None:
        """The first of C:\\ProgramData\\Microsoft\\Crypto\\Keys\\<name>, ...\\RSA\\MachineKeys\\<name> that exists."""
        for folder in (KEY_FOLDERS["CNG"], KEY_FOLDERS["CAPI"]):
            if self.fs.resolve(f"{folder}\\{unique_name}").is_file():
                return f"{folder}\\{unique_name}"
        return None

    def persist_key(self, pfx: OpenedPfx) -> tuple[str, str] | None:
        """X509Certificate2Collection.Import with MachineKeySet|PersistKeySet: the key is written to a new machine
        key container (a new file) as it is imported, before any X509Store.Add (learn.microsoft.com,
        X509KeyStorageFlags.PersistKeySet: "The key associated with a PFX file is persisted when importing a
        certificate"). (key storage, key file name), or None without a key."""
        if pfx.key is None:
            return None
        key_storage = "CNG" if isinstance(pfx.key, ec.EllipticCurvePrivateKey) else _storage_of(pfx.provider)
        if not isinstance(pfx.key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise CertificateError("Invalid provider type specified.", -2146893792)
        key_file = f"{uuid.uuid4().hex}_{MACHINE_GUID}"
        self._write_key(f"{KEY_FOLDERS[key_storage]}\\{key_file}", pfx.key)
        return key_storage, key_file

    def delete_persisted_key(self, persisted: tuple[str, str] | None) -> None:
        """CngKey.Delete (or PersistKeyInCsp = false and Dispose): the key container's file goes."""
        if persisted is None:
            return
        windows_path = f"{KEY_FOLDERS[persisted[0]]}\\{persisted[1]}"
        target = self.fs.resolve(windows_path)
        if target.is_file():
            target.unlink()
        self.ntfs.forget(windows_path)

    def add(
        self,
        location: str,
        store: str,
        pfx: OpenedPfx,
        *,
        exportable: bool,
        persisted: tuple[str, str] | None = None,
    ) -> StoredCertificate:
        """X509Store.Add of a certificate opened with MachineKeySet|PersistKeySet: the store entry points to the
        key container its import persisted (``persisted``, or persist_key now)."""
        key_storage = key_file = None
        if pfx.key is not None:
            key_storage, key_file = persisted if persisted is not None else self.persist_key(pfx) or (None, None)
        entry = StoredCertificate(
            thumbprint=pfx.thumbprint,
            subject=windows_subject(pfx.certificate.subject),
            not_after=pfx.certificate.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
            has_private_key=pfx.key is not None,
            key_file=key_file,
            key_storage=key_storage,
            exportable=exportable if pfx.key is not None else None,
            der=base64.b64encode(pfx.certificate.public_bytes(serialization.Encoding.DER)).decode("ascii"),
        )
        path = self._file(location, store, entry.thumbprint)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(entry), indent=1), encoding="utf-8")
        return entry

    def _write_key(self, windows_path: str, key: PrivateKeyTypes) -> None:
        # Windows protects the file's content with DPAPI; the simulator keeps PKCS#8 (it is a test host).
        target = self.fs.resolve(windows_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(
            key.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        # A new machine key file: owned by Administrators, only SYSTEM and Administrators, nothing inherited.
        full = [ntfs.Ace(SYSTEM, ntfs.FULL_CONTROL), ntfs.Ace(ADMINISTRATORS, ntfs.FULL_CONTROL)]
        self.ntfs.set_descriptor(windows_path, ntfs.Descriptor(owner=ADMINISTRATORS, protected=True, explicit=full))

    def remove(self, location: str, store: str, thumbprint: str, *, delete_key: bool) -> bool:
        """Remove-Item Cert:\\...\\<thumbprint> [-DeleteKey]."""
        entry = self.find(location, store, thumbprint)
        if entry is None:
            return False
        if delete_key and entry.key_path is not None:
            self.fs.resolve(entry.key_path).unlink(missing_ok=True)
            # The descriptor of a deleted file means nothing; a new key always gets a new unique name.
            self.ntfs.set_descriptor(entry.key_path, ntfs.Descriptor())
        self._file(location, store, thumbprint).unlink()
        return True

    # -- the key file's ACL ---------------------------------------------------------------------

    def key_readers(self, entry: StoredCertificate) -> list[tuple[str, str]]:
        """(SID, name) of accounts with an explicit allow entry including Read, except SYSTEM,
        Administrators and the owner: what the scripts' Get-KeyReaders returns. (It also skips the WinRM
        account itself; the simulator never gives that account an entry on a key file.)"""
        assert entry.key_path is not None
        descriptor = self.ntfs.descriptor(entry.key_path)
        readers: list[tuple[str, str]] = []
        for ace in descriptor.explicit:
            sid = ace.sid.upper()
            if not ace.allow or sid in (SYSTEM, ADMINISTRATORS, descriptor.owner.upper()):
                continue
            if specific_file_rights(ace.mask) & 0x20089 != 0x20089 or sid in [s for s, _ in readers]:
                continue
            try:
                name = accounts.lookup_sid(self.state_dir, sid).name
            except accounts.IdentityNotMapped:
                name = sid
            readers.append((sid, name))
        return readers

    def grant_read(self, entry: StoredCertificate, sid: str) -> None:
        """FileSecurity.AddAccessRule(Read, Allow): merged into the account's plain allow entry if it has one."""
        assert entry.key_path is not None
        current = self.ntfs.descriptor(entry.key_path)
        explicit = list(current.explicit)
        for index, ace in enumerate(explicit):
            if ace.sid.upper() == sid.upper() and ace.allow and not ace.inheritance and not ace.propagation:
                explicit[index] = ntfs.Ace(ace.sid, ace.mask | KEY_READ)
                break
        else:
            explicit.append(ntfs.Ace(sid.upper(), KEY_READ))
        self.ntfs.set_descriptor(entry.key_path, ntfs.Descriptor(current.owner, current.protected, explicit))

    def revoke(self, entry: StoredCertificate, sid: str) -> None:
        """FileSecurity.RemoveAccessRuleAll(allow rule of ``sid``)."""
        assert entry.key_path is not None
        current = self.ntfs.descriptor(entry.key_path)
        kept = [a for a in current.explicit if not (a.sid.upper() == sid.upper() and a.allow)]
        self.ntfs.set_descriptor(entry.key_path, ntfs.Descriptor(current.owner, current.protected, kept))


# -- what an administrator does by hand -------------------------------------------------------------


def admin_import_pfx(
    state_dir: Path,
    pfx: bytes,
    password: str,
    *,
    location: str = "LocalMachine",
    store: str = "My",
    exportable: bool = False,
) -> StoredCertificate:
    """Import-PfxCertificate -CertStoreLocation Cert:\\<location>\\<store> (replaces an entry with its thumbprint)."""
    opened = open_pfx(pfx, password)
    stores = CertStore(state_dir)
    stores.remove(location, store, opened.thumbprint, delete_key=True)
    return stores.add(location, store, opened, exportable=exportable)


def admin_remove(state_dir: Path, thumbprint: str, *, location: str = "LocalMachine", store: str = "My") -> bool:
    """Remove-Item Cert:\\<location>\\<store>\\<thumbprint> -DeleteKey."""
    return CertStore(state_dir).remove(location, store, thumbprint, delete_key=True)


def _entry(state_dir: Path, thumbprint: str, location: str, store: str) -> StoredCertificate:
    entry = CertStore(state_dir).find(location, store, thumbprint)
    if entry is None or entry.key_path is None:
        raise LookupError(f"Cert:\\{location}\\{store}\\{thumbprint} does not exist or has no private key")
    return entry


def admin_grant_key_read(
    state_dir: Path, thumbprint: str, principal: str, *, location: str = "LocalMachine", store: str = "My"
) -> None:
    """icacls <key file> /grant <principal>:R (raises accounts.IdentityNotMapped for an unknown account)."""
    sid = accounts.resolve(state_dir, principal).sid
    CertStore(state_dir).grant_read(_entry(state_dir, thumbprint, location, store), sid)


def admin_grant_key_generic_read(
    state_dir: Path, thumbprint: str, principal: str, *, location: str = "LocalMachine", store: str = "My"
) -> None:
    """icacls <key file> /grant <principal>:(GR): an allow entry holding only GENERIC_READ (0x80000000)."""
    sid = accounts.resolve(state_dir, principal).sid
    stores = CertStore(state_dir)
    entry = _entry(state_dir, thumbprint, location, store)
    assert entry.key_path is not None
    current = stores.ntfs.descriptor(entry.key_path)
    explicit = [*current.explicit, ntfs.Ace(sid.upper(), 0x80000000)]
    stores.ntfs.set_descriptor(entry.key_path, ntfs.Descriptor(current.owner, current.protected, explicit))


def admin_revoke_key_access(
    state_dir: Path, thumbprint: str, principal: str, *, location: str = "LocalMachine", store: str = "My"
) -> None:
    """icacls <key file> /remove:g <principal>."""
    sid = accounts.resolve(state_dir, principal).sid
    CertStore(state_dir).revoke(_entry(state_dir, thumbprint, location, store), sid)

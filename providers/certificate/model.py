"""The Certificate properties: the single source of truth for validation, diffs, secrets and docs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import field_validator

from providers.certificate.pfx import pfx_thumbprint
from providers.framework.model import ResourceModel, prop
from providers.framework.validators import account_name

StoreName = Literal["My", "WebHosting", "TrustedPeople", "Root", "CA"]
# Accounts that hold full control of every machine key they (or an administrator) import: declaring one as a
# reader could never be seen on the host (get.ps1 leaves them out) and would show as a change on every up.
_ALWAYS_FULL_CONTROL = frozenset(
    name.upper()
    for name in (
        "S-1-5-18",
        "SYSTEM",
        "NT AUTHORITY\\SYSTEM",
        "LocalSystem",
        "S-1-5-32-544",
        "Administrators",
        "BUILTIN\\Administrators",
    )
)
# What the get and remove scripts need: never the PFX or its password.
_LOOKUP_KEYS = ("store_location", "store_name", "private_key_readers", "owner")


class CertificateModel(ResourceModel):
    """A certificate with its private key, imported from a PFX into the machine's certificate store."""

    kind = "Certificate"

    pfx: str = prop(
        description="The PFX (PKCS#12) file, base64-encoded. Checked before any host call: RSA-2048 or larger "
        "(or EC P-256+), never signed with SHA-1/MD5, currently valid, with its private key. A PFX holding "
        "another certificate replaces the resource (new one imported first, then the old one removed), so "
        "bindings using `thumbprint` move in the same `up`. Its intermediate CA certificates are added to "
        "LocalMachine\\CA (IIS sends the chain it builds from the machine's stores) and stay there on destroy: "
        "they are public, and other certificates may chain through them (CertificateDsc's PfxImport leaves them too).",
        secret=True,
        manual="DOMAIN: Certificates (SSL certificate; encryption key pair RSA-2048, SHA-256)",
    )
    pfx_password: str = prop(
        description="The PFX's password. Reaches the host only on the script's standard input.",
        secret=True,
    )
    store_location: Literal["LocalMachine"] = prop(
        "LocalMachine",
        description="LocalMachine only: a CurrentUser store would be the WinRM account's, which the "
        "application pool identity cannot read.",
        replaces=True,
        manual="install-server-6.2: EncryptionCertificate StoreLocation",
    )
    store_name: StoreName = prop(
        "My",
        description="Store name: My (Personal, what IIS bindings and EncryptionCertificate use), WebHosting, "
        "TrustedPeople, Root or CA.",
        replaces=True,
        manual="install-server-6.2: EncryptionCertificate StoreName",
    )
    exportable: bool = prop(
        False,
        description="Mark the private key exportable. Off by default: nobody can copy the key out of the "
        "store. Changing it re-imports the certificate (removed first, as it is the same store entry).",
        replaces=True,
    )
    private_key_readers: list[str] = prop(
        [],
        description="Accounts granted Read on the private key file (e.g. 'IIS AppPool\\<pool>', the pool identity "
        "needs it). Compared by SID; other accounts' read entries on the key file are removed, except those "
        "another owner of the certificate declared and those it had when found in the store (SYSTEM, "
        "Administrators, the key's owner and the WinRM account that imported it are always kept).",
        manual="DOMAIN: the pool identity needs read access to the private key",
    )

    owner: str = prop(
        "",
        description="Set by the resource, not by you: the id it records on the host as one of the certificate's "
        "owners (organization and URN). Two stacks or resources importing the same PFX each hold a share; "
        "destroying one removes only its share and its readers, and the certificate goes with the last owner. "
        "A new id (a renamed stack or resource, or a state from before owners were recorded on the host) is an "
        "update that moves the record to it.",
    )

    @field_validator("private_key_readers")
    @classmethod
    def _readers(cls, value: list[str]) -> list[str]:
        names = [account_name(item) for item in value]
        always = [name for name in names if name.upper() in _ALWAYS_FULL_CONTROL]
        if always:
            raise ValueError(
                f"lists {always}: Windows gives SYSTEM, Administrators and the importing account full control of "
                "every machine key, so the key's file never shows them as readers; remove them"
            )
        lowered = [name.lower() for name in names]
        duplicates = sorted({name for name in lowered if lowered.count(name) > 1})
        if duplicates:
            raise ValueError(f"lists {duplicates} more than once; give each account once")
        return names

    def resource_id(self) -> str:
        return pfx_thumbprint(self.pfx, self.pfx_password)

    def lookup_input(self, thumbprint: str) -> dict[str, Any]:
        """Input of get: no secrets, as reading needs none."""
        data = self.model_dump(mode="json", include=set(_LOOKUP_KEYS))
        return {"thumbprint": thumbprint, **data}

    def script_input(self) -> dict[str, Any]:
        return {**super().script_input(), "thumbprint": self.resource_id()}

    def actual_from(self, state: dict[str, Any]) -> dict[str, Any]:
        """exportable and private_key_readers as the host has them, readers in the spelling declared here."""
        actual: dict[str, Any] = {}
        if state.get("exportable") is not None:
            actual["exportable"] = state["exportable"]
        if not state.get("has_private_key"):
            return actual
        present = {str(r["sid"]).upper(): str(r["name"]) for r in state.get("private_key_readers") or []}
        declared_sids = [str(s).upper() if s else None for s in state.get("reader_sids") or []]
        readers = [name for name, sid in zip(self.private_key_readers, declared_sids, strict=False) if sid in present]
        extra = [name for sid, name in present.items() if sid not in declared_sids]
        actual["private_key_readers"] = readers + sorted(extra)
        return actual

"""SIMULATOR: model of providers/certificate/scripts/{get,set,remove}.ps1 on devhost.certstore."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from devhost import accounts
from devhost.certstore import CertificateError, CertStore, StoredCertificate, open_pfx
from devhost.fs import WindowsFs
from devhost.ops.envelope import Envelope, OperationStopped, change, fail, operation, require_keys, succeed

_LOOKUP = {"thumbprint", "store_location", "store_name", "private_key_readers"}
_SET = _LOOKUP | {"pfx", "pfx_password", "exportable"}
_REMOVE = _LOOKUP | {"imported"}
_WRONG_PASSWORD_HRESULT = -2147024810


def _declared_sids(fs: WindowsFs, spec: dict[str, Any]) -> list[str | None]:
    """Get-DeclaredReaderSids: None for a name that does not translate."""
    sids: list[str | None] = []
    for name in spec["private_key_readers"]:
        try:
            sids.append(accounts.resolve(fs.root, str(name)).sid)
        except accounts.IdentityNotMapped:
            sids.append(None)
    return sids


def _resolve(fs: WindowsFs, name: str) -> str:
    """Resolve-Principal."""
    try:
        return accounts.resolve(fs.root, name).sid
    except accounts.IdentityNotMapped as error:
        raise OperationStopped(
            fail(
                "IdentityNotMapped",
                f"private_key_readers: '{name}': {str(error).split(' (')[0]} Create the account first; for "
                "'IIS AppPool\\<pool>' the application pool must exist (make this resource depend on it).",
                prop="private_key_readers",
                category="ObjectNotFound",
            )
        ) from None


def _state(fs: WindowsFs, spec: dict[str, Any]) -> tuple[dict[str, Any], StoredCertificate | None]:
    """Get-CertificateState."""
    thumbprint = str(spec["thumbprint"]).upper()
    state: dict[str, Any] = {
        "ensure": "absent",
        "thumbprint": thumbprint,
        "store_location": spec["store_location"],
        "store_name": spec["store_name"],
    }
    stores = CertStore(fs.root)
    entry = stores.find(spec["store_location"], spec["store_name"], thumbprint)
    if entry is None:
        return state, None
    if entry.has_private_key and not stores.key_exists(entry):
        # Windows: the certificate says it has a key, but opening the key fails ("Keyset does not exist").
        raise OperationStopped(fail("UnexpectedError", "Keyset does not exist", category="NotSpecified"))
    readers = stores.key_readers(entry) if entry.has_private_key else []
    state.update(
        ensure="present",
        subject=entry.subject,
        not_after=entry.not_after,
        has_private_key=entry.has_private_key,
        key_storage=entry.key_storage,
        key_file=entry.key_path,
        exportable=entry.exportable,
        private_key_readers=[{"sid": sid, "name": name} for sid, name in readers],
        reader_sids=_declared_sids(fs, spec),
    )
    return state, entry


@operation
def get(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _LOOKUP)
    return succeed(_state(fs, spec)[0])


def _import(fs: WindowsFs, spec: dict[str, Any], thumbprint: str) -> Envelope | None:
    """The set script's import branch; an Envelope when it stops."""
    try:
        data = base64.b64decode(str(spec["pfx"]), validate=True)
    except (binascii.Error, ValueError):
        # [Convert]::FromBase64String throws FormatException, which the prelude's trap reports.
        return fail(
            "UnexpectedError",
            "The input is not a valid Base-64 string as it contains a non-base 64 "
            "character, more than two padding characters, or an illegal character among the padding "
            "characters.",
            category="NotSpecified",
        )
    try:
        opened = open_pfx(data, str(spec["pfx_password"]))
    except CertificateError as error:
        if error.hresult == _WRONG_PASSWORD_HRESULT:
            return fail(
                "PfxPasswordIncorrect",
                f"{error} Give the password the PFX was exported with.",
                prop="pfx_password",
                category="InvalidData",
            )
        return fail(
            "PfxImportFailed",
            f"the PFX could not be imported: {error} Give the bytes of an intact .pfx file, base64-encoded.",
            prop="pfx",
            category="InvalidData",
        )
    if opened.thumbprint != thumbprint:
        return fail(
            "ThumbprintMismatch",
            f"the PFX's certificate has thumbprint {opened.thumbprint}, expected "
            f"{thumbprint}; the PFX changed between check and import.",
            prop="pfx",
        )
    if opened.key is None:
        return fail(
            "PfxHasNoPrivateKey",
            "the PFX holds no private key; export the certificate together with its private key.",
            prop="pfx",
        )
    stores = CertStore(fs.root)
    # X509Store.Add over an entry without a key: the entry now points to the new key.
    stores.remove(spec["store_location"], spec["store_name"], thumbprint, delete_key=False)
    stores.add(spec["store_location"], spec["store_name"], opened, exportable=bool(spec["exportable"]))
    return None


@operation
def set_(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _SET)
    thumbprint = str(spec["thumbprint"]).upper()
    before, _ = _state(fs, spec)
    changes: list[dict[str, Any]] = []
    imported = False
    if before["ensure"] == "present" and before["has_private_key"]:
        if bool(before["exportable"]) != bool(spec["exportable"]):
            return fail(
                "ExportPolicyDiffers",
                f"certificate {thumbprint} is already in {spec['store_location']}\\{spec['store_name']} with "
                f"exportable={'True' if before['exportable'] else 'False'}, not imported by this resource; set "
                "exportable to match, or remove it from the store first.",
                prop="exportable",
            )
    else:
        stopped = _import(fs, spec, thumbprint)
        if stopped is not None:
            return stopped
        imported = before["ensure"] == "absent"
        changes.append(change("ensure", "absent", "present") if imported else change("has_private_key", False, True))
    current, entry = _state(fs, spec)
    assert entry is not None
    wanted = [_resolve(fs, str(name)) for name in spec["private_key_readers"]]
    present = [r["sid"] for r in current["private_key_readers"]]
    missing = [sid for sid in wanted if sid not in present]
    extra = [sid for sid in present if sid not in wanted]
    if missing or extra:
        stores = CertStore(fs.root)
        for sid in extra:
            stores.revoke(entry, sid)
        for sid in missing:
            stores.grant_read(entry, sid)
        after, _ = _state(fs, spec)
        names = [r["name"] for r in current["private_key_readers"]]
        changes.append(change("private_key_readers", names, [r["name"] for r in after["private_key_readers"]]))
        current = after
    current["imported"] = imported
    return succeed(current, changes)


@operation
def remove(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _REMOVE)
    before, _ = _state(fs, spec)
    if before["ensure"] == "absent":
        return succeed(before)
    if not spec["imported"]:
        before["left_in_store"] = True
        return succeed(before)
    CertStore(fs.root).remove(spec["store_location"], spec["store_name"], before["thumbprint"], delete_key=True)
    after, _ = _state(fs, spec)
    return succeed(after, [change("ensure", "present", "absent")])


OPERATIONS = {"certificate/get": get, "certificate/set": set_, "certificate/remove": remove}

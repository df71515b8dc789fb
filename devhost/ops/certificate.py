"""SIMULATOR: model of providers/certificate/scripts/{get,set,remove}.ps1 on devhost.certstore."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from devhost import accounts, iis
from devhost.certstore import KEY_FOLDERS, CertificateError, CertStore, OpenedPfx, StoredCertificate, open_pfx
from devhost.fs import WindowsFs
from devhost.ops import ownership
from devhost.ops.envelope import Envelope, OperationStopped, change, fail, operation, require_keys, succeed
from devhost.ops.script_accounts import convert_to_account_sid
from devhost.ps51 import ScriptFact

_LOOKUP = {"thumbprint", "store_location", "store_name", "private_key_readers", "owner"}
_SET = _LOOKUP | {"pfx", "pfx_password", "exportable", "imported_by_state", "previous_owner"}
_REMOVE = _LOOKUP | {"imported"}
_WRONG_PASSWORD_HRESULT = -2147024810
_ALL = ("certificate/get", "certificate/set", "certificate/remove")
SCRIPT_FACTS = (
    ScriptFact(
        ("certificate/get", "certificate/set", "certificate/remove"),
        r"Initialize-ReaderLookups \$Spec [^\n]*\n(?:[^\n]*\n){0,3}\$lock = Enter-OwnersLock",
        "the LSA lookups (reader names and declared readers' SIDs) are done before the owners lock, which every "
        "operation on a shared object of the host waits for; the model's lookups take no time",
    ),
    ScriptFact(
        ("certificate/get", "certificate/set", "certificate/remove"),
        r"\$readers \+= \[ordered\]@\{ sid = \$sid; name = \(Get-ReaderName \$rule\.IdentityReference\) \}",
        "a reader's name comes from the lookups made before the lock (Get-ReaderName), not a Translate under it",
    ),
    ScriptFact(
        ("certificate/set",),
        r"if \(\$certificate\.Thumbprint -ne \$thumbprint\) \{\s+Remove-ImportedKeys \$collection\s+"
        r"Stop-Operation -Id 'ThumbprintMismatch'",
        "Import with PersistKeySet wrote the key already (certstore.persist_key): a refused certificate's key file "
        "is deleted before the stop, as the model does",
    ),
    ScriptFact(
        _ALL,
        r"\$MachineKeyFolders = \[ordered\]@\{ CNG = 'Microsoft\\Crypto\\Keys'; "
        r"CAPI = 'Microsoft\\Crypto\\RSA\\MachineKeys' \}",
        "on .NET Framework 4.6+ a CAPI key is an RSACng whose UniqueName is its file in RSA\\MachineKeys "
        "(learn.microsoft.com seccng/key-storage-and-retrieval): both folders must be searched",
    ),
    ScriptFact(_ALL, r"Find-MachineKeyFile \$Certificate\.Thumbprint \$key\.Key\.UniqueName", "the RSACng branch"),
    ScriptFact(
        _ALL,
        r"'Microsoft\\Crypto\\Keys\\' \+ \$key\.Key\.UniqueName",
        "an RSACng key is not always in Crypto\\Keys",
        present=False,
    ),
    ScriptFact(
        ("certificate/set",),
        r"\$caStore\.Add\(\$intermediate\)",
        "X509Certificate2(bytes) keeps only the leaf; IIS needs the intermediates in LocalMachine\\CA",
    ),
    ScriptFact(
        _ALL,
        r"ConvertTo-ComparableMask \(\[long\]\[int\]\$rule\.FileSystemRights\)",
        "an ACE holding GENERIC_READ alone (icacls (GR)) grants read: generic bits are mapped before the test",
    ),
    ScriptFact(
        ("certificate/remove",),
        r"foreach \(\$table in @\('SslBindingInfo', 'SslSniBindingInfo'\)\)",
        "HTTP.sys keeps each certificate binding (HTTP_SERVICE_CONFIG_SSL_SET, pSslHash = the thumbprint) under "
        "HKLM\\SYSTEM\\CurrentControlSet\\Services\\HTTP\\Parameters\\SslBindingInfo\\<ip:port> or "
        "SslSniBindingInfo\\<host:port>, value SslCertHash (techcommunity.microsoft.com IIS support blog)",
    ),
    ScriptFact(
        ("certificate/set",),
        r"Write-OwnersJson \$mine \(\[ordered\]@\{ owner = \$owner; readers = @\(\$inherited\) \}\)\s+"
        r"\$recordedNow = \$true\s+"
        r"\}[\s\S]*?if \(-not \(\$before\.ensure -eq 'present' -and \$before\.has_private_key\)\) \{\s+try \{",
        "the owner record is written before the import, so a reply lost after the import leaves it owned",
    ),
    ScriptFact(
        ("certificate/set",),
        r"if \(\$recordedNow -and \(Get-CertificateState \$Spec\)\.ensure -eq 'absent'\) "
        r"\{ \[System\.IO\.File\]::Delete\(\$mine\) \}\s+throw",
        "a failed import (no resource is created) takes back the record it wrote, unless the certificate got in",
    ),
    ScriptFact(
        ("certificate/set",),
        r"\$wanted = @\(@\(\$Spec\.private_key_readers\)[^\n]*\n[\s\S]*?\$lock = Enter-OwnersLock",
        "the readers are resolved through LSA before the owners lock, as the model does",
    ),
    ScriptFact(
        ("certificate/set",),
        r"Write-OwnersJson \$mine \(\[ordered\]@\{ owner = \$owner; readers = @\(\$wanted\) \}\)\s+[^\n]*\n\s+"
        r"if \(\$null -ne \$previousPath -and \[System\.IO\.File\]::Exists\(\$previousPath\)\) "
        r"\{ \[System\.IO\.File\]::Delete\(\$previousPath\) \}",
        "the state's old id keeps its record (and the readers it holds) until the new record holds them",
    ),
    ScriptFact(
        ("certificate/remove",),
        r"\$revoke = @\(\$before\.private_key_readers \| Where-Object \{ \$foundReaders -notcontains \$_\.sid \}\)",
        "the last owner of a found certificate takes it back to the readers found.json recorded",
    ),
    ScriptFact(
        ("certificate/remove",),
        r"if \(\$store -ne \$StoreName\) \{ continue \}",
        "an HTTP.sys entry counts only when it takes the certificate from this store (SslCertStoreName)",
    ),
    *ownership.script_facts(_ALL),
)


def _declared_sids(fs: WindowsFs, spec: dict[str, Any]) -> list[str | None]:
    """Get-DeclaredReaderSids: None for a name that does not translate."""
    sids: list[str | None] = []
    for name in spec["private_key_readers"]:
        try:
            sids.append(convert_to_account_sid(fs.root, str(name)))
        except accounts.IdentityNotMapped:
            sids.append(None)
    return sids


def _resolve(fs: WindowsFs, name: str) -> str:
    """Resolve-Principal."""
    try:
        return convert_to_account_sid(fs.root, name)
    except accounts.IdentityNotMapped as error:
        raise OperationStopped(
            fail(
                "IdentityNotMapped",
                f"private_key_readers: '{name}': {str(error).split(' (')[0]} Create the account first (a built-in "
                "one: give its SID, S-1-...); for 'IIS AppPool\\<pool>' the application pool must exist (make this "
                "resource depend on it).",
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
    try:
        handle = stores.open_private_key(entry)
    except CertificateError as error:
        # Windows: the certificate says it has a key, but opening the key fails ("Keyset does not exist").
        raise OperationStopped(fail("UnexpectedError", str(error), category="NotSpecified")) from None
    key_storage = key_file = None
    if handle is not None:
        # Get-PrivateKeyInfo: the handle is RSACng/ECDsaCng whatever the provider; Find-MachineKeyFile
        # looks for its UniqueName in Crypto\Keys, then RSA\MachineKeys, and the folder gives key_storage.
        key_file = stores.machine_key_file(handle.unique_name)
        if key_file is None:
            raise OperationStopped(_key_file_not_found(thumbprint, handle.unique_name))
        key_storage = "CNG" if key_file.startswith(KEY_FOLDERS["CNG"] + "\\") else "CAPI"
    readers = stores.key_readers(entry) if entry.has_private_key else []
    state.update(
        ensure="present",
        subject=entry.subject,
        not_after=entry.not_after,
        has_private_key=entry.has_private_key,
        key_storage=key_storage,
        key_file=key_file,
        exportable=handle.exportable if handle is not None else None,
        private_key_readers=[{"sid": sid, "name": name} for sid, name in readers],
        reader_sids=_declared_sids(fs, spec),
    )
    return state, entry


def _owners_folder(spec: dict[str, Any]) -> str:
    """Get-CertificateOwnersFolder."""
    key = f"{spec['store_location']}-{spec['store_name']}-{str(spec['thumbprint']).upper()}"
    return ownership.folder("Certificate", key)


def _readers_of_others(fs: WindowsFs, folder: str, owner: str) -> list[str]:
    """Get-ReadersOfOthers."""
    sids = [str(sid) for r in ownership.records(fs, folder) if r["owner"] != owner for sid in r["readers"] if sid]
    found = ownership.read(fs, ownership.found_path(folder))
    if found is not None:
        sids += [str(sid) for sid in found["readers"] if sid]
    return sids


def _own_readers(state: dict[str, Any], others: list[str]) -> dict[str, Any]:
    """Select-OwnReaders (PowerShell's -contains compares strings case-insensitively)."""
    if state["ensure"] == "present":
        declared = {str(s).upper() for s in state["reader_sids"] if s}
        others_upper = {s.upper() for s in others}
        state["private_key_readers"] = [
            r
            for r in state["private_key_readers"]
            if r["sid"].upper() in declared or r["sid"].upper() not in others_upper
        ]
    return state


def _bindings(fs: WindowsFs, thumbprint: str, store_name: str) -> list[str]:
    """Get-CertificateBindings: the HTTP.sys entries whose SslCertHash is this thumbprint, taken from this store
    (SslCertStoreName, 'MY' when absent)."""
    return [
        key
        for key, entry in iis.sslcerts(fs.root).items()
        if str(entry.get("hash", "")).upper() == thumbprint
        and str(entry.get("store") or "MY").upper() == store_name.upper()
    ]


def _key_file_not_found(thumbprint: str, unique_name: str) -> Envelope:
    return fail(
        "KeyFileNotFound",
        f"the private key '{unique_name}' of certificate {thumbprint} has no file under "
        "C:\\ProgramData\\Microsoft\\Crypto\\Keys or \\RSA\\MachineKeys; it is not a machine key. Import the PFX "
        "into LocalMachine (this resource does) or remove the certificate and let this resource import it.",
        prop="private_key_readers",
        category="ObjectNotFound",
    )


@operation
def get(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _LOOKUP)
    folder = _owners_folder(spec)
    with ownership.host_lock(fs):  # get.ps1 reads the records under the owners lock
        ownership.assert_trusted(fs, folder)
        return succeed(_own_readers(_state(fs, spec)[0], _readers_of_others(fs, folder, str(spec["owner"]))))


def _import(fs: WindowsFs, spec: dict[str, Any], thumbprint: str, changes: list[dict[str, Any]]) -> Envelope | None:
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
    stores = CertStore(fs.root)
    persisted = stores.persist_key(opened)  # Import with PersistKeySet writes the key file already
    if opened.thumbprint != thumbprint:
        stores.delete_persisted_key(persisted)  # Remove-ImportedKeys
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
    # X509Store.Add over an entry without a key: the entry now points to the new key.
    stores.remove(spec["store_location"], spec["store_name"], thumbprint, delete_key=False)
    stores.add(
        spec["store_location"], spec["store_name"], opened, exportable=bool(spec["exportable"]), persisted=persisted
    )
    # The set script adds the PFX's intermediate CA certificates to LocalMachine\CA (not self-signed roots).
    added = []
    for intermediate in opened.intermediates:
        ca = OpenedPfx(intermediate, None)
        if stores.find("LocalMachine", "CA", ca.thumbprint) is None:
            stores.add("LocalMachine", "CA", ca, exportable=False)
            added.append(ca.thumbprint)
    if added:
        changes.append(change("intermediate_certificates", None, added))
    return None


@operation
def set_(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _SET)
    # The readers are resolved before the lock (set.ps1: an LSA lookup may be slow).
    wanted = [_resolve(fs, str(name)) for name in spec["private_key_readers"]]
    folder = _owners_folder(spec)
    with ownership.host_lock(fs):
        ownership.initialize(fs, folder)
        try:
            return _set(fs, spec, wanted)
        finally:
            ownership.remove_unused_folder(fs, folder)  # a refused set leaves no empty folder


def _set(fs: WindowsFs, spec: dict[str, Any], wanted: list[str]) -> Envelope:
    thumbprint = str(spec["thumbprint"]).upper()
    owner = str(spec["owner"])
    folder = _owners_folder(spec)
    previous = str(spec["previous_owner"])
    previous_path = ownership.record_path(folder, previous) if previous and previous != owner else None
    before, _ = _state(fs, spec)
    mine = ownership.record_path(folder, owner)
    found = ownership.found_path(folder)
    if (
        before["ensure"] == "present"
        and before["has_private_key"]
        and bool(before["exportable"]) != bool(spec["exportable"])
    ):
        return fail(
            "ExportPolicyDiffers",
            f"certificate {thumbprint} is already in {spec['store_location']}\\{spec['store_name']} with "
            f"exportable={'True' if before['exportable'] else 'False'}, imported by someone else; set "
            "exportable to match, or remove it from the store first.",
            prop="exportable",
        )  # before anything is recorded
    if before["ensure"] == "absent":  # gone from the store: what found.json said about it is stale
        ownership.delete(fs, found)
    recorded_now = False
    if not ownership.exists(fs, mine):
        recorded_now = True
        # The first owner finds it in the store: someone else's (kept on destroy, with the readers it had).
        if (
            before["ensure"] == "present"
            and not ownership.records(fs, folder)
            and not spec["imported_by_state"]
            and not ownership.exists(fs, found)
        ):
            ownership.write(fs, found, {"readers": [r["sid"] for r in before["private_key_readers"]]})
        # Before the import; with the readers of the state's id (a renamed resource) until this record holds them.
        earlier = ownership.read(fs, previous_path) if previous_path is not None else None
        ownership.write(fs, mine, {"owner": owner, "readers": list(earlier["readers"]) if earlier else []})
    changes: list[dict[str, Any]] = []
    if not (before["ensure"] == "present" and before["has_private_key"]):
        chain_changes: list[dict[str, Any]] = []
        stopped = _import(fs, spec, thumbprint, chain_changes)
        if stopped is not None:
            # The catch: a failed import takes back the record it wrote, unless the certificate got in.
            if recorded_now and _state(fs, spec)[0]["ensure"] == "absent":
                ownership.delete(fs, mine)
            return stopped
        fresh = before["ensure"] == "absent"
        changes.append(change("ensure", "absent", "present") if fresh else change("has_private_key", False, True))
        changes.extend(chain_changes)
    others = _readers_of_others(fs, folder, owner)
    current, entry = _state(fs, spec)
    assert entry is not None
    present = [r["sid"] for r in current["private_key_readers"]]
    missing = [sid for sid in wanted if sid not in present]
    extra = [sid for sid in present if sid not in wanted and sid not in others]
    current = _own_readers(current, others)
    ownership.write(fs, mine, {"owner": owner, "readers": wanted})
    if previous_path is not None:  # the state's id goes once this record holds what it declared
        ownership.delete(fs, previous_path)
    if missing or extra:
        stores = CertStore(fs.root)
        for sid in extra:
            stores.revoke(entry, sid)
        for sid in missing:
            stores.grant_read(entry, sid)
        after = _own_readers(_state(fs, spec)[0], others)
        names = [r["name"] for r in current["private_key_readers"]]
        changes.append(change("private_key_readers", names, [r["name"] for r in after["private_key_readers"]]))
        current = after
    current["imported"] = not ownership.exists(fs, found)
    current["owners"] = len(ownership.records(fs, folder))
    return succeed(current, changes)


@operation
def remove(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _REMOVE)
    with ownership.host_lock(fs):
        return _remove(fs, spec)


def _remove(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    owner = str(spec["owner"])
    folder = _owners_folder(spec)
    ownership.assert_trusted(fs, folder)
    before, entry = _state(fs, spec)
    recorded = ownership.recorded(fs, folder)
    mine = ownership.record_path(folder, owner)
    record = ownership.read(fs, mine)
    my_readers = [str(sid) for sid in record["readers"]] if record is not None else []
    if not recorded:  # a state from before owners: the readers it declares are its own
        my_readers = [str(sid) for sid in before.get("reader_sids", []) if sid]
    others = [r for r in ownership.records(fs, folder) if r["owner"] != owner]
    found_record = ownership.read(fs, ownership.found_path(folder))
    found = found_record is not None
    if before["ensure"] == "absent":
        ownership.delete(fs, mine)
        if not others:
            ownership.remove_folder(fs, folder)
        return succeed(before)
    bindings = _bindings(fs, before["thumbprint"], str(spec["store_name"]))
    last = (not others and not found) if recorded else bool(spec["imported"])
    if not last or bindings:
        changes = []
        readers_of_others = _readers_of_others(fs, folder, owner)
        current = _own_readers(before, readers_of_others)
        if not others and found_record is not None:
            # The last owner of a found certificate: back to the readers it had then.
            had = {str(sid).upper() for sid in found_record["readers"]}
            revoke = [r for r in before["private_key_readers"] if r["sid"].upper() not in had]
        else:
            mine_only = [sid for sid in my_readers if sid not in readers_of_others]
            revoke = [r for r in current["private_key_readers"] if r["sid"] in mine_only]
        if revoke:
            assert entry is not None
            stores = CertStore(fs.root)
            for reader in revoke:
                stores.revoke(entry, reader["sid"])
            changes.append(change("private_key_readers", [r["name"] for r in revoke], []))
        ownership.delete(fs, mine)  # once its readers are off the key
        if not others:
            ownership.remove_folder(fs, folder)
        after, _ = _state(fs, spec)
        after.update(
            left_in_store=True, other_owners=len(others), found_in_store=found or not recorded, bound_by=bindings
        )
        return succeed(after, changes)
    CertStore(fs.root).remove(spec["store_location"], spec["store_name"], before["thumbprint"], delete_key=True)
    ownership.remove_folder(fs, folder)
    after, _ = _state(fs, spec)
    return succeed(after, [change("ensure", "present", "absent")])


OPERATIONS = {"certificate/get": get, "certificate/set": set_, "certificate/remove": remove}

"""SIMULATOR: the certificate store model and the model of the certificate scripts, without WinRM."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from devhost import accounts, certstore, ntfs
from devhost.fs import WindowsFs
from devhost.ops import certificate as ops
from devhost.ops.envelope import InputContractError
from tests.providers.test_certificate_engine import PASSWORD, make_pfx, pfx_thumbprint

READER = "NT AUTHORITY\\NETWORK SERVICE"


def lookup(pfx: str, readers: list[str] | None = None, store: str = "My") -> dict[str, Any]:
    return {
        "thumbprint": pfx_thumbprint(pfx),
        "store_location": "LocalMachine",
        "store_name": store,
        "private_key_readers": readers or [],
        "owner": "test-stack/cert",
    }


def set_spec(pfx: str, password: str = PASSWORD, exportable: bool = False, **extra: Any) -> dict[str, Any]:
    return {
        **lookup(pfx, **extra),
        "pfx": pfx,
        "pfx_password": password,
        "exportable": exportable,
        "imported_by_state": False,
        "previous_owner": "",
    }


def test_import_writes_the_store_entry_and_a_protected_key_file(fs: WindowsFs) -> None:
    pfx = make_pfx(cn="agent.contoso.test")
    thumb = pfx_thumbprint(pfx)
    result = ops.set_(fs, set_spec(pfx, readers=[READER]))
    assert result.ok and result.state["imported"] is True
    assert [c["property"] for c in result.changes] == ["ensure", "private_key_readers"]
    entry_file = fs.root / "_sim" / "certstore" / "LocalMachine" / "My" / f"{thumb}.json"
    entry = json.loads(entry_file.read_text())
    assert entry["subject"] == "CN=agent.contoso.test" and entry["has_private_key"] is True
    assert entry["key_storage"] == "CAPI" and entry["exportable"] is False
    assert base64.b64decode(entry["der"])[0] == 0x30
    key_path = result.state["key_file"]
    assert key_path == f"C:\\ProgramData\\Microsoft\\Crypto\\RSA\\MachineKeys\\{entry['key_file']}"
    assert fs.resolve(key_path).is_file()
    descriptor = ntfs.NtfsStore(fs.root).descriptor(key_path)
    assert descriptor.protected and {a.sid for a in descriptor.explicit} == {
        "S-1-5-18",
        "S-1-5-32-544",
        accounts.resolve(fs.root, READER).sid,
    }
    again = ops.set_(fs, set_spec(pfx, readers=[READER]))
    # The same owner again (a retry after a lost reply looks the same): its own import, recorded on the host.
    assert again.ok and again.changes == [] and again.state["imported"] is True


def test_ec_key_goes_to_cng(fs: WindowsFs) -> None:
    pfx = make_pfx(key=ec.generate_private_key(ec.SECP384R1()))
    state = ops.set_(fs, set_spec(pfx)).state
    assert state["key_storage"] == "CNG" and state["key_file"].startswith("C:\\ProgramData\\Microsoft\\Crypto\\Keys\\")


@pytest.mark.parametrize(
    ("spec_change", "error_id", "prop", "message"),
    [
        (
            {"pfx_password": "wrong"},
            "PfxPasswordIncorrect",
            "pfx_password",
            "The specified network password is not correct.",
        ),
        (
            {"pfx": base64.b64encode(b"\x04hello, not a pfx").decode()},
            "PfxImportFailed",
            "pfx",
            "Cannot find the requested object.",
        ),
        ({"pfx": "***"}, "UnexpectedError", None, "not a valid Base-64 string"),
        ({"thumbprint": "00" * 20}, "ThumbprintMismatch", "pfx", "expected 0000"),
        (
            {"private_key_readers": ["CONTOSO\\nobody"]},
            "IdentityNotMapped",
            "private_key_readers",
            "could not be translated",
        ),
    ],
)
def test_refusals_are_those_of_windows(
    fs: WindowsFs, spec_change: dict[str, Any], error_id: str, prop: str | None, message: str
) -> None:
    result = ops.set_(fs, {**set_spec(make_pfx()), **spec_change})
    assert not result.ok and result.error is not None
    assert (result.error["id"], result.error["property"]) == (error_id, prop)
    assert message in result.error["message"]


def test_pfx_without_key_is_refused_and_nothing_is_stored(fs: WindowsFs) -> None:
    pfx = make_pfx(with_key=False)
    result = ops.set_(fs, set_spec(pfx))
    assert not result.ok and result.error and result.error["id"] == "PfxHasNoPrivateKey"
    assert ops.get(fs, lookup(pfx)).state["ensure"] == "absent"


def test_readers_are_compared_by_sid_and_extra_ones_removed(fs: WindowsFs) -> None:
    pfx = make_pfx()
    ops.set_(fs, set_spec(pfx, readers=[READER]))
    thumb = pfx_thumbprint(pfx)
    certstore.admin_grant_key_read(fs.root, thumb, "BUILTIN\\Users")
    sid = accounts.resolve(fs.root, READER).sid
    state = ops.get(fs, lookup(pfx, readers=[sid])).state
    assert {r["name"] for r in state["private_key_readers"]} == {READER, "BUILTIN\\Users"}
    assert state["reader_sids"] == [sid]
    repaired = ops.set_(fs, set_spec(pfx, readers=[sid]))
    assert [r["sid"] for r in repaired.state["private_key_readers"]] == [sid]
    assert repaired.changes[0]["property"] == "private_key_readers"


def test_existing_certificate_is_adopted_and_kept_by_remove(fs: WindowsFs) -> None:
    pfx = make_pfx()
    certstore.admin_import_pfx(fs.root, base64.b64decode(pfx), PASSWORD, exportable=True)
    mismatch = ops.set_(fs, set_spec(pfx))
    assert not mismatch.ok and mismatch.error and mismatch.error["id"] == "ExportPolicyDiffers"
    adopted = ops.set_(fs, set_spec(pfx, exportable=True))
    assert adopted.ok and adopted.state["imported"] is False
    kept = ops.remove(fs, {**lookup(pfx), "imported": False})
    assert kept.ok and kept.state["left_in_store"] is True and kept.changes == []
    assert ops.get(fs, lookup(pfx)).state["ensure"] == "present"


def test_remove_deletes_certificate_and_key_file(fs: WindowsFs) -> None:
    pfx = make_pfx()
    key_path = ops.set_(fs, set_spec(pfx)).state["key_file"]
    removed = ops.remove(fs, {**lookup(pfx), "imported": True})
    assert removed.ok and removed.state["ensure"] == "absent" and removed.changes
    assert not fs.resolve(key_path).exists()
    assert ops.remove(fs, {**lookup(pfx), "imported": True}).changes == []


def test_key_file_deleted_behind_the_store_is_reported(fs: WindowsFs) -> None:
    pfx = make_pfx()
    fs.resolve(ops.set_(fs, set_spec(pfx)).state["key_file"]).unlink()
    result = ops.get(fs, lookup(pfx))
    assert not result.ok and result.error and "Keyset does not exist" in result.error["message"]


def test_input_contract_drift_fails_loudly(fs: WindowsFs) -> None:
    with pytest.raises(InputContractError):
        ops.get(fs, {**lookup(make_pfx()), "pfx": "must not be sent to get"})
    with pytest.raises(InputContractError):
        ops.remove(fs, lookup(make_pfx()))  # 'imported' missing


def test_store_outside_the_model_is_refused(fs: WindowsFs) -> None:
    with pytest.raises(ValueError, match="does not model"):
        ops.get(fs, lookup(make_pfx(), store="Disallowed"))


def test_a_state_from_before_owners_were_recorded_decides_by_its_imported_flag(fs: WindowsFs) -> None:
    # No owner records on the host (a certificate imported by an earlier version of the resource).
    pfx = make_pfx()
    certstore.admin_import_pfx(fs.root, base64.b64decode(pfx), PASSWORD)
    kept = ops.remove(fs, {**lookup(pfx), "imported": False})
    assert kept.ok and kept.state["left_in_store"] is True and kept.state["found_in_store"] is True
    removed = ops.remove(fs, {**lookup(pfx), "imported": True})
    assert removed.ok and removed.state["ensure"] == "absent"
    # An update of such a state says the certificate is its own: it is not recorded as found.
    certstore.admin_import_pfx(fs.root, base64.b64decode(pfx), PASSWORD)
    assert ops.set_(fs, {**set_spec(pfx), "imported_by_state": True}).state["imported"] is True
    assert ops.remove(fs, {**lookup(pfx), "imported": True}).state["ensure"] == "absent"


def test_a_thumbprint_mismatch_leaves_no_key_file_behind(fs: WindowsFs) -> None:
    # C3 (review-owners2): Import with PersistKeySet has written the key when the thumbprint is compared; the
    # unfixed script stopped without deleting it, an orphaned file in MachineKeys.
    pfx = make_pfx()
    stores = certstore.CertStore(fs.root)
    written = stores.persist_key(certstore.open_pfx(base64.b64decode(pfx), PASSWORD))
    assert written is not None and fs.resolve(f"{certstore.KEY_FOLDERS[written[0]]}\\{written[1]}").is_file()
    stores.delete_persisted_key(written)
    result = ops.set_(fs, {**set_spec(pfx), "thumbprint": "00" * 20})
    assert not result.ok and result.error is not None and result.error["id"] == "ThumbprintMismatch"
    for folder in certstore.KEY_FOLDERS.values():
        target = fs.resolve(folder)
        assert not target.exists() or list(target.iterdir()) == [], f"a key file is left in {folder}"

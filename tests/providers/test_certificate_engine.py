"""Certificate through the real Pulumi CLI against the host under test (simulated unless configured).

Test PFX files are made here, at test time, with ``cryptography`` (``make_pfx``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import uuid
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pulumi
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12

from providers.certificate import Certificate
from providers.scripting.runner import ScriptRef, run_script
from providers.settings_file import SettingsFile
from providers.transport.connection import HostConnection
from tests.support.engine import EngineStack
from tests.support.hosts import Target

pytestmark = pytest.mark.engine

Engine = Callable[[Callable[[], None]], EngineStack]
PASSWORD = "Pfx-Test-Passw0rd"
# Accounts every Windows host has; SYSTEM and Administrators are never listed as readers (always kept).
READER_A = "NT AUTHORITY\\NETWORK SERVICE"
READER_B = "NT AUTHORITY\\LOCAL SERVICE"

# -- test PFX files -------------------------------------------------------------------------------

_LEGACY_SIGNATURES = {  # cryptography no longer signs with these; the test signs the TBS itself
    "sha1": (b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x05", hashes.SHA1()),
    "md5": (b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x04", hashes.MD5()),
}
_SHA256_RSA = b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0b"


@cache
def rsa_key(bits: int = 2048, index: int = 0) -> rsa.RSAPrivateKey:
    del index  # only makes distinct cached keys
    return rsa.generate_private_key(65537, bits)


def _der_length(size: int) -> bytes:
    if size < 0x80:
        return bytes([size])
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _resign(certificate: x509.Certificate, key: rsa.RSAPrivateKey, algorithm: str) -> x509.Certificate:
    """The same certificate signed with SHA-1 or MD5 (as an old PKI or `openssl -sha1` would)."""
    oid, digest = _LEGACY_SIGNATURES[algorithm]
    tbs = certificate.tbs_certificate_bytes.replace(_SHA256_RSA, oid)
    signature = key.sign(tbs, padding.PKCS1v15(), digest)
    algorithm_id = b"\x30\x0d\x06\x09" + oid + b"\x05\x00"
    bits = b"\x03" + _der_length(len(signature) + 1) + b"\x00" + signature
    body = tbs + algorithm_id + bits
    return x509.load_der_x509_certificate(b"\x30" + _der_length(len(body)) + body)


def make_certificate(
    key: CertificateIssuerPrivateKeyTypes,
    *,
    cn: str = "agent.contoso.test",
    signature: str = "sha256",
    valid_from_days: int = -1,
    valid_days: int = 365,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=valid_from_days))
        .not_valid_after(now + dt.timedelta(days=valid_from_days + valid_days))
    )
    certificate = builder.sign(key, hashes.SHA256())
    if signature != "sha256":
        assert isinstance(key, rsa.RSAPrivateKey)
        certificate = _resign(certificate, key, signature)
    return certificate


def make_pfx(
    *,
    password: str = PASSWORD,
    key: Any = None,
    certificate: x509.Certificate | None = None,
    with_key: bool = True,
    **certificate_options: Any,
) -> str:
    """A base64 PFX as a user passes it (`base64.b64encode(open('x.pfx','rb').read())`)."""
    key = key if key is not None else rsa_key()
    certificate = certificate or make_certificate(key, **certificate_options)
    data = pkcs12.serialize_key_and_certificates(
        b"test",
        key if with_key else None,
        certificate,
        None,
        serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption(),
    )
    return base64.b64encode(data).decode("ascii")


def pfx_thumbprint(pfx: str, password: str = PASSWORD) -> str:
    _key, certificate, others = pkcs12.load_key_and_certificates(base64.b64decode(pfx), password.encode())
    certificate = certificate or others[0]  # without a key, the certificate is listed among the others
    return hashlib.sha1(certificate.public_bytes(serialization.Encoding.DER)).hexdigest().upper()


# -- programs and host helpers --------------------------------------------------------------------


def secret_connection(target: Target) -> dict[str, Any]:
    return {**target.connection, "password": pulumi.Output.secret(target.connection["password"])}


def cert_program(target: Target, desired: dict[str, Any]) -> Callable[[], None]:
    """One Certificate (inputs read from ``desired`` at each run); with ``consumer_path``, a file that
    references its thumbprint as an IIS binding would."""

    def program() -> None:
        options = {k: v for k, v in desired.items() if k not in ("consumer_path", "name")}
        certificate = Certificate(desired.get("name", "cert"), connection=secret_connection(target), **options)
        if "consumer_path" in desired:
            SettingsFile(
                "binding",
                connection=secret_connection(target),
                path=desired["consumer_path"],
                content=certificate.thumbprint.apply(lambda t: f"https *:443 certificate {t}\n"),
            )
        for key in ("thumbprint", "subject", "not_after", "has_private_key", "key_storage", "imported"):
            pulumi.export(key, getattr(certificate, key))

    return program


def host_connection(target: Target) -> HostConnection:
    return HostConnection.model_validate(target.connection)


ADMIN_OWNER = "test-administrator"  # the owner id of what the tests do by hand through the scripts


def host_state(target: Target, thumb: str, store_name: str = "My") -> dict[str, Any]:
    """What get reports to a resource that owns nothing and declares the tests' two readers: every reader on
    the key file that no owner declared, and the two readers wherever they come from."""
    payload = {
        "thumbprint": thumb,
        "store_location": "LocalMachine",
        "store_name": store_name,
        "private_key_readers": [READER_A, READER_B],
        "owner": "",
    }
    return run_script(host_connection(target), ScriptRef("providers.certificate", "get"), payload, resource="t").state


def all_readers(target: Target, thumb: str) -> list[str]:
    """Every reader account on the key file, whoever declared it."""
    assert target.state_dir is not None
    from devhost import certstore

    stores = certstore.CertStore(target.state_dir)
    entry = stores.find("LocalMachine", "My", thumb)
    assert entry is not None
    return sorted(name for _sid, name in stores.key_readers(entry))


def remove_from_host(target: Target, thumb: str, store_name: str = "My") -> None:
    """What an administrator does with Remove-Item Cert:\\LocalMachine\\My\\<thumbprint> -DeleteKey."""
    if target.simulated:
        from devhost import certstore

        assert target.state_dir is not None
        certstore.admin_remove(target.state_dir, thumb, store=store_name)
        return
    payload = {
        "thumbprint": thumb,
        "store_location": "LocalMachine",
        "store_name": store_name,
        "private_key_readers": [],
        "imported": True,
        "owner": ADMIN_OWNER,
    }
    run_script(host_connection(target), ScriptRef("providers.certificate", "remove"), payload, resource="t")


def import_on_host(target: Target, pfx: str) -> None:
    """A certificate someone imported before this stack existed."""
    if target.simulated:
        from devhost import certstore

        assert target.state_dir is not None
        certstore.admin_import_pfx(target.state_dir, base64.b64decode(pfx), PASSWORD)
        return
    payload = {
        "thumbprint": pfx_thumbprint(pfx),
        "store_location": "LocalMachine",
        "store_name": "My",
        "private_key_readers": [],
        "pfx": pfx,
        "pfx_password": PASSWORD,
        "exportable": False,
        "owner": ADMIN_OWNER,
        "imported_by_state": False,
        "previous_owner": "",
    }
    run_script(host_connection(target), ScriptRef("providers.certificate", "set"), payload, resource="t")


def key_file_exists(target: Target, key_file: str) -> bool:
    return target.windows_file(key_file).is_file()


# -- lifecycle ------------------------------------------------------------------------------------


def test_create_noop_update_drift_and_destroy(target: Target, engine: Engine) -> None:
    pfx = make_pfx(cn=f"agent-{uuid.uuid4().hex[:6]}.contoso.test")
    thumb = pfx_thumbprint(pfx)
    desired: dict[str, Any] = {"pfx": pfx, "pfx_password": PASSWORD, "private_key_readers": [READER_A]}
    stack = engine(cert_program(target, desired))

    created = stack.up()
    assert created.ok, created.output
    assert created.summary.get("create") == 2
    outputs = stack.outputs()
    assert outputs["thumbprint"] == thumb
    assert outputs["subject"].startswith("CN=agent-") and outputs["has_private_key"] is True
    assert outputs["key_storage"] == "CAPI" and outputs["imported"] is True  # OpenSSL PFX: legacy CSP
    assert dt.datetime.fromisoformat(outputs["not_after"]) > dt.datetime.now(dt.UTC)
    state = host_state(target, thumb)
    assert state["exportable"] is False
    assert [r["name"] for r in state["private_key_readers"]] == [READER_A]

    mark = target.journal_mark() if target.simulated else 0
    again = stack.up()
    assert again.ok and again.summary == {"same": 2}, again.output
    if target.simulated:
        assert target.operations_since(mark) == [], "a no-op up must not talk to the host"

    desired["private_key_readers"] = [READER_B]
    preview = stack.preview(diff=True)
    assert preview.ok and "private_key_readers" in preview.stdout, preview.output
    assert [r["name"] for r in host_state(target, thumb)["private_key_readers"]] == [READER_A], "preview applied"
    updated = stack.up()
    assert updated.ok and updated.summary.get("update") == 1, updated.output
    assert [r["name"] for r in host_state(target, thumb)["private_key_readers"]] == [READER_B]

    # An administrator deletes the certificate: refresh finds it gone, up imports it again.
    remove_from_host(target, thumb)
    drift = stack.refresh(expect_no_changes=True)
    assert not drift.ok and "cert" in drift.output
    repaired = stack.up()
    assert repaired.ok and repaired.summary.get("create") == 1, repaired.output
    assert stack.refresh(expect_no_changes=True).ok

    # exportable: the same store entry, so the old one is removed before the new import.
    desired["exportable"] = True
    replaced = stack.up()
    assert replaced.ok and replaced.summary.get("replace") == 1, replaced.output
    assert host_state(target, thumb)["exportable"] is True
    key_file = host_state(target, thumb)["key_file"]

    destroyed = stack.destroy()
    assert destroyed.ok, destroyed.output
    assert host_state(target, thumb)["ensure"] == "absent"
    if target.simulated:
        assert not key_file_exists(target, key_file), "destroy must delete the private key file too"


def test_key_acl_changed_out_of_band_is_drift_on_private_key_readers(simulated: Target, engine: Engine) -> None:
    from devhost import certstore

    assert simulated.state_dir is not None
    pfx = make_pfx(key=ec.generate_private_key(ec.SECP256R1()))
    thumb = pfx_thumbprint(pfx)
    stack = engine(cert_program(simulated, {"pfx": pfx, "pfx_password": PASSWORD, "private_key_readers": [READER_A]}))
    assert stack.up().ok
    assert stack.outputs()["key_storage"] == "CNG"  # ECDSA keys exist only in CNG
    key_file = host_state(simulated, thumb)["key_file"]
    assert key_file.startswith("C:\\ProgramData\\Microsoft\\Crypto\\Keys\\") and key_file_exists(simulated, key_file)

    certstore.admin_revoke_key_access(simulated.state_dir, thumb, READER_A)
    certstore.admin_grant_key_read(simulated.state_dir, thumb, "BUILTIN\\Users")
    drift = stack.refresh(expect_no_changes=True)
    assert not drift.ok and "cert" in drift.output, drift.output
    assert stack.refresh().ok  # accept what the host has, to see which property drifted
    preview = stack.preview(diff=True)
    assert preview.ok and "private_key_readers" in preview.stdout and "BUILTIN" in preview.stdout, preview.stdout
    repaired = stack.up()
    assert repaired.ok and repaired.summary.get("update") == 1, repaired.output
    assert [r["name"] for r in host_state(simulated, thumb)["private_key_readers"]] == [READER_A]
    assert stack.refresh(expect_no_changes=True).ok
    assert stack.destroy().ok and not key_file_exists(simulated, key_file)


# A PFX whose RSA key bag names the Microsoft Software Key Storage Provider (made with `openssl pkcs12 -CSP`, see
# tests/providers/data/README.md): cryptography cannot write that attribute.
CNG_FLAGGED_PFX = Path(__file__).parent / "data" / "cng-flagged-rsa-2048.pfx"


def test_an_rsa_key_flagged_for_cng_is_found_and_managed_in_crypto_keys(target: Target, engine: Engine) -> None:
    # Review B1: Windows imports an RSA key into the provider its PFX names, so this one is a CNG key with its file
    # in Crypto\Keys, where an unflagged one would be in RSA\MachineKeys; the readers are set on that file.
    pfx = base64.b64encode(CNG_FLAGGED_PFX.read_bytes()).decode("ascii")
    thumb = pfx_thumbprint(pfx)
    stack = engine(cert_program(target, {"pfx": pfx, "pfx_password": PASSWORD, "private_key_readers": [READER_A]}))
    created = stack.up()
    assert created.ok, created.output
    assert stack.outputs()["key_storage"] == "CNG"
    state = host_state(target, thumb)
    key_file = state["key_file"]
    assert key_file.startswith("C:\\ProgramData\\Microsoft\\Crypto\\Keys\\") and key_file_exists(target, key_file)
    assert [r["name"] for r in state["private_key_readers"]] == [READER_A]
    assert stack.refresh(expect_no_changes=True).ok
    assert stack.destroy().ok and not key_file_exists(target, key_file)


def test_new_pfx_replaces_before_deleting_and_moves_the_binding(simulated: Target, engine: Engine) -> None:
    consumer = f"C:\\UsercubeIacTests\\{uuid.uuid4().hex[:8]}\\binding.txt"
    old_pfx, new_pfx = make_pfx(cn="old.contoso.test"), make_pfx(key=rsa_key(2048, 1), cn="new.contoso.test")
    old, new = pfx_thumbprint(old_pfx), pfx_thumbprint(new_pfx)
    desired = {"pfx": old_pfx, "pfx_password": PASSWORD, "consumer_path": consumer}
    stack = engine(cert_program(simulated, desired))
    assert stack.up().ok
    assert simulated.windows_file(consumer).read_text() == f"https *:443 certificate {old}\n"

    # The same certificate exported again with another password: an update, no new store entry.
    desired["pfx"] = make_pfx(password="another-one", certificate=_certificate_of(old_pfx))
    desired["pfx_password"] = "another-one"
    same = stack.up()
    assert same.ok and same.summary.get("update") == 1 and "replace" not in same.summary, same.output
    assert stack.outputs()["thumbprint"] == old

    desired.update(pfx=new_pfx, pfx_password=PASSWORD)
    preview = stack.preview(diff=True)
    assert preview.ok and "+-" in preview.stdout, preview.output
    mark = simulated.journal_mark()
    replaced = stack.up()
    assert replaced.ok and replaced.summary.get("replace") == 1, replaced.output
    ops = [op for op in simulated.operations_since(mark) if op.endswith(("/set", "/remove"))]
    assert ops == ["certificate/set", "settings_file/set", "certificate/remove"], ops
    assert simulated.windows_file(consumer).read_text() == f"https *:443 certificate {new}\n"
    assert host_state(simulated, old)["ensure"] == "absent" and host_state(simulated, new)["ensure"] == "present"
    assert stack.outputs()["thumbprint"] == new
    assert stack.destroy().ok


def _certificate_of(pfx: str) -> x509.Certificate:
    _key, certificate, _ = pkcs12.load_key_and_certificates(base64.b64decode(pfx), PASSWORD.encode())
    assert certificate is not None
    return certificate


def test_certificate_already_in_the_store_is_adopted_and_left_on_destroy(target: Target, engine: Engine) -> None:
    pfx = make_pfx(cn=f"existing-{uuid.uuid4().hex[:6]}.contoso.test")
    thumb = pfx_thumbprint(pfx)
    import_on_host(target, pfx)
    try:
        stack = engine(cert_program(target, {"pfx": pfx, "pfx_password": PASSWORD}))
        adopted = stack.up()
        assert adopted.ok, adopted.output
        assert stack.outputs()["imported"] is False
        destroyed = stack.destroy()
        assert destroyed.ok, destroyed.output
        assert host_state(target, thumb)["ensure"] == "present", "not ours: destroy must leave it"
        assert "left in place" in destroyed.output, destroyed.output
    finally:
        remove_from_host(target, thumb)


# -- ownership, recorded on the host -----------------------------------------------------------------


def lose_the_next_reply(simulated: Target) -> None:
    """The next WinRM Receive (the one carrying the operation's answer) is lost after the host acted."""
    simulated.set_knobs(faults=[{"kind": "drop", "on": "Receive", "when": "after"}])


def test_a_reply_lost_after_the_import_keeps_the_certificate_owned(simulated: Target, engine: Engine) -> None:
    pfx = make_pfx(cn=f"lost-{uuid.uuid4().hex[:6]}.contoso.test")
    thumb = pfx_thumbprint(pfx)
    stack = engine(cert_program(simulated, {"pfx": pfx, "pfx_password": PASSWORD, "private_key_readers": [READER_A]}))
    mark = simulated.journal_mark()
    lose_the_next_reply(simulated)
    try:
        created = stack.up()
    finally:
        simulated.set_knobs()
    assert created.ok, created.output
    assert any(e["kind"] == "fault" for e in simulated.journal_since(mark)), "the reply was not lost"
    assert simulated.operations_since(mark).count("certificate/set") == 2, "the set was not retried"
    assert stack.outputs()["imported"] is True, "the retry found the certificate it had imported itself"
    key_file = host_state(simulated, thumb)["key_file"]
    destroyed = stack.destroy()
    assert destroyed.ok, destroyed.output
    assert host_state(simulated, thumb)["ensure"] == "absent"
    assert not key_file_exists(simulated, key_file), "the private key stays behind"


def test_two_stacks_share_a_certificate_and_its_key_readers(simulated: Target, engine: Engine) -> None:
    pfx = make_pfx(cn=f"*.shared-{uuid.uuid4().hex[:6]}.contoso.test")
    thumb = pfx_thumbprint(pfx)
    first = engine(cert_program(simulated, {"pfx": pfx, "pfx_password": PASSWORD, "private_key_readers": [READER_A]}))
    second = engine(cert_program(simulated, {"pfx": pfx, "pfx_password": PASSWORD, "private_key_readers": [READER_B]}))
    assert first.up().ok
    assert second.up().ok
    assert all_readers(simulated, thumb) == sorted([READER_A, READER_B])
    assert first.outputs()["imported"] is True and second.outputs()["imported"] is True
    for _round in range(3):  # each one's own up leaves the other's reader, and neither sees drift
        for stack in (first, second):
            again = stack.up()
            assert again.ok, again.output
            assert first.refresh(expect_no_changes=True).ok and second.refresh(expect_no_changes=True).ok
        assert all_readers(simulated, thumb) == sorted([READER_A, READER_B])

    destroyed = first.destroy()
    assert destroyed.ok, destroyed.output
    assert "1 other owner(s) still hold it" in destroyed.output, destroyed.output
    state = host_state(simulated, thumb)
    assert state["ensure"] == "present", "the other stack still holds the certificate"
    assert all_readers(simulated, thumb) == [READER_B], "the first stack's reader goes, the other's stays"
    assert key_file_exists(simulated, state["key_file"])
    assert second.refresh(expect_no_changes=True).ok
    assert second.destroy().ok
    assert host_state(simulated, thumb)["ensure"] == "absent", "the last owner removes it"
    assert not key_file_exists(simulated, state["key_file"])


def test_a_refused_share_leaves_no_owner_behind(simulated: Target, engine: Engine) -> None:
    pfx = make_pfx(cn=f"refused-{uuid.uuid4().hex[:6]}.contoso.test")
    thumb = pfx_thumbprint(pfx)
    first = engine(cert_program(simulated, {"pfx": pfx, "pfx_password": PASSWORD}))
    second = engine(cert_program(simulated, {"pfx": pfx, "pfx_password": PASSWORD, "exportable": True}))
    assert first.up().ok
    refused = second.up()
    assert not refused.ok and "[ExportPolicyDiffers]" in refused.output, refused.output
    assert second.destroy().ok  # nothing was created
    destroyed = first.destroy()
    assert destroyed.ok, destroyed.output
    assert host_state(simulated, thumb)["ensure"] == "absent", "the refused stack is no owner of it"


def test_two_agents_of_one_stack_share_a_certificate(simulated: Target, engine: Engine) -> None:
    pfx = make_pfx(cn=f"*.agents-{uuid.uuid4().hex[:6]}.contoso.test")
    thumb = pfx_thumbprint(pfx)
    agents = {"zone-a": [READER_A], "zone-b": [READER_B]}

    def program() -> None:
        for name, readers in agents.items():
            Certificate(
                f"{name}-ssl-cert",
                connection=secret_connection(simulated),
                pfx=pfx,
                pfx_password=PASSWORD,
                private_key_readers=readers,
            )

    stack = engine(program)
    assert stack.up().ok
    assert all_readers(simulated, thumb) == sorted([READER_A, READER_B])
    assert stack.refresh(expect_no_changes=True).ok
    del agents["zone-b"]  # one agent leaves the host
    removed = stack.up()
    assert removed.ok and removed.summary.get("delete") == 1, removed.output
    assert host_state(simulated, thumb)["ensure"] == "present", "the other agent still uses it"
    assert all_readers(simulated, thumb) == [READER_A]
    assert stack.destroy().ok
    assert host_state(simulated, thumb)["ensure"] == "absent"


def test_a_renamed_resource_moves_its_owner_record(simulated: Target, engine: Engine) -> None:
    pfx = make_pfx(cn=f"renamed-{uuid.uuid4().hex[:6]}.contoso.test")
    thumb = pfx_thumbprint(pfx)
    names = {"name": "cert"}

    def program() -> None:
        aliases = [pulumi.Alias(name="cert")] if names["name"] != "cert" else None
        Certificate(
            names["name"],
            connection=secret_connection(simulated),
            pfx=pfx,
            pfx_password=PASSWORD,
            opts=pulumi.ResourceOptions(aliases=aliases),
        )

    stack = engine(program)
    assert stack.up().ok
    names["name"] = "agent-cert"  # the same certificate resource, under its new name: a new owner id
    moved = stack.up()
    assert moved.ok and moved.summary.get("update") == 1, moved.output
    destroyed = stack.destroy()
    assert destroyed.ok, destroyed.output
    assert host_state(simulated, thumb)["ensure"] == "absent", "its old id must not stay behind as another owner"


def test_a_certificate_that_http_sys_presents_stays(simulated: Target, engine: Engine) -> None:
    from devhost import iis

    assert simulated.state_dir is not None
    pfx = make_pfx(cn=f"bound-{uuid.uuid4().hex[:6]}.contoso.test")
    thumb = pfx_thumbprint(pfx)
    stack = engine(cert_program(simulated, {"pfx": pfx, "pfx_password": PASSWORD}))
    assert stack.up().ok
    endpoint = f"0.0.0.0:{20000 + int(thumb[:4], 16) % 40000}"
    iis.admin_bind_sslcert(simulated.state_dir, endpoint, thumb)  # netsh http add sslcert, by someone else
    try:
        destroyed = stack.destroy()
        assert destroyed.ok, destroyed.output
        assert f"HTTP.sys presents it on {endpoint}" in destroyed.output, destroyed.output
        assert host_state(simulated, thumb)["ensure"] == "present", "its binding would point at nothing"
    finally:
        iis.admin_delete_sslcert(simulated.state_dir, endpoint)
        remove_from_host(simulated, thumb)


def test_readers_a_found_certificate_had_stay(simulated: Target, engine: Engine) -> None:
    from devhost import certstore

    assert simulated.state_dir is not None
    pfx = make_pfx(cn=f"found-{uuid.uuid4().hex[:6]}.contoso.test")
    thumb = pfx_thumbprint(pfx)
    import_on_host(simulated, pfx)
    certstore.admin_grant_key_read(simulated.state_dir, thumb, READER_B)  # granted by whoever imported it
    try:
        stack = engine(
            cert_program(simulated, {"pfx": pfx, "pfx_password": PASSWORD, "private_key_readers": [READER_A]})
        )
        assert stack.up().ok
        assert stack.outputs()["imported"] is False
        assert all_readers(simulated, thumb) == sorted([READER_A, READER_B])
        assert stack.refresh(expect_no_changes=True).ok, "the reader it had is not this stack's drift"
        destroyed = stack.destroy()
        assert destroyed.ok and "it was in the store before any owner imported it" in destroyed.output
        assert all_readers(simulated, thumb) == [READER_B], "only the reader the stack added goes"
    finally:
        remove_from_host(simulated, thumb)


def test_unknown_reader_fails_on_the_host_naming_the_property(target: Target, engine: Engine) -> None:
    pfx = make_pfx(cn=f"reader-{uuid.uuid4().hex[:6]}.contoso.test")
    desired = {"pfx": pfx, "pfx_password": PASSWORD, "private_key_readers": ["CONTOSO\\no-such-account"]}
    stack = engine(cert_program(target, desired))
    run = stack.up()
    assert not run.ok
    assert "[IdentityNotMapped]" in run.output and "private_key_readers" in run.output
    assert "no-such-account" in run.output
    stack.destroy()
    remove_from_host(target, pfx_thumbprint(pfx))  # the import itself succeeded before the reader failed


# -- secrets --------------------------------------------------------------------------------------


def test_pfx_and_password_never_leave_the_set_script_input(simulated: Target, engine: Engine) -> None:
    password = f"Pfx-{uuid.uuid4().hex}"
    pfx = make_pfx(password=password, cn="secret.contoso.test")
    desired: dict[str, Any] = {"pfx": pfx, "pfx_password": password}
    mark = simulated.journal_mark()
    stack = engine(cert_program(simulated, desired))
    runs = [stack.up(), stack.preview(diff=True), stack.refresh()]
    desired["private_key_readers"] = [READER_A]
    runs += [stack.preview(diff=True), stack.up(), stack.destroy()]
    for run in runs:
        assert run.ok, run.output
        assert password not in run.output and pfx[:64] not in run.output
    for text in (stack.export(), stack.raw_state()):
        assert password not in text and pfx[:64] not in text
    journal = simulated.journal_since(mark)
    for entry in journal:
        if entry["kind"] == "command":
            assert password not in entry["command_line"] and pfx[:64] not in entry["command_line"]
    requests = simulated.requests_since(mark)
    assert requests, "the host received the operations"
    for request in requests:
        op = request["script"].split("\n", 1)[0]
        carries = password in request["input"] or pfx[:64] in request["input"]
        assert carries == (op == "# op: certificate/set"), f"{op} must {'' if carries else 'not '}get the PFX"


# -- refused before any host call -----------------------------------------------------------------


def _bad_inputs() -> dict[str, tuple[dict[str, Any], str, str]]:
    good = make_pfx()
    return {
        "wrong-password": (
            {"pfx": good, "pfx_password": "Wr0ng-Pfx-Passw0rd"},
            "pfx_password",
            "network password is not correct",
        ),
        "not-base64": ({"pfx": "not base64 !!", "pfx_password": PASSWORD}, "pfx", "not base64"),
        "not-a-pfx": ({"pfx": base64.b64encode(b"hello").decode(), "pfx_password": PASSWORD}, "pfx", "not a PFX"),
        "no-key": ({"pfx": make_pfx(with_key=False), "pfx_password": PASSWORD}, "pfx", "no private key"),
        "rsa-1024": ({"pfx": make_pfx(key=rsa_key(1024)), "pfx_password": PASSWORD}, "pfx", "rsa:2048"),
        "sha1": ({"pfx": make_pfx(signature="sha1"), "pfx_password": PASSWORD}, "pfx", "SHA1"),
        "md5": ({"pfx": make_pfx(signature="md5"), "pfx_password": PASSWORD}, "pfx", "MD5"),
        "expired": ({"pfx": make_pfx(valid_from_days=-30, valid_days=10), "pfx_password": PASSWORD}, "pfx", "expired"),
        "not-yet-valid": ({"pfx": make_pfx(valid_from_days=2), "pfx_password": PASSWORD}, "pfx", "not valid before"),
        "dsa": ({"pfx": make_pfx(key=dsa.generate_private_key(2048)), "pfx_password": PASSWORD}, "pfx", "DSA"),
        "bad-reader": (
            {"pfx": good, "pfx_password": PASSWORD, "private_key_readers": ["a\\b\\c"]},
            "private_key_readers",
            "not an account",
        ),
        "store": ({"pfx": good, "pfx_password": PASSWORD, "store_name": "Personal"}, "store_name", "'My'"),
        "location": (
            {"pfx": good, "pfx_password": PASSWORD, "store_location": "CurrentUser"},
            "store_location",
            "LocalMachine",
        ),
    }


BAD_INPUTS = _bad_inputs()


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_refused_before_any_host_call(simulated: Target, engine: Engine, case: str) -> None:
    desired, prop, phrase = BAD_INPUTS[case]
    mark = simulated.journal_mark()
    run = engine(cert_program(simulated, desired)).up()
    assert not run.ok
    assert prop in run.output and phrase in run.output, run.output
    assert "fix" in run.output.lower() or "give" in run.output.lower() or "use" in run.output.lower()
    assert simulated.journal_since(mark) == []
    # The engine prints a failing property's value; secrets must not be among them.
    assert desired["pfx"][:64] not in run.output and "Wr0ng-Pfx-Passw0rd" not in run.output

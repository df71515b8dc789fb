"""SIMULATOR: the Windows PowerShell 5.1 review's findings (B1, B3, B4, W2, W4, R4, R5, R6, R12) as simulator
behaviour: each unfixed script construct is refused or fails, the fixed one passes (no WinRM)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from devhost import accounts, certstore, features, iis, lsa, ps51, scm, win32_files
from devhost.fs import WindowsFs
from devhost.ops import SCRIPT_FACTS, certificate, iis_app_pool, settings_file, windows_feature, windows_service
from providers.scripting.runner import ScriptRef, render_script
from tests.devhost.test_iis_model import pool_spec
from tests.devhost.test_scm_model import place_program, spec_of
from tests.providers.test_certificate_engine import PASSWORD, make_pfx, pfx_thumbprint
from tools.bless_scripts import operation_scripts


def script(resource: str, operation: str) -> str:
    return render_script(ScriptRef(f"providers.{resource}", operation))


def refused(op: str, text: str) -> list[str]:
    return ps51.check_script(SCRIPT_FACTS, op, text)


def test_every_blessed_script_has_the_constructs_its_model_assumes() -> None:
    # Every operation script, as tools/bless_scripts.py checks them (B2, W1, W3, W5, R10 and R11 are held by
    # the facts of devhost/ops/iis_common.py, iis_site.py and file_acl.py; their refusals are tested next to
    # the models' tests in tests/devhost/test_iis_model.py and tests/providers/test_file_acl_engine.py).
    for ref in operation_scripts():
        assert refused(ref.operation, render_script(ref)) == [], ref.operation


# -- B1: a PFX without a CSP attribute lands in CAPI, and .NET 4.6+ still hands out an RSACng ----------

OLD_B1 = (
    "        $info.key_storage = 'CNG'\n"
    "        $info.key_file = Join-Path $env:ProgramData ('Microsoft\\Crypto\\Keys\\' + $key.Key.UniqueName)\n"
)


def cert_spec(pfx: str, readers: list[str] | None = None) -> dict[str, object]:
    return {
        "thumbprint": pfx_thumbprint(pfx),
        "store_location": "LocalMachine",
        "store_name": "My",
        "private_key_readers": readers or [],
        "pfx": pfx,
        "pfx_password": PASSWORD,
        "exportable": False,
        "owner": "test-stack/cert",
        "imported_by_state": False,
        "previous_owner": "",
    }


def test_b1_a_cryptography_pfx_key_is_capi_in_machinekeys_but_opens_as_rsacng(tmp_path: Path) -> None:
    fs = WindowsFs(tmp_path)
    pfx = make_pfx(cn="agent.contoso.test")
    result = certificate.set_(fs, cert_spec(pfx, ["NT AUTHORITY\\NETWORK SERVICE"]))
    assert result.ok, result.error
    stores = certstore.CertStore(tmp_path)
    entry = stores.find("LocalMachine", "My", pfx_thumbprint(pfx))
    assert entry is not None
    handle = stores.open_private_key(entry)
    assert handle is not None and handle.dotnet_type == "RSACng", ".NET Framework 4.6+ opens CAPI keys through CNG"
    # The unfixed script's path, Crypto\Keys\<UniqueName>, does not exist: Get-KeyReaders would throw.
    assert not fs.resolve(f"{certstore.KEY_FOLDERS['CNG']}\\{handle.unique_name}").exists()
    assert result.state["key_storage"] == "CAPI"
    assert result.state["key_file"] == f"{certstore.KEY_FOLDERS['CAPI']}\\{handle.unique_name}"
    assert [r["name"] for r in result.state["private_key_readers"]] == ["NT AUTHORITY\\NETWORK SERVICE"]
    old = script("certificate", "get").replace(
        "        $found = Find-MachineKeyFile $Certificate.Thumbprint $key.Key.UniqueName\n", OLD_B1
    )
    assert refused("certificate/get", old), "the model refuses the script that only looks in Crypto\\Keys"


def test_b1_an_ecdsa_key_is_cng_in_crypto_keys(tmp_path: Path) -> None:
    fs = WindowsFs(tmp_path)
    pfx = make_pfx(cn="ec.contoso.test", key=ec.generate_private_key(ec.SECP256R1()))
    result = certificate.set_(fs, cert_spec(pfx))
    assert result.ok and result.state["key_storage"] == "CNG"
    assert result.state["key_file"].startswith(certstore.KEY_FOLDERS["CNG"] + "\\")


def test_b1_a_unique_name_in_neither_folder_is_not_a_machine_key(tmp_path: Path) -> None:
    assert certstore.CertStore(tmp_path).machine_key_file("0123_not-there") is None


# -- R12: the PFX's intermediates reach LocalMachine\\CA ------------------------------------------------


def _issued(subject: str, issuer: str, key: rsa.RSAPrivateKey, issuer_key: rsa.RSAPrivateKey) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(issuer_key, hashes.SHA256())
    )


def test_r12_intermediates_are_added_to_the_ca_store_and_the_root_is_not(tmp_path: Path) -> None:
    root_key, ca_key, leaf_key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3))
    root = _issued("Contoso Root", "Contoso Root", root_key, root_key)
    intermediate = _issued("Contoso Issuing CA", "Contoso Root", ca_key, root_key)
    leaf = _issued("agent.contoso.test", "Contoso Issuing CA", leaf_key, ca_key)
    data = pkcs12.serialize_key_and_certificates(
        b"agent", leaf_key, leaf, [intermediate, root], serialization.BestAvailableEncryption(PASSWORD.encode())
    )
    pfx = base64.b64encode(data).decode("ascii")
    result = certificate.set_(WindowsFs(tmp_path), cert_spec(pfx))
    assert result.ok, result.error
    stores = certstore.CertStore(tmp_path)
    thumb = hashlib.sha1(intermediate.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    assert [e.thumbprint for e in stores.entries("LocalMachine", "CA")] == [thumb]
    assert stores.entries("LocalMachine", "Root") == []
    assert {"property": "intermediate_certificates", "before": None, "after": [thumb]} in result.changes
    old = script("certificate", "set").replace("$caStore.Add($intermediate)", "")
    assert refused("certificate/set", old), "X509Certificate2(bytes) alone keeps only the leaf"


# -- W2: an ACE with GENERIC_READ only is a reader --------------------------------------------------


def test_w2_a_generic_read_entry_is_reported_and_removed(tmp_path: Path) -> None:
    fs = WindowsFs(tmp_path)
    pfx = make_pfx(cn="generic.contoso.test")
    assert certificate.set_(fs, cert_spec(pfx)).ok
    certstore.admin_grant_key_generic_read(tmp_path, pfx_thumbprint(pfx), "NT AUTHORITY\\NETWORK SERVICE")
    set_only = ("pfx", "pfx_password", "exportable", "imported_by_state", "previous_owner")
    got = certificate.get(fs, {k: v for k, v in cert_spec(pfx).items() if k not in set_only})
    assert [r["name"] for r in got.state["private_key_readers"]] == ["NT AUTHORITY\\NETWORK SERVICE"]
    assert 0x80000000 & 0x20089 != 0x20089, "the unfixed raw-mask test misses it"
    repaired = certificate.set_(fs, cert_spec(pfx))
    assert repaired.ok and repaired.state["private_key_readers"] == []
    old = script("certificate", "get").replace(
        "ConvertTo-ComparableMask ([long][int]$rule.FileSystemRights)", "([long][int]$rule.FileSystemRights)"
    )
    assert refused("certificate/get", old)


# -- B3 / R4: settings files ------------------------------------------------------------------------


def settings_spec(path: str, content: str, keep_backup: bool = False) -> dict[str, object]:
    return {"path": path, "content": content, "encoding": "utf-8", "keep_backup": keep_backup, "readers": None}


def test_b3_an_empty_file_can_be_written(tmp_path: Path) -> None:
    fs = WindowsFs(tmp_path)
    path = "C:\\agent\\appsettings.json"
    assert settings_file.set_(fs, settings_spec(path, "{}")).ok
    emptied = settings_file.set_(fs, settings_spec(path, ""))
    assert emptied.ok and emptied.state["size"] == 0 and fs.resolve(path).read_bytes() == b""
    assert settings_file.set_(fs, settings_spec(path, "")).changed is False
    # The unfixed `return <byte[]>`: PowerShell unrolls it, an empty array becomes $null.
    assert ps51.function_output(b"", unary_comma=False) is None
    assert ps51.function_output(b"ab", unary_comma=False) == [97, 98], "an object[], not a byte[]"
    old = script("settings_file", "set").replace("return , $bytes", "return $bytes")
    assert refused("settings_file/set", old)


def faults(tmp_path: Path, *codes: int) -> None:
    (tmp_path / "_sim").mkdir(exist_ok=True)
    (tmp_path / "_sim" / win32_files.REPLACE_FAULTS).write_text(json.dumps(list(codes)))


@pytest.mark.parametrize(
    ("codes", "keep_backup"), [((1176,), False), ((1177,), True), ((1177,), False), ((32, 5), False)]
)
def test_r4_the_file_is_never_lost_whatever_replacefile_does(
    tmp_path: Path, codes: tuple[int, ...], keep_backup: bool
) -> None:
    fs = WindowsFs(tmp_path)
    path = "C:\\agent\\appsettings.json"
    assert settings_file.set_(fs, settings_spec(path, "old", keep_backup)).ok
    faults(tmp_path, *codes)
    result = settings_file.set_(fs, settings_spec(path, "new", keep_backup))
    assert result.ok, result.error
    assert fs.resolve(path).read_text() == "new"
    assert not list(fs.resolve(path).parent.glob(".*.tmp")), "the temporary file is gone once the target is in place"


def test_r4_replacefile_1176_without_backup_leaves_only_the_temporary_file(tmp_path: Path) -> None:
    """What the unfixed script's finally then deleted: the only copy of the content."""
    fs = WindowsFs(tmp_path)
    target, source = fs.resolve("C:\\a\\f.json"), fs.resolve("C:\\a\\.f.json.1.tmp")
    target.parent.mkdir(parents=True)
    target.write_text("old")
    source.write_text("new")
    faults(tmp_path, 1176)
    with pytest.raises(win32_files.ReplaceFileError):
        win32_files.replace_file(fs, source, target, None)
    assert not target.exists() and source.read_text() == "new"
    old = script("settings_file", "set").replace(
        "if ((Test-Path -LiteralPath $temporary) -and (Test-Path -LiteralPath $path -PathType Leaf))",
        "if (Test-Path -LiteralPath $temporary)",
    )
    assert refused("settings_file/set", old)


def test_r4_a_lasting_failure_keeps_the_old_file(tmp_path: Path) -> None:
    fs = WindowsFs(tmp_path)
    path = "C:\\agent\\appsettings.json"
    assert settings_file.set_(fs, settings_spec(path, "old")).ok
    faults(tmp_path, 1175, 1175, 1175, 1175, 1175)
    result = settings_file.set_(fs, settings_spec(path, "new"))
    assert (
        not result.ok
        and result.error is not None
        and "Unable to remove the file to be replaced" in result.error["message"]
    )
    assert fs.resolve(path).read_text() == "old"


# -- B4 / R5: sc.exe under Windows PowerShell 5.1 ------------------------------------------------------


def test_b4_no_failure_actions_reach_sc_as_an_empty_argument(tmp_path: Path) -> None:
    place_program(tmp_path)
    fs = WindowsFs(tmp_path)
    assert windows_service.set_(fs, spec_of()).ok
    with_actions = scm.get(tmp_path, "UsercubeAgent")
    assert with_actions is not None and with_actions.failure_actions["actions"]
    cleared = windows_service.set_(fs, spec_of(failure_actions={"actions": [], "reset_period_seconds": 0}))
    assert cleared.ok, cleared.error
    assert cleared.state["failure_actions"] == {"actions": [], "reset_period_seconds": 0}
    # The unfixed script passed '' : 5.1 drops it, sc.exe sees `actions=` without a value.
    argv = ps51.native_argv(["failure", "UsercubeAgent", "reset=", "0", "actions=", ""])
    assert argv == ["failure", "UsercubeAgent", "reset=", "0", "actions="]
    code, stdout, _ = scm.sc_exe(tmp_path, argv)
    assert code == scm.SC_USAGE_EXIT and "USAGE" in stdout
    assert ps51.native_argv(['""']) == [""]
    old = script("windows_service", "set").replace("if ($text -eq '') { return '\"\"' }\n", "")
    assert refused("windows_service/set", old)


def test_r5_native_stderr_is_terminating_only_under_stop() -> None:
    with pytest.raises(ps51.NativeCommandError, match="OpenSCManager"):
        ps51.native_call_output("", "[SC] OpenSCManager FAILED 5:\r\n", eap="Stop")
    assert "FAILED 5" in ps51.native_call_output("", "[SC] OpenSCManager FAILED 5:\r\n", eap="Continue")
    old = script("windows_service", "set").replace(
        "    $ErrorActionPreference = 'Continue'\n    $output", "    $output"
    )
    assert refused("windows_service/set", old)


# -- R6: "Log on as a service" ----------------------------------------------------------------------


def test_r6_a_custom_account_is_granted_log_on_as_a_service_before_the_start(tmp_path: Path) -> None:
    place_program(tmp_path)
    account = accounts.add_account(tmp_path, "CONTOSO\\svc-uc", "user", "pw-1")
    fs = WindowsFs(tmp_path)
    created = windows_service.set_(fs, spec_of(account="CONTOSO\\svc-uc", password="pw-1"))
    assert created.ok, created.error
    assert created.state["state"] == "Running"
    assert {"property": "logon_right", "before": None, "after": "SeServiceLogonRight"} in created.changes
    assert scm.SERVICE_LOGON_RIGHT in lsa.rights_of(tmp_path, account.sid)
    assert windows_service.set_(fs, spec_of(account="CONTOSO\\svc-uc", password="pw-1")).changed is False
    # An administrator (or a Group Policy refresh) takes the right away: the start would fail with 1069.
    lsa.admin_revoke_right(tmp_path, account.sid, scm.SERVICE_LOGON_RIGHT)
    scm.stop(tmp_path, "UsercubeAgent")
    with pytest.raises(scm.ScmError) as raised:
        scm.start(tmp_path, "UsercubeAgent")
    assert raised.value.code == 1069
    repaired = windows_service.set_(fs, spec_of(account="CONTOSO\\svc-uc", password="pw-1"))
    assert repaired.ok and repaired.state["state"] == "Running"
    old = script("windows_service", "set").replace(
        "if (Grant-ServiceLogonRight", "if ($false -and (Grant-ServiceLogonRight"
    )
    assert refused("windows_service/set", old)


def test_r6_a_service_logon_right_lsa_refuses_is_logon_right_not_granted(tmp_path: Path) -> None:
    place_program(tmp_path)
    accounts.add_account(tmp_path, "CONTOSO\\svc-uc", "user", "pw-1")
    (tmp_path / "_sim" / "knobs.json").write_text(json.dumps({"lsa_add_rights_error": 5}), encoding="utf-8")
    result = windows_service.set_(WindowsFs(tmp_path), spec_of(account="CONTOSO\\svc-uc", password="pw-1"))
    assert not result.ok and result.error is not None
    assert result.error["id"] == "LogonRightNotGranted" and result.error["property"] == "account"
    message = result.error["message"]
    assert "SeServiceLogonRight" in message and "CONTOSO\\svc-uc" in message and "Access is denied" in message
    service = scm.get(tmp_path, "UsercubeAgent")
    assert service is not None and service.state == "Stopped", "never started without the right"


# -- R6: "Log on as a batch job" for a pool's SpecificUser identity ------------------------------------


def test_r6_a_pool_identity_logs_on_through_iis_iusrs_and_is_granted_the_right_once_a_gpo_took_it(
    tmp_path: Path,
) -> None:
    iis.ensure_installed(tmp_path)
    assert lsa.holds(tmp_path, accounts.IIS_IUSRS, lsa.BATCH_LOGON_RIGHT), "IIS setup gives IIS_IUSRS the right"
    account = accounts.add_account(tmp_path, "CONTOSO\\svc-im", "user", "pw-1")
    fs = WindowsFs(tmp_path)
    spec = pool_spec("Uc", identity_type="SpecificUser", identity_user="CONTOSO\\svc-im", identity_password="pw-1")
    created = iis_app_pool.set_(fs, spec)
    assert created.ok, created.error
    assert created.state["state"] == "Started" and created.state["batch_logon_right"] is True
    assert "logon_right" not in [c["property"] for c in created.changes], "IIS_IUSRS's right is enough"
    assert lsa.rights_of(tmp_path, account.sid) == []
    # A domain Group Policy sets "Log on as a batch job" without IIS_IUSRS: the running worker keeps its token,
    # the next one cannot log on (1385, WAS events 5021/5059) and the pool stops, as the unfixed script left it.
    lsa.admin_revoke_right(tmp_path, accounts.IIS_IUSRS, lsa.BATCH_LOGON_RIGHT)
    assert iis_app_pool.get(fs, spec).state["batch_logon_right"] is False
    manager = iis.ServerManager(tmp_path)
    manager.stop_pool("Uc")
    assert manager.start_pool("Uc") == "Stopped"
    assert "1385" in (manager.pool_last_error("Uc") or "")
    repaired = iis_app_pool.set_(fs, spec)
    assert repaired.ok, repaired.error
    assert repaired.state["state"] == "Started" and repaired.state["batch_logon_right"] is True
    assert {"property": "logon_right", "before": None, "after": "SeBatchLogonRight"} in repaired.changes
    assert lsa.rights_of(tmp_path, account.sid) == ["SeBatchLogonRight"]
    assert iis_app_pool.set_(fs, spec).changed is False
    old = script("iis_app_pool", "set").replace(
        "$grantedBatchRight = Grant-BatchLogonRight", "$grantedBatchRight = $false # Grant-BatchLogonRight"
    )
    assert refused("iis_app_pool/set", old)
    no_iis_iusrs = script("iis_app_pool", "get").replace(
        "return ((-not $ManualGroupMembership) -and (Test-AccountRight $IisIusrsSid $BatchLogonRight))", "return $false"
    )
    assert no_iis_iusrs != script("iis_app_pool", "get") and refused("iis_app_pool/get", no_iis_iusrs)


def test_r6_a_gmsa_pool_identity_is_granted_the_batch_right_too(tmp_path: Path) -> None:
    iis.ensure_installed(tmp_path)
    lsa.admin_revoke_right(tmp_path, accounts.IIS_IUSRS, lsa.BATCH_LOGON_RIGHT)
    gmsa = accounts.add_account(tmp_path, "CONTOSO\\gm-im$", "gmsa")
    result = iis_app_pool.set_(
        WindowsFs(tmp_path), pool_spec("Gm", identity_type="SpecificUser", identity_user="CONTOSO\\gm-im$")
    )
    assert result.ok and result.state["state"] == "Started", result.error
    assert lsa.holds(tmp_path, gmsa.sid, lsa.BATCH_LOGON_RIGHT)


def test_r6_a_batch_right_lsa_refuses_fails_before_anything_changes_naming_right_account_and_fix(
    tmp_path: Path,
) -> None:
    iis.ensure_installed(tmp_path)
    lsa.admin_revoke_right(tmp_path, accounts.IIS_IUSRS, lsa.BATCH_LOGON_RIGHT)
    accounts.add_account(tmp_path, "CONTOSO\\svc-im", "user", "pw-1")
    (tmp_path / "_sim" / "knobs.json").write_text(json.dumps({"lsa_add_rights_error": 5}), encoding="utf-8")
    before = iis.config_file(tmp_path).read_bytes()
    spec = pool_spec("Uc", identity_type="SpecificUser", identity_user="CONTOSO\\svc-im", identity_password="pw-1")
    result = iis_app_pool.set_(WindowsFs(tmp_path), spec)
    assert not result.ok and result.error is not None
    assert result.error["id"] == "LogonRightNotGranted" and result.error["property"] == "identity_user"
    message = result.error["message"]
    assert "SeBatchLogonRight" in message and "CONTOSO\\svc-im" in message and "Access is denied" in message
    assert "secpol.msc" in message and "next policy refresh" in message and "pw-1" not in message
    assert iis.config_file(tmp_path).read_bytes() == before, "the pool is not created without the right"


# -- W4: features ------------------------------------------------------------------------------------

FEATURE = {"names": ["Containers"], "include_management_tools": False, "uninstall_on_delete": True}


def test_w4_install_pending_is_installed_with_a_restart_due(tmp_path: Path) -> None:
    fs = WindowsFs(tmp_path)
    installed = windows_feature.set_(fs, FEATURE)
    assert installed.ok and installed.state["restart_pending"] is True
    assert features.install_state(tmp_path, "Containers") == "InstallPending"
    assert "containers" not in features.fully_installed(tmp_path), "Installed is False until the restart"
    again = windows_feature.get(fs, FEATURE)
    assert again.state["installed_names"] == ["Containers"] and again.state["restart_pending"] is True
    assert windows_feature.set_(fs, FEATURE).changed is False, "no drift while the install is pending"
    features.admin_restart(tmp_path)
    assert features.install_state(tmp_path, "Containers") == "Installed"
    assert windows_feature.get(fs, FEATURE).state["restart_pending"] is False
    old = script("windows_feature", "get").replace("Test-FeatureInstalled $Catalog[$_]", "$Catalog[$_].Installed")
    assert refused("windows_feature/get", old)


def test_w4_restart_maybe_is_pending(tmp_path: Path) -> None:
    fs = WindowsFs(tmp_path)
    data = features.load(tmp_path)
    data["next_restart_answer"] = "Maybe"
    features.save(tmp_path, data)
    spec = {**FEATURE, "names": ["Telnet-Client"]}
    result = windows_feature.set_(fs, spec)
    assert result.ok and result.state["restart_pending"] is True
    old = script("windows_feature", "set").replace(
        "[string]$Result.RestartNeeded -ne 'No'", "[string]$Result.RestartNeeded -eq 'Yes'"
    )
    assert refused("windows_feature/set", old)


def test_w4_a_failed_install_is_an_error_record_reported_with_its_id(tmp_path: Path) -> None:
    fs = WindowsFs(tmp_path)
    features.admin_fail_install(tmp_path, "Telnet-Client", "The source files could not be found.")
    result = windows_feature.set_(fs, {**FEATURE, "names": ["Telnet-Client"]})
    assert not result.ok and result.error is not None
    assert result.error["id"] == "FeatureInstallFailed" and "source files could not be found" in result.error["message"]
    assert "telnet-client" not in features.installed(tmp_path)
    old = script("windows_feature", "set").replace(
        "try {\n    $result = Install-WindowsFeature @parameters\n} catch {",
        "$result = Install-WindowsFeature @parameters\nif ($false) {",
    )
    assert refused("windows_feature/set", old)


def test_a_null_backup_for_file_replace_is_refused() -> None:
    # PowerShell passes $null to a .NET string parameter as '' (PowerShell/PowerShell#11515), which File.Replace
    # refuses as a path: every upgrade of a runtime archive failed this way (second review of runtime_archive).
    from devhost.ops import SCRIPT_FACTS
    from devhost.ps51 import check_script

    bad = "[System.IO.File]::Replace($temporary, $Path, $null)"
    good = "[System.IO.File]::Replace($temporary, $Path, [NullString]::Value)"
    assert check_script(SCRIPT_FACTS, "runtime_archive/set", bad) != []
    assert not [p for p in check_script(SCRIPT_FACTS, "runtime_archive/set", good) if "NullString" in p]


def test_a_key_reader_by_english_well_known_name_on_a_german_windows(tmp_path: Path) -> None:
    """private_key_readers go through _accounts.ps1 too: NTAccount.Translate knows only the host language's names."""
    fs = WindowsFs(tmp_path)
    accounts.set_display_language(fs.root, "de-DE")
    pfx = make_pfx(cn="german.contoso.test")
    created = certificate.set_(fs, cert_spec(pfx, readers=["NT AUTHORITY\\NETWORK SERVICE"]))
    assert created.ok, created.error
    assert [r["sid"] for r in created.state["private_key_readers"]] == ["S-1-5-20"]

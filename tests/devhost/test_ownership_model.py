"""SIMULATOR: the ownership records of shared host objects (_owners.ps1 and its users, the Certificate and
IisDefaultSiteRemoval scripts) through their models, without WinRM or Pulumi."""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from devhost import accounts, certstore, iis, named_mutex, ntfs, ps51
from devhost.fs import WindowsFs
from devhost.ops import SCRIPT_FACTS, certificate, iis_default_site_removal, ownership, staging
from providers.scripting.runner import ScriptRef, render_script
from tests.devhost.test_certstore_model import set_spec
from tests.devhost.test_iis_model import fake_certificate, removal_spec
from tests.providers.test_certificate_engine import PASSWORD, make_pfx, pfx_thumbprint

READER_A = "NT AUTHORITY\\NETWORK SERVICE"
READER_B = "NT AUTHORITY\\LOCAL SERVICE"
SITE_FOLDER = ownership.folder("IisDefaultSiteRemoval", iis.DEFAULT_SITE)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    iis.ensure_installed(tmp_path)
    return tmp_path


def cert_folder(thumbprint: str) -> str:
    return ownership.folder("Certificate", f"LocalMachine-My-{thumbprint}")


def remove_spec(pfx: str, owner: str, imported: bool = True, readers: list[str] | None = None) -> dict[str, Any]:
    return {
        "thumbprint": pfx_thumbprint(pfx),
        "store_location": "LocalMachine",
        "store_name": "My",
        "private_key_readers": readers or [],
        "owner": owner,
        "imported": imported,
    }


def readers_on_key(state: Path, thumbprint: str) -> list[str]:
    stores = certstore.CertStore(state)
    entry = stores.find("LocalMachine", "My", thumbprint)
    assert entry is not None
    return sorted(name for _sid, name in stores.key_readers(entry))


# -- 1: the owners mutex ---------------------------------------------------------------------------------


def test_a_held_owners_lock_ends_the_wait_with_owners_busy(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # WaitOne(30000) returns false when the holder keeps the mutex (a hung operation): the script stops with
    # OwnersBusy instead of waiting for ever (the unfixed WaitOne() had no timeout).
    monkeypatch.setattr(ownership, "LOCK_WAIT_S", 0.2)
    with named_mutex.held(state, ownership.OWNERS_MUTEX, 1):
        busy = iis_default_site_removal.set_(WindowsFs(state), removal_spec())
    assert not busy.ok and busy.error is not None and busy.error["id"] == "OwnersBusy", busy.error
    assert "Global\\UsercubeIac-Owners" in busy.error["message"] and "run again" in busy.error["message"]
    assert iis.ServerManager(state).find_site(iis.DEFAULT_SITE) is not None, "nothing was decided without the lock"


# -- 2: a state from before ownership records -------------------------------------------------------------


def test_the_first_update_of_a_state_from_before_owners_records_the_stock_site(state: Path) -> None:
    before = ET.tostring(ET.parse(iis.config_file(state)).getroot())
    manager = iis.ServerManager(state)
    manager.remove_site(iis.DEFAULT_SITE)
    manager.remove_pool(iis.DEFAULT_POOL)
    manager.commit()  # removed by an earlier version of the resource: its state says removed_site/removed_pool
    # The update after the upgrade: the provider passes the old state's removed_* as restore_*.
    updated = iis_default_site_removal.set_(
        WindowsFs(state), {**removal_spec(), "restore_site": True, "restore_pool": True}
    )
    assert updated.ok, updated.error
    assert updated.state["removed_site"] is True and updated.state["removed_pool"] is True, "the restore is kept"
    # destroy: the provider passes the outputs of that update
    restored = iis_default_site_removal.remove(
        WindowsFs(state), {**removal_spec(), "restore_site": True, "restore_pool": True}
    )
    assert restored.ok and restored.state["site_present"] and restored.state["pool_present"]
    assert ET.tostring(ET.parse(iis.config_file(state)).getroot()) == before


# -- 3: an empty folder records nothing -------------------------------------------------------------------


def test_an_empty_owners_folder_does_not_make_a_found_certificate_ours(state: Path) -> None:
    pfx = make_pfx(cn="empty-folder.contoso.test")
    thumb = pfx_thumbprint(pfx)
    certstore.admin_import_pfx(state, base64.b64decode(pfx), PASSWORD)
    ownership.initialize(WindowsFs(state), cert_folder(thumb))  # what a refused set of the old scripts left
    # A state from before owners were recorded, whose certificate was found in the store (imported: false).
    removed = certificate.remove(WindowsFs(state), remove_spec(pfx, "stack/cert", imported=False))
    assert removed.ok and removed.state["ensure"] == "present", "a certificate found in the store stays"


def test_an_empty_owners_folder_does_not_block_the_stock_restore(state: Path) -> None:
    manager = iis.ServerManager(state)
    manager.remove_site(iis.DEFAULT_SITE)
    manager.commit()
    ownership.initialize(WindowsFs(state), SITE_FOLDER)
    restored = iis_default_site_removal.remove(WindowsFs(state), {**removal_spec(), "restore_site": True})
    assert restored.ok and restored.state["site_present"] is True


def test_a_refused_set_leaves_no_owners_folder(state: Path) -> None:
    pfx = make_pfx(cn="refused.contoso.test")
    thumb = pfx_thumbprint(pfx)
    certstore.admin_import_pfx(state, base64.b64decode(pfx), PASSWORD)  # not exportable
    refused = certificate.set_(WindowsFs(state), set_spec(pfx, exportable=True))
    assert not refused.ok and refused.error is not None and refused.error["id"] == "ExportPolicyDiffers"
    assert not WindowsFs(state).resolve(cert_folder(thumb)).exists()
    iis.admin_add_binding(state, iis.DEFAULT_SITE, "http", "*:81:")
    manager = iis.ServerManager(state)
    site = manager.add_site("Other", "C:\\other", None)
    manager.root_application(site).set("applicationPool", iis.DEFAULT_POOL)
    manager.commit()
    assert not iis_default_site_removal.set_(WindowsFs(state), removal_spec()).ok  # AppPoolInUse
    assert not WindowsFs(state).resolve(SITE_FOLDER).exists()


# -- 4: CreateDirectory returns a folder made in between as it is ---------------------------------------


def test_a_folder_another_account_creates_after_the_exists_check_is_refused(state: Path) -> None:
    user = "S-1-5-21-1004336348-1177238915-682003330-1001"
    # A user creates the <key> level right after Exists said no (the staging model's race knob).
    (state / "_sim" / "knobs.json").write_text(
        json.dumps({"staging_create_races": [{"on": SITE_FOLDER, "owner": user}]})
    )
    refused = iis_default_site_removal.set_(WindowsFs(state), removal_spec())
    assert not refused.ok and refused.error is not None and refused.error["id"] == "OwnersFolderUntrusted"
    assert f"is owned by {user}" in refused.error["message"]
    assert iis.ServerManager(state).find_site(iis.DEFAULT_SITE) is not None


# -- 5: ReplaceFileW failures ---------------------------------------------------------------------------


@pytest.mark.parametrize("code", [1176, 1177])
def test_a_record_survives_a_replace_file_that_fails_half_way(state: Path, code: int) -> None:
    fs = WindowsFs(state)
    ownership.initialize(fs, SITE_FOLDER)
    path = ownership.record_path(SITE_FOLDER, "stack/a")
    ownership.write(fs, path, {"owner": "stack/a", "readers": []})
    faults = state / "_sim" / "replace_file_faults.json"
    faults.write_text(json.dumps([code]))
    ownership.write(fs, path, {"owner": "stack/a", "readers": ["S-1-5-20"]})
    assert json.loads(faults.read_text()) == [], "the record was swapped in with ReplaceFileW"
    assert ownership.read(fs, path) == {"owner": "stack/a", "readers": ["S-1-5-20"]}
    assert sorted(p.name for p in fs.resolve(SITE_FOLDER).iterdir()) == [Path(fs.resolve(path)).name]


# -- 6, 7, 8, 9: the Default Web Site's restore ------------------------------------------------------------


def test_a_binding_whose_certificate_is_gone_is_left_out_of_the_restore(state: Path) -> None:
    thumbprint = "E" * 40
    fake_certificate(state, thumbprint)
    iis.admin_add_binding(state, iis.DEFAULT_SITE, "https", "*:443:")
    manager = iis.ServerManager(state)
    site = manager.find_site(iis.DEFAULT_SITE)
    assert site is not None
    manager.remove_binding(site, iis.Binding("https", "*:443:"))
    manager.add_binding(site, iis.Binding("https", "*:443:"), thumbprint, "My")
    manager.commit()
    assert iis_default_site_removal.set_(WindowsFs(state), removal_spec()).ok
    (state / "_sim" / "certstore" / "LocalMachine" / "My" / f"{thumbprint}.json").unlink()  # its Certificate went
    restored = iis_default_site_removal.remove(WindowsFs(state), removal_spec())
    assert restored.ok, restored.error  # the unfixed restore failed the commit (HTTP.sys: 0x80070520)
    after = iis.ServerManager(state)
    site = after.find_site(iis.DEFAULT_SITE)
    assert site is not None and [b.protocol for b in after.bindings(site)] == ["http"]
    assert f"binding https *:443: not restored: its certificate {thumbprint}" in restored.state["restore_warning"]


def test_ssl_flags_of_a_binding_without_its_own_certificate_come_back(state: Path) -> None:
    # An https binding served from the Central Certificate Store with SNI (sslFlags 3) has no HTTP.sys hash
    # of its own: it is restored with Bindings.Add(information, protocol), which writes no sslFlags.
    manager = iis.ServerManager(state)
    site = manager.find_site(iis.DEFAULT_SITE)
    assert site is not None
    manager.add_binding(site, iis.Binding("https", "*:443:ccs.contoso.test", 3))
    manager.commit()
    assert iis_default_site_removal.set_(WindowsFs(state), removal_spec()).ok
    assert iis_default_site_removal.remove(WindowsFs(state), removal_spec()).ok
    after = iis.ServerManager(state)
    site = after.find_site(iis.DEFAULT_SITE)
    assert site is not None
    assert [(b.protocol, b.ssl_flags) for b in after.bindings(site)] == [("http", 0), ("https", 3)]


def test_a_default_site_with_added_applications_is_not_removed(state: Path) -> None:
    manager = iis.ServerManager(state)
    site = manager.find_site(iis.DEFAULT_SITE)
    assert site is not None
    application = ET.SubElement(site, "application", {"path": "/reports", "applicationPool": "Reports"})
    ET.SubElement(application, "virtualDirectory", {"path": "/", "physicalPath": "C:\\reports"})
    ET.SubElement(manager.root_application(site), "virtualDirectory", {"path": "/docs", "physicalPath": "C:\\docs"})
    manager.commit()
    refused = iis_default_site_removal.set_(WindowsFs(state), removal_spec())
    assert not refused.ok and refused.error is not None and refused.error["id"] == "DefaultSiteHasContent"
    assert "application /reports" in refused.error["message"] and "virtual directory /docs" in refused.error["message"]
    assert iis.ServerManager(state).find_site(iis.DEFAULT_SITE) is not None
    assert not WindowsFs(state).resolve(SITE_FOLDER).exists(), "no share is held"


def test_a_stopped_site_is_stopped_again_though_was_does_not_know_it_yet(state: Path) -> None:
    iis.admin_set_state(state, "site", iis.DEFAULT_SITE, "Stopped")
    assert iis_default_site_removal.set_(WindowsFs(state), removal_spec()).ok
    # For 5.6 s after the commit Site.State and Stop() throw 0x800710D8; Get-IisObjectState gives up after 5 s.
    (state / "_sim" / "knobs.json").write_text('{"iis_was_pickup_ms": 5600}')
    manager = iis.ServerManager(state)
    manager.add_site("Probe", "C:\\probe")
    manager.commit()
    with pytest.raises(iis.NotYetKnown, match="0x800710D8"):
        iis.ServerManager(state).stop_site("Probe")  # the unfixed script's single Stop()
    restored = iis_default_site_removal.remove(WindowsFs(state), removal_spec())
    assert restored.ok, restored.error
    assert iis.ServerManager(state).site_state(iis.DEFAULT_SITE) == "Stopped"


# -- 10: the last owner of a found certificate -------------------------------------------------------------


def test_the_last_owner_takes_a_found_certificate_back_to_its_readers(state: Path) -> None:
    pfx = make_pfx(cn="found-readers.contoso.test")
    thumb = pfx_thumbprint(pfx)
    certstore.admin_import_pfx(state, base64.b64decode(pfx), PASSWORD)
    certstore.admin_grant_key_read(state, thumb, READER_B)  # it had this reader when found
    fs = WindowsFs(state)
    assert certificate.set_(fs, {**set_spec(pfx, readers=[READER_A]), "owner": "stack-1/cert"}).ok
    assert certificate.set_(fs, {**set_spec(pfx), "owner": "stack-2/cert"}).ok
    # stack-1's record is lost on the way (an interrupted earlier version's remove deleted it first)
    ownership.delete(fs, ownership.record_path(cert_folder(thumb), "stack-1/cert"))
    assert readers_on_key(state, thumb) == sorted([READER_A, READER_B])
    removed = certificate.remove(fs, remove_spec(pfx, "stack-2/cert"))
    assert removed.ok and removed.state["ensure"] == "present"
    assert readers_on_key(state, thumb) == [READER_B], "what the owners added goes with the last one"


# -- nits ------------------------------------------------------------------------------------------------


def test_a_renamed_owner_keeps_its_readers_owned_until_the_new_record_holds_them(state: Path) -> None:
    pfx = make_pfx(cn="renamed-readers.contoso.test")
    thumb = pfx_thumbprint(pfx)
    fs = WindowsFs(state)
    assert certificate.set_(fs, {**set_spec(pfx, readers=[READER_A]), "owner": "stack/old"}).ok
    assert certificate.set_(
        fs, {**set_spec(pfx, readers=[READER_A]), "owner": "stack/new", "previous_owner": "stack/old"}
    ).ok
    assert [r["owner"] for r in ownership.records(fs, cert_folder(thumb))] == ["stack/new"]
    assert certificate.remove(fs, remove_spec(pfx, "stack/new")).state["ensure"] == "absent"


def test_an_unknown_reader_fails_before_anything_is_recorded(state: Path) -> None:
    pfx = make_pfx(cn="unknown-reader.contoso.test")
    failed = certificate.set_(WindowsFs(state), set_spec(pfx, readers=["CONTOSO\\nobody"]))
    assert not failed.ok and failed.error is not None and failed.error["id"] == "IdentityNotMapped"
    assert not WindowsFs(state).resolve(cert_folder(pfx_thumbprint(pfx))).exists()


def test_a_certificate_gone_from_the_store_is_no_longer_found(state: Path) -> None:
    pfx = make_pfx(cn="stale-found.contoso.test")
    thumb = pfx_thumbprint(pfx)
    fs = WindowsFs(state)
    certstore.admin_import_pfx(state, base64.b64decode(pfx), PASSWORD)
    assert certificate.set_(fs, set_spec(pfx)).state["imported"] is False
    certstore.admin_remove(state, thumb)  # an administrator deleted it; the stack's next up imports it
    again = certificate.set_(fs, set_spec(pfx))
    assert again.ok and again.state["imported"] is True, "the stale found.json is gone"
    assert certificate.remove(fs, remove_spec(pfx, "test-stack/cert")).state["ensure"] == "absent"


def test_an_http_sys_entry_of_another_store_does_not_keep_the_certificate(state: Path) -> None:
    pfx = make_pfx(cn="other-store.contoso.test")
    thumb = pfx_thumbprint(pfx)
    fs = WindowsFs(state)
    assert certificate.set_(fs, set_spec(pfx)).ok
    sslcerts = iis.sslcerts(state)
    sslcerts["0.0.0.0:8443"] = {"hash": thumb, "store": "WebHosting"}  # the copy in another store is bound
    (state / "_sim" / "http_sslcert.json").write_text(json.dumps(sslcerts))
    assert certificate.remove(fs, remove_spec(pfx, "test-stack/cert")).state["ensure"] == "absent"


def test_a_found_json_left_by_a_half_done_restore_is_not_reused(state: Path) -> None:
    # The last owner's remove failed after deleting its record (a commit error): found.json stays, and the site
    # is there again. A new first owner records the site as it is now, not the leftover.
    fs = WindowsFs(state)
    ownership.initialize(fs, SITE_FOLDER)
    leftover = iis_default_site_removal._stock_site(removal_spec())
    ownership.write(
        fs, ownership.found_path(SITE_FOLDER), {"site": {**leftover, "physical_path": "C:\\old"}, "pool": None}
    )
    assert iis_default_site_removal.set_(fs, removal_spec()).ok
    found = ownership.read(fs, ownership.found_path(SITE_FOLDER))
    assert found["site"]["physical_path"] == iis.DEFAULT_SITE_PATH and found["pool"] is not None


# -- owners3: review-owners2 D1, D2, D3, D6, D7 ------------------------------------------------------------


def _https_default_site_binding(state: Path, thumbprint: str, ssl_flags: int) -> None:
    iis.admin_add_binding(state, iis.DEFAULT_SITE, "https", "*:443:www.contoso.test")
    manager = iis.ServerManager(state)
    site = manager.find_site(iis.DEFAULT_SITE)
    assert site is not None
    manager.remove_binding(site, iis.Binding("https", "*:443:www.contoso.test"))
    manager.add_binding(site, iis.Binding("https", "*:443:www.contoso.test", ssl_flags), thumbprint, "My")
    manager.commit()


def test_server_2022_ssl_flags_of_a_binding_with_a_certificate_come_back(state: Path) -> None:
    # D1: Sni + DisableHTTP2 + DisableQUIC... (97, as WebAdministrationDsc#627 shows) on a binding with its own
    # certificate. The unfixed Restore-Site cast the whole integer to the SslFlags enum, which throws.
    thumbprint = "D" * 40
    fake_certificate(state, thumbprint)
    _https_default_site_binding(state, thumbprint, 97)
    with pytest.raises(iis.UndefinedSslFlags, match="UndefinedIntegerToEnum"):
        iis.ssl_flags_enum(97)  # what the unfixed [Microsoft.Web.Administration.SslFlags]$flags did
    assert iis_default_site_removal.set_(WindowsFs(state), removal_spec()).ok
    restored = iis_default_site_removal.remove(WindowsFs(state), removal_spec())
    assert restored.ok, restored.error
    after = iis.ServerManager(state)
    site = after.find_site(iis.DEFAULT_SITE)
    assert site is not None
    https = [b for b in after.bindings(site) if b.protocol == "https"]
    assert [b.ssl_flags for b in https] == [97]
    assert (after.certificate_of(https[0]) or {}).get("hash") == thumbprint


def test_a_binding_whose_certificate_lost_its_private_key_is_left_out_of_the_restore(state: Path) -> None:
    # D6: re-imported as a .cer, the certificate is there without its key; HTTP.sys would refuse the commit.
    thumbprint = "C" * 40
    fake_certificate(state, thumbprint)
    _https_default_site_binding(state, thumbprint, 1)
    assert iis_default_site_removal.set_(WindowsFs(state), removal_spec()).ok
    fake_certificate(state, thumbprint, has_private_key=False)
    assert iis.certificate_in_store(state, thumbprint, "My"), "the unfixed check saw only that it is there"
    restored = iis_default_site_removal.remove(WindowsFs(state), removal_spec())
    assert restored.ok, restored.error
    site = iis.ServerManager(state).find_site(iis.DEFAULT_SITE)
    assert site is not None and [b.protocol for b in iis.ServerManager(state).bindings(site)] == ["http"]
    assert "with its private key" in restored.state["restore_warning"]


def _old_state_spec(owner: str) -> dict[str, Any]:
    # An earlier version removed the site (its state says removed_site) and recorded nothing on the host.
    return {**removal_spec(), "owner": owner, "restore_site": True}


def _newer_owner_finds_the_site_gone(state: Path) -> dict[str, Any]:
    # The site is gone (resource A, an earlier version, removed it). B, a newer version, records first: it
    # saves the pool it removes, and no site, so found.json exists with site null.
    manager = iis.ServerManager(state)
    iis_default_site_removal.remove_site(manager, iis.DEFAULT_SITE)
    manager.commit()
    b = {**removal_spec(), "owner": "stack/b"}
    assert iis_default_site_removal.set_(WindowsFs(state), b).ok
    found = ownership.read(WindowsFs(state), ownership.found_path(SITE_FOLDER))
    assert found["site"] is None and found["pool"] is not None
    return b


def test_an_old_state_set_after_a_newer_owner_records_the_stock_site(state: Path) -> None:
    # D2 (set): found.json exists but holds no site or pool; the unfixed set tested $null -eq $found.
    b = _newer_owner_finds_the_site_gone(state)
    assert iis_default_site_removal.set_(WindowsFs(state), _old_state_spec("stack/a")).ok
    found = ownership.read(WindowsFs(state), ownership.found_path(SITE_FOLDER))
    assert found["site"] is not None and found["site"]["bindings"][0]["binding_information"] == "*:80:"
    assert iis_default_site_removal.remove(WindowsFs(state), _old_state_spec("stack/a")).ok
    assert iis.ServerManager(state).find_site(iis.DEFAULT_SITE) is None, "B still holds the removal"
    assert iis_default_site_removal.remove(WindowsFs(state), b).ok
    assert iis.ServerManager(state).find_site(iis.DEFAULT_SITE) is not None
    assert iis.ServerManager(state).find_pool(iis.DEFAULT_POOL) is not None


def test_an_old_state_destroyed_before_a_newer_owner_leaves_its_stock_site_to_it(state: Path) -> None:
    # D2 (remove): A is destroyed without a set while B holds the removal; the unfixed remove left at once, and
    # B's last destroy found no site to put back.
    b = _newer_owner_finds_the_site_gone(state)
    gone = iis_default_site_removal.remove(WindowsFs(state), _old_state_spec("stack/a"))
    assert gone.ok and gone.state["other_owners"] == 1
    found = ownership.read(WindowsFs(state), ownership.found_path(SITE_FOLDER))
    assert found["site"] is not None and found["site"]["id"] == 1 and found["pool"] is not None
    assert iis_default_site_removal.remove(WindowsFs(state), b).ok
    assert iis.ServerManager(state).find_site(iis.DEFAULT_SITE) is not None
    assert iis.ServerManager(state).find_pool(iis.DEFAULT_POOL) is not None


def test_a_stopped_pool_is_stopped_again_though_was_does_not_know_it_yet(state: Path) -> None:
    # D3: right after the commit that restores the pool, State and Stop() throw 0x800710D8 for a moment.
    iis.admin_set_state(state, "pool", iis.DEFAULT_POOL, "Stopped")
    assert iis_default_site_removal.set_(WindowsFs(state), removal_spec()).ok
    (state / "_sim" / "knobs.json").write_text('{"iis_was_pool_pickup_ms": 5600}')
    manager = iis.ServerManager(state)
    manager.add_pool("Probe")
    manager.commit()
    with pytest.raises(iis.NotYetKnown, match="0x800710D8"):
        iis.ServerManager(state).stop_pool("Probe")  # the unfixed script's single $pool.Stop()
    restored = iis_default_site_removal.remove(WindowsFs(state), removal_spec())
    assert restored.ok, restored.error
    assert iis.ServerManager(state).pool_state(iis.DEFAULT_POOL) == "Stopped"


@pytest.mark.parametrize("error_id", ["DefaultSiteHasContent", "AppPoolInUse"])
def test_a_refused_removal_names_its_setting_and_category(state: Path, error_id: str) -> None:
    # D7: the refusals carry -Property 'ensure' and -Category 'ResourceExists'.
    manager = iis.ServerManager(state)
    if error_id == "DefaultSiteHasContent":
        site = manager.find_site(iis.DEFAULT_SITE)
        assert site is not None
        ET.SubElement(manager.root_application(site), "virtualDirectory", {"path": "/docs", "physicalPath": "C:\\d"})
    else:
        other = manager.add_site("Other", "C:\\other")
        manager.root_application(other).set("applicationPool", iis.DEFAULT_POOL)
    manager.commit()
    refused = iis_default_site_removal.set_(WindowsFs(state), removal_spec())
    assert not refused.ok and refused.error is not None and refused.error["id"] == error_id
    assert (refused.error["property"], refused.error["category"]) == ("ensure", "ResourceExists")


def test_a_commit_conflict_retry_keeps_the_certificate_of_a_removed_binding(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # D4 (unverified on Windows): if Bindings.Remove(b, $false) deletes the HTTP.sys entry before CommitChanges,
    # an attempt whose commit conflicts leaves the site in place but its certificate entry gone; the retry reads
    # Binding.CertificateHash again. The simulator deletes the entry at commit, so the first attempt's early
    # deletion is put in by hand here.
    thumbprint = "B" * 40
    fake_certificate(state, thumbprint)
    _https_default_site_binding(state, thumbprint, 1)
    real_with_retries = iis.with_retries
    attempts: list[int] = []

    def first_commit_conflicts(state_dir: Path, change: Any, attempts_allowed: int = 10) -> Any:
        def once(manager: iis.ServerManager) -> Any:
            attempts.append(1)
            if len(attempts) == 1:

                def conflict() -> None:
                    (state_dir / "_sim" / "http_sslcert.json").write_text("{}")
                    raise iis.ConfigChangedOnDisk()

                monkeypatch.setattr(manager, "commit", conflict)
            return change(manager)

        return real_with_retries(state_dir, once, attempts_allowed)

    monkeypatch.setattr(iis, "with_retries", first_commit_conflicts)
    assert iis_default_site_removal.set_(WindowsFs(state), removal_spec()).ok
    assert len(attempts) == 2
    found = ownership.read(WindowsFs(state), ownership.found_path(SITE_FOLDER))
    https = [b for b in found["site"]["bindings"] if b["protocol"] == "https"]
    assert [(b["certificate_hash"], b["certificate_store"]) for b in https] == [(thumbprint, "My")]


# -- owners3: review-owners2 O1, the records folders are _admin_folders.ps1's ------------------------------


def _records_folder_made_by_hand(state: Path, owner: str) -> None:
    # An administrator made the records folders by hand: owned by them, inheriting %ProgramData%'s DACL, which
    # lets BUILTIN\Users create files there.
    fs = WindowsFs(state)
    store = ntfs.NtfsStore(state)
    for level in staging.staging_levels(SITE_FOLDER):
        fs.resolve(level).mkdir(parents=True, exist_ok=True)
        store.set_descriptor(level, ntfs.Descriptor(owner=owner, protected=False, explicit=[]))


def test_a_record_planted_while_the_folder_let_users_in_is_deleted_on_repair(state: Path) -> None:
    # O1: the unfixed Initialize-OwnersFolder put the DACL back and kept a file a user had made meanwhile, which
    # then counted as an owner of the Default Web Site's removal.
    _records_folder_made_by_hand(state, "S-1-5-32-544")
    user = "S-1-5-21-1004336348-1177238915-682003330-1001"
    planted = ownership.record_path(SITE_FOLDER, "someone/else")
    WindowsFs(state).resolve(planted).write_text(json.dumps({"owner": "someone/else"}))
    ntfs.NtfsStore(state).set_descriptor(planted, ntfs.Descriptor(owner=user, protected=False, explicit=[]))
    created = iis_default_site_removal.set_(WindowsFs(state), removal_spec())
    assert created.ok, created.error
    assert created.state["owners"] == 1, "only this resource holds the removal"
    assert not WindowsFs(state).resolve(planted).exists()
    assert staging.untrusted_reason(WindowsFs(state), SITE_FOLDER) is None


# -- review-owners3 O1: an entry whose DACL withholds READ_CONTROL from the Administrators ------------------

PLANTER = "S-1-5-21-1004336348-1177238915-682003330-1001"  # a local user, who could create files in the folder


def _plant_locked(state: Path, path: str, *, folder: bool) -> None:
    # Made by the user while the folder let Users in, with a DACL granting only themselves: an administrator who is
    # not its owner gets no READ_CONTROL, so GetAccessControl throws UnauthorizedAccessException.
    target = WindowsFs(state).resolve(path)
    if folder:
        target.mkdir()
        (target / "inside.json").write_text("{}")
    else:
        target.write_text(json.dumps({"owner": "someone/else"}))
    only_them = [ntfs.Ace(PLANTER, ntfs.FULL_CONTROL)]
    ntfs.NtfsStore(state).set_descriptor(path, ntfs.Descriptor(owner=PLANTER, protected=True, explicit=only_them))


def _without_unreadable_catch(text: str) -> str:
    # The reviewed Get-PlantedEntries: GetAccessControl with no catch around it.
    pattern = (
        r"        try \{\n            (if \(\$isFolder\) [^\n]*\n)"
        r"        \} catch \[System\.UnauthorizedAccessException\] \{\n[\s\S]*?\n        \}\n"
    )
    return re.sub(pattern, r"        \1", text, count=1)


def test_o1_a_planted_file_the_administrators_may_not_read_is_deleted_on_repair(state: Path) -> None:
    _records_folder_made_by_hand(state, "S-1-5-32-544")
    planted = ownership.record_path(SITE_FOLDER, "someone/else")
    _plant_locked(state, planted, folder=False)
    assert not ntfs.access_granted(ntfs.NtfsStore(state), planted, set(accounts.OPERATOR_TOKEN), ntfs.READ_CONTROL)
    created = iis_default_site_removal.set_(WindowsFs(state), removal_spec())
    assert created.ok, created.error  # the unfixed script: UnexpectedError "Attempted to perform an unauthorized ..."
    assert created.state["owners"] == 1, "the planted record counts for nothing"
    assert not WindowsFs(state).resolve(planted).exists()
    assert staging.untrusted_reason(WindowsFs(state), SITE_FOLDER) is None
    # The script the model stands for: without the catch, the simulator refuses it.
    text = render_script(ScriptRef("providers.iis_default_site_removal", "set"))
    unfixed = _without_unreadable_catch(text)
    assert unfixed != text and ps51.check_script(SCRIPT_FACTS, "iis_default_site_removal/set", unfixed)
    assert ps51.check_script(SCRIPT_FACTS, "iis_default_site_removal/set", text) == []


def test_o1_a_planted_folder_the_administrators_may_not_list_is_refused_naming_it(state: Path) -> None:
    # Deleting a folder lists it first (Directory.Delete(path, true): FindFirstFile needs FILE_LIST_DIRECTORY on it),
    # so this one cannot be deleted: the folder kind's id and the path, not UnexpectedError.
    _records_folder_made_by_hand(state, "S-1-5-32-544")
    planted = f"{SITE_FOLDER}\\planted"
    _plant_locked(state, planted, folder=True)
    refused = iis_default_site_removal.set_(WindowsFs(state), removal_spec())
    assert not refused.ok and refused.error is not None
    assert refused.error["id"] == "OwnersFolderUntrusted"
    assert planted in refused.error["message"] and "could not be deleted" in refused.error["message"]
    assert "is denied" in refused.error["message"] and "then run again" in refused.error["message"]


def test_o1_a_records_folder_the_administrators_may_not_read_is_refused_naming_it(state: Path) -> None:
    # The level itself made by a user first, with a DACL granting only themselves: GetAccessControl throws in
    # Get-UntrustedReason, which refuses it (a trusted owner could always read it) instead of UnexpectedError.
    fs, store = WindowsFs(state), ntfs.NtfsStore(state)
    *above, level = staging.staging_levels(SITE_FOLDER)
    for path in above:
        fs.resolve(path).mkdir(parents=True, exist_ok=True)
        store.set_descriptor(path, staging.admin_only())
    fs.resolve(level).mkdir()
    store.set_descriptor(level, ntfs.Descriptor(PLANTER, True, [ntfs.Ace(PLANTER, ntfs.FULL_CONTROL)]))
    refused = iis_default_site_removal.set_(fs, removal_spec())
    assert not refused.ok and refused.error is not None and refused.error["id"] == "OwnersFolderUntrusted"
    assert level in refused.error["message"]
    assert "does not let the Administrators read its owner and permissions" in refused.error["message"]
    assert iis.ServerManager(state).find_site(iis.DEFAULT_SITE) is not None, "nothing decided"


# -- review-locks2 K1: the repair's SetAccessControl refused by a child it pushes its entries into ------------

REPAIR_BLOCK_START = (
    "        try {\n            [System.IO.Directory]::SetAccessControl($path, (New-AdminOnlySecurity))\n"
)
REPAIR_BLOCK_END = "        foreach ($entry in (Get-PlantedEntries $path)) { Remove-PlantedEntry $entry $Trust }\n"
UNFIXED_REPAIR = (  # the reviewed Initialize-TrustedFolder: no catch, the planted entries deleted after both scans
    "        [System.IO.Directory]::SetAccessControl($path, (New-AdminOnlySecurity))\n"
    "        $planted += @(Get-PlantedEntries $path)\n"
    "        foreach ($entry in $planted) { Remove-PlantedEntry $entry $Trust }\n"
)


def _without_repair_retry(text: str) -> str:
    start = text.index(REPAIR_BLOCK_START)
    end = text.index(REPAIR_BLOCK_END, start) + len(REPAIR_BLOCK_END)
    return text[:start] + UNFIXED_REPAIR + text[end:]


def test_k1_a_planted_file_that_refuses_the_repairs_propagation_is_deleted_and_the_level_written_again(
    state: Path,
) -> None:
    # SetAccessControl pushes the level's inheritable entries into each child: one whose DACL gives the
    # Administrators neither READ_CONTROL nor WRITE_DAC makes it throw UnauthorizedAccessException after the level
    # was written. The reviewed script then ended with UnexpectedError before deleting the record, and the next run
    # trusted the level and kept it for good.
    _records_folder_made_by_hand(state, "S-1-5-32-544")
    planted = ownership.record_path(SITE_FOLDER, "someone/else")
    _plant_locked(state, planted, folder=False)
    rights = ntfs.READ_CONTROL | ntfs.WRITE_DAC
    assert not ntfs.access_granted(ntfs.NtfsStore(state), planted, set(staging.SCRIPT_TOKEN), rights)
    created = iis_default_site_removal.set_(WindowsFs(state), removal_spec())
    assert created.ok, created.error
    assert created.state["owners"] == 1, "the planted record counts for nothing"
    assert not WindowsFs(state).resolve(planted).exists()
    assert staging.untrusted_reason(WindowsFs(state), SITE_FOLDER) is None
    # The script the model stands for: without the catch and the second SetAccessControl, it is refused.
    text = render_script(ScriptRef("providers.iis_default_site_removal", "set"))
    assert ps51.check_script(SCRIPT_FACTS, "iis_default_site_removal/set", text) == []
    unfixed = _without_repair_retry(text)
    assert unfixed != text and ps51.check_script(SCRIPT_FACTS, "iis_default_site_removal/set", unfixed)


def test_k1_a_kept_entry_that_refuses_the_repairs_propagation_twice_is_refused_naming_the_level(state: Path) -> None:
    # Not planted (its owner is the deploying account, and nobody else may write it), but an OWNER RIGHTS entry takes
    # the owner's implied WRITE_DAC away (MS-DTYP 2.5.3.2): the second SetAccessControl fails too.
    _records_folder_made_by_hand(state, "S-1-5-32-544")
    kept = f"{SITE_FOLDER}\\kept.json"
    WindowsFs(state).resolve(kept).write_text("{}")
    read_only = [ntfs.Ace(ntfs.OWNER_RIGHTS, ntfs.READ_AND_EXECUTE), ntfs.Ace("S-1-5-32-544", ntfs.READ_AND_EXECUTE)]
    ntfs.NtfsStore(state).set_descriptor(kept, ntfs.Descriptor(accounts.OPERATOR_USER, True, read_only))
    assert staging.planted_entries(WindowsFs(state), SITE_FOLDER) == []
    refused = iis_default_site_removal.set_(WindowsFs(state), removal_spec())
    assert not refused.ok and refused.error is not None and refused.error["id"] == "OwnersFolderUntrusted"
    # The first level repaired, %ProgramData%\UsercubeIac, pushes its entries down through the levels that inherit.
    message = refused.error["message"]
    top = staging.STAGING_TOP
    assert f"the ownership records folder {top} holds an entry that does not let the Administrators change" in message
    assert "Attempted to perform an unauthorized operation." in message and "then run again" in message
    assert WindowsFs(state).resolve(kept).exists(), "not planted: kept"
    # As on Windows, the level's own DACL was written before the push down failed.
    assert staging.untrusted_reason(WindowsFs(state), top) is None


def test_o3_refuse_or_repair_is_decided_by_a_flag_not_by_the_reasons_english_text() -> None:
    text = render_script(ScriptRef("providers.iis_default_site_removal", "set"))
    # (The model decides by the flag too: the unreadable level above, whose text starts 'does not', is refused.)
    assert "StartsWith('is ')" not in text
    assert "if ($reason.refuse) { Stop-Untrusted $path $reason.text $Trust }" in text
    unfixed = text.replace("if ($reason.refuse) {", "if ($reason.text.StartsWith('is ')) {")
    assert unfixed != text and ps51.check_script(SCRIPT_FACTS, "iis_default_site_removal/set", unfixed)


def test_a_records_folder_owned_by_the_deploying_account_is_trusted(state: Path) -> None:
    # Made by hand where "Default owner for objects created by members of the Administrators group" is "Object
    # creator": owned by that administrator's own SID. The unfixed check refused it (owner not Administrators).
    _records_folder_made_by_hand(state, accounts.OPERATOR_USER)
    created = iis_default_site_removal.set_(WindowsFs(state), removal_spec())
    assert created.ok, created.error
    assert iis_default_site_removal.remove(WindowsFs(state), removal_spec()).ok


def test_the_root_application_protocols_and_site_limits_come_back(state: Path) -> None:
    # D5: WCF activation's net.tcp binding is served only with enabledProtocols "http,net.tcp" on the root
    # application; limits and logFile are the site's own settings (applicationHost.config <site> schema).
    iis.admin_add_binding(state, iis.DEFAULT_SITE, "net.tcp", "808:*")
    manager = iis.ServerManager(state)
    site = manager.find_site(iis.DEFAULT_SITE)
    assert site is not None
    manager.root_application(site).set("enabledProtocols", "http,net.tcp")
    ET.SubElement(site, "limits", {"connectionTimeout": "00:00:30", "maxConnections": "500"})
    ET.SubElement(site, "logFile", {"directory": "D:\\logs"})
    manager.commit()
    assert iis_default_site_removal.set_(WindowsFs(state), removal_spec()).ok
    assert iis_default_site_removal.remove(WindowsFs(state), removal_spec()).ok
    after = iis.ServerManager(state)
    site = after.find_site(iis.DEFAULT_SITE)
    assert site is not None
    assert after.root_application(site).get("enabledProtocols") == "http,net.tcp"
    limits, log_file = site.find("limits"), site.find("logFile")
    assert limits is not None and limits.attrib == {"connectionTimeout": "00:00:30", "maxConnections": "500"}
    assert log_file is not None and log_file.get("directory") == "D:\\logs"

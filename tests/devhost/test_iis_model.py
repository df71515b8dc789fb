"""The SIMULATED host's IIS model (devhost.iis and the models of the iis_* scripts), without WinRM or Pulumi."""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from devhost import accounts, iis
from devhost.fs import WindowsFs
from devhost.ops import iis_app_pool, iis_default_site_removal, iis_prerequisites, iis_site


@pytest.fixture
def state(tmp_path: Path) -> Path:
    iis.ensure_installed(tmp_path)
    return tmp_path


def pool_spec(name: str, **overrides: Any) -> dict[str, Any]:
    spec = {
        "name": name,
        "managed_runtime_version": "",
        "pipeline_mode": "Integrated",
        "start_mode": "AlwaysRunning",
        "idle_timeout_minutes": 0,
        "load_user_profile": True,
        "periodic_restart_minutes": 0,
        "identity_type": "ApplicationPoolIdentity",
        "identity_user": None,
        "identity_password": None,
        "state": "Started",
    }
    return {**spec, **overrides}


def site_spec(name: str, pool: str, bindings: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "physical_path": "C:\\sites\\a",
        "app_pool": pool,
        "bindings": bindings
        or [
            {
                "protocol": "http",
                "binding_information": "*:8080:a.contoso.com",
                "ssl_flags": 0,
                "certificate_hash": None,
                "certificate_store": None,
            }
        ],
        "preload_enabled": True,
        "state": "Started",
    }


def test_installation_writes_iis_defaults_in_the_real_schema(state: Path) -> None:
    root = ET.parse(iis.config_file(state)).getroot()
    assert root.find("system.applicationHost/applicationPools/add[@name='DefaultAppPool']") is not None
    site = root.find("system.applicationHost/sites/site[@name='Default Web Site']")
    assert site is not None and site.get("id") == "1"
    assert site.find("bindings/binding").get("bindingInformation") == "*:80:"  # type: ignore[union-attr]
    assert iis.registry_key(state, iis.INETSTP) == {
        "MajorVersion": 10,
        "MinorVersion": 0,
        "InstallPath": "C:\\Windows\\system32\\inetsrv",
    }
    assert iis.ASPNETCORE_MODULE not in iis.ServerManager(state).global_modules()


def test_hosting_bundle_adds_the_module_only_when_iis_is_there(tmp_path: Path) -> None:
    iis.install_hosting_bundle(tmp_path, "8.0.11")  # before IIS: the manual's failure mode
    iis.ensure_installed(tmp_path)
    spec = {"minimum_hosting_bundle": "8.0", "minimum_iis_major": 10}
    failed = iis_prerequisites.get(WindowsFs(tmp_path), spec)
    assert not failed.ok and failed.error is not None
    assert "repair the .NET Hosting Bundle (it was installed before IIS" in failed.error["message"]
    iis.install_hosting_bundle(tmp_path, "8.0.11")  # the repair
    passed = iis_prerequisites.get(WindowsFs(tmp_path), spec)
    assert passed.ok, passed.error
    assert passed.state == {
        "ensure": "present",
        "iis_version": "10.0",
        "hosting_bundle_version": "8.0.11",
        "aspnetcore_module_present": True,
    }
    too_old = iis_prerequisites.get(WindowsFs(tmp_path), {**spec, "minimum_hosting_bundle": "9.0"})
    assert not too_old.ok and too_old.error is not None and too_old.error["property"] == "minimum_hosting_bundle"


def test_commit_fails_when_another_writer_committed_in_between(state: Path) -> None:
    first, second = iis.ServerManager(state), iis.ServerManager(state)
    first.add_pool("A")
    first.commit()
    second.add_pool("B")
    with pytest.raises(iis.ConfigChangedOnDisk, match="file has changed on disk"):
        second.commit()
    assert "B" not in iis.ServerManager(state).pool_names()


def test_parallel_script_models_all_succeed_through_the_retry_loop(state: Path) -> None:
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda n=n: results.append(iis_app_pool.set_(WindowsFs(state), pool_spec(f"P{n}"))))
        for n in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert {f"P{n}" for n in range(6)} <= set(iis.ServerManager(state).pool_names())
    assert iis.commit_conflicts(state) > 0, "the simulated commits should have collided at least once"


def test_password_is_stored_encrypted_and_a_wrong_one_keeps_the_pool_stopped(state: Path) -> None:
    accounts.add_account(state, "CONTOSO\\svc-im", "user", password="Right-Passw0rd")
    failed = iis_app_pool.set_(
        WindowsFs(state),
        pool_spec("Svc", identity_type="SpecificUser", identity_user="CONTOSO\\svc-im", identity_password="wrong"),
    )
    assert not failed.ok and failed.error is not None
    assert failed.error["id"] == "AppPoolStartFailed" and failed.error["property"] == "identity_password"
    text = iis.config_file(state).read_text()
    assert "wrong" not in text and "[enc:IISWASOnlyCngProvider:" in text
    fixed = iis_app_pool.set_(
        WindowsFs(state),
        pool_spec(
            "Svc", identity_type="SpecificUser", identity_user="CONTOSO\\svc-im", identity_password="Right-Passw0rd"
        ),
    )
    assert fixed.ok, fixed.error
    assert fixed.state["state"] == "Started" and "identity_password" in [c["property"] for c in fixed.changes]
    assert "Right-Passw0rd" not in iis.config_file(state).read_text()


def test_unknown_account_is_identity_not_mapped_and_changes_nothing(state: Path) -> None:
    before = iis.config_file(state).read_bytes()
    result = iis_app_pool.set_(
        WindowsFs(state), pool_spec("X", identity_type="SpecificUser", identity_user="CONTOSO\\nobody$")
    )
    assert not result.ok and result.error is not None and result.error["id"] == "IdentityNotMapped"
    assert iis.config_file(state).read_bytes() == before


def test_pool_identity_account_exists_only_while_the_pool_does(state: Path) -> None:
    created = iis_app_pool.set_(WindowsFs(state), pool_spec("Agent"))
    assert created.state["identity_account"] == "IIS APPPOOL\\Agent"
    assert created.state["identity_sid"].startswith("S-1-5-82-")
    assert iis_app_pool.remove(WindowsFs(state), pool_spec("Agent")).ok
    with pytest.raises(accounts.IdentityNotMapped):
        accounts.resolve(state, "IIS APPPOOL\\Agent")


def test_pool_in_use_is_refused_by_the_script_though_iis_would_allow_it(state: Path) -> None:
    assert iis_app_pool.set_(WindowsFs(state), pool_spec("Used")).ok
    assert iis_site.set_(WindowsFs(state), site_spec("S", "Used")).ok
    refused = iis_app_pool.remove(WindowsFs(state), pool_spec("Used"))
    assert not refused.ok and refused.error is not None and refused.error["id"] == "AppPoolInUse"
    assert "S/" in refused.error["message"]
    manager = iis.ServerManager(state)  # the configuration system itself has no referential integrity
    manager.remove_pool("Used")
    manager.commit()
    assert iis.ServerManager(state).applications_of_pool("Used") == ["S/"]


def test_site_errors_as_windows_gives_them(state: Path) -> None:
    assert iis_app_pool.set_(WindowsFs(state), pool_spec("P")).ok
    missing_pool = iis_site.set_(WindowsFs(state), site_spec("S1", "Nope"))
    assert missing_pool.error is not None and missing_pool.error["id"] == "AppPoolNotFound"
    in_use = iis_site.set_(
        WindowsFs(state),
        site_spec("S1", "P", [{**site_spec("x", "P")["bindings"][0], "binding_information": "*:80:"}]),
    )
    assert (
        in_use.error is not None
        and in_use.error["id"] == "BindingInUse"
        and "Default Web Site" in (in_use.error["message"])
    )
    https = {
        "protocol": "https",
        "binding_information": "*:8443:a.contoso.com",
        "ssl_flags": 1,
        "certificate_hash": "A" * 40,
        "certificate_store": "My",
    }
    no_cert = iis_site.set_(WindowsFs(state), site_spec("S1", "P", [https]))
    assert no_cert.error is not None and no_cert.error["property"] == "bindings.0.certificate_thumbprint"
    manager = iis.ServerManager(state)  # what HTTP.sys says when the script's own check is bypassed
    site = manager.add_site("Raw", "C:\\raw")
    manager.add_binding(site, iis.Binding("https", "*:9443:", 0), "B" * 40, "My")
    with pytest.raises(iis.LogonSessionMissing, match="A specified logon session does not exist"):
        manager.commit()
    with pytest.raises(iis.DuplicateEntry, match="Cannot add duplicate collection entry"):
        manager.add_binding(site, iis.Binding("https", "*:9443:", 0))


def test_site_start_fails_while_another_started_site_holds_the_binding(state: Path) -> None:
    manager = iis.ServerManager(state)
    site = manager.add_site("Second", "C:\\second")
    manager.add_binding(site, iis.Binding("http", "*:80:"))
    manager.commit()  # IIS accepts the configuration; WAS cannot start it
    assert iis.ServerManager(state).site_state("Second") == "Stopped"
    with pytest.raises(iis.EndpointInUse, match="0x80070020"):
        iis.ServerManager(state).start_site("Second")


def test_default_site_removal_and_restoration(state: Path) -> None:
    spec = {
        "site_name": "Default Web Site",
        "pool_name": "DefaultAppPool",
        "restore_site": False,
        "restore_pool": False,
    }
    before = ET.tostring(ET.parse(iis.config_file(state)).getroot())
    removed = iis_default_site_removal.set_(WindowsFs(state), spec)
    assert removed.ok and removed.state["removed_site"] and removed.state["removed_pool"]
    assert iis_default_site_removal.get(WindowsFs(state), spec).state["ensure"] == "present"
    restored = iis_default_site_removal.remove(WindowsFs(state), {**spec, "restore_site": True, "restore_pool": True})
    assert restored.ok and restored.state["ensure"] == "absent"
    assert ET.tostring(ET.parse(iis.config_file(state)).getroot()) == before
    assert iis.ServerManager(state).site_state("Default Web Site") == "Started"


def test_uninstalling_iis_takes_the_module_with_it(state: Path) -> None:
    iis.install_hosting_bundle(state, "8.0.11")
    assert iis.ASPNETCORE_MODULE in iis.ServerManager(state).global_modules()
    iis.ensure_removed(state)
    with pytest.raises(iis.NotInstalled):
        iis.ServerManager(state)
    iis.ensure_installed(state)
    assert iis.ASPNETCORE_MODULE not in iis.ServerManager(state).global_modules()

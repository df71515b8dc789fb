"""The SIMULATED host's IIS model (devhost.iis and the models of the iis_* scripts), without WinRM or Pulumi."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from devhost import accounts, iis, ps51
from devhost.fs import WindowsFs
from devhost.ops import SCRIPT_FACTS, iis_app_pool, iis_common, iis_default_site_removal, iis_prerequisites, iis_site
from providers.scripting.runner import ScriptRef, render_script
from tools.bless_scripts import operation_scripts


def script(resource: str, operation: str) -> str:
    return render_script(ScriptRef(f"providers.{resource}", operation))


def unfixed(resource: str, operation: str, fixed: str, old: str) -> str:
    """The operation's script with the fix ``fixed`` put back to the text ``old`` it replaced (commit 6049d81)."""
    text = script(resource, operation)
    assert fixed in text, "the fix is no longer spelt this way: update the test"
    return text.replace(fixed, old)


def refused(operation: str, text: str) -> list[str]:
    return ps51.check_script(SCRIPT_FACTS, operation, text)


def test_the_iis_facts_hold_every_script_that_includes_iis_ps1() -> None:
    including = {
        ref.operation for ref in operation_scripts() if "function Import-IisAdministration" in render_script(ref)
    }
    assert set(iis_common.IIS_SCRIPT_OPERATIONS) == including
    for operation in sorted(including):
        resource, verb = operation.split("/")
        assert refused(operation, script(resource, verb)) == []


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
    second.pool_names()  # the first section access: the file is read now
    first.add_pool("A")
    first.commit()
    second.add_pool("B")
    with pytest.raises(iis.ConfigChangedOnDisk, match="file has changed on disk"):
        second.commit()
    assert "B" not in iis.ServerManager(state).pool_names()


def test_the_file_is_read_at_the_first_section_access_not_at_construction(state: Path) -> None:
    """A ServerManager constructed before another writer's commit, but first used after it, sees that commit
    and commits on top of it (MWA loads applicationHost.config lazily)."""
    first, second = iis.ServerManager(state), iis.ServerManager(state)
    first.add_pool("A")
    first.commit()
    second.add_pool("B")
    second.commit()
    assert {"A", "B"} <= set(iis.ServerManager(state).pool_names())


def test_a_commit_comes_no_sooner_than_the_scripts_work_after_the_load(state: Path) -> None:
    (state / "_sim" / "knobs.json").write_text('{"iis_script_work_ms": 400}', encoding="utf-8")
    manager = iis.ServerManager(state)
    manager.add_pool("Slow")
    started = time.monotonic()
    manager.commit()
    assert time.monotonic() - started >= 0.3  # 400 ms from the load, less the load latency already spent


def test_a_writer_that_commits_within_the_others_window_makes_it_retry(state: Path) -> None:
    """Two scripts whose read-to-commit windows overlap: the second commit is stale, is journalled, and its
    retry (a fresh ServerManager) keeps both pools."""
    (state / "_sim" / "knobs.json").write_text('{"iis_script_work_ms": 300}', encoding="utf-8")
    read = threading.Barrier(2)

    def add(name: str) -> None:
        def change(manager: iis.ServerManager) -> None:
            manager.pool_names()  # both read before either commits (a retry finds the barrier spent)
            with contextlib.suppress(threading.BrokenBarrierError):
                read.wait(timeout=0.2)
            manager.add_pool(name)
            manager.commit()

        iis.with_retries(state, change)

    threads = [threading.Thread(target=add, args=(name,)) for name in ("Early", "Late")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {"Early", "Late"} <= set(iis.ServerManager(state).pool_names())
    conflicts = [
        json.loads(line)
        for line in (state / "_sim" / "journal.jsonl").read_text(encoding="utf-8").splitlines()
        if '"iis_commit_conflict"' in line
    ]
    assert conflicts and conflicts[0]["attempt"] == 1 and conflicts[0]["retried"] is True
    assert iis.commit_conflicts(state) == len(conflicts)


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
        "owner": "test-stack/removal",
        "previous_owner": "",
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


def http(information: str) -> dict[str, Any]:
    return {
        "protocol": "http",
        "binding_information": information,
        "ssl_flags": 0,
        "certificate_hash": None,
        "certificate_store": None,
    }


def https(information: str, thumbprint: str, sni: bool = False) -> dict[str, Any]:
    return {
        "protocol": "https",
        "binding_information": information,
        "ssl_flags": 1 if sni else 0,
        "certificate_hash": thumbprint,
        "certificate_store": "My",
    }


def fake_certificate(state: Path, thumbprint: str, has_private_key: bool = True) -> None:
    folder = state / "_sim" / "certstore" / "LocalMachine" / "My"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{thumbprint}.json").write_text(json.dumps({"has_private_key": has_private_key}))


def test_wcf_non_http_bindings_of_other_sites_are_not_parsed_as_endpoints(state: Path) -> None:
    # B2: WCF non-HTTP activation adds net.tcp '808:*', net.pipe '*', msmq 'localhost' to the Default Web Site.
    for protocol, information in iis.WCF_ACTIVATION_BINDINGS:
        iis.admin_add_binding(state, iis.DEFAULT_SITE, protocol, information)
    with pytest.raises(iis.IisError, match=r"no HTTP\.sys endpoint"):
        _ = iis.Binding("net.tcp", "808:*").endpoint  # what the unfixed Get-Endpoint did with it
    assert iis_app_pool.set_(WindowsFs(state), pool_spec("P")).ok
    created = iis_site.set_(WindowsFs(state), site_spec("S", "P"))
    assert created.ok and created.state["state"] == "Started", created.error
    in_use = iis_site.set_(WindowsFs(state), site_spec("T", "P", [http("*:80:")]))
    assert in_use.error is not None and in_use.error["id"] == "BindingInUse"
    # The unfixed Get-BindingEndpoint parsed every binding as '<ip>:<port>:<host>' (net.tcp '808:*' throws).
    check = "    if ($Protocol -ne 'http' -and $Protocol -ne 'https') { return $null }\n"
    for operation in iis_common.IIS_SCRIPT_OPERATIONS:
        resource, verb = operation.split("/")
        assert refused(operation, unfixed(resource, verb, check, "")), operation
    late = unfixed("iis_site", "set", check, "").replace(
        "    $port, $hostName = $rest.Split(':', 2)\n", "    $port, $hostName = $rest.Split(':', 2)\n" + check
    )
    assert refused("iis_site/set", late), "the protocol is checked before the text is parsed"


def test_wildcard_and_specific_address_on_one_port_both_run(state: Path) -> None:
    # W3: HTTP.sys prefers the specific address; '*' is the weak wildcard.
    assert iis_app_pool.set_(WindowsFs(state), pool_spec("P")).ok
    specific = iis_site.set_(WindowsFs(state), site_spec("Specific", "P", [http("10.0.0.5:80:")]))
    assert specific.ok and specific.state["state"] == "Started", specific.error
    assert iis.ServerManager(state).site_state(iis.DEFAULT_SITE) == "Started"
    same = iis_site.set_(WindowsFs(state), site_spec("Same", "P", [http("10.0.0.5:80:")]))
    assert same.error is not None and same.error["id"] == "BindingInUse" and "Specific" in same.error["message"]
    fixed = "return $A.Ip -eq $B.Ip -and"
    old = "return ($A.Ip -eq $B.Ip -or $A.Ip -eq '*' -or $B.Ip -eq '*') -and"
    assert refused("iis_site/set", unfixed("iis_site", "set", fixed, old)), "'*' clashed with every address"
    wildcard_too = fixed.replace("return", "if ($A.Ip -eq '*' -or $B.Ip -eq '*') { return $true }\n    return")
    assert refused("iis_site/set", unfixed("iis_site", "set", fixed, wildcard_too))
    no_null_guard = "    if ($null -eq $A -or $null -eq $B) { return $false }\n"
    assert refused("iis_site/set", unfixed("iis_site", "set", no_null_guard, "")), "$null endpoints would clash"


def test_removing_https_bindings_cleans_http_sys_unless_the_entry_is_shared(state: Path) -> None:
    # W1: one 0.0.0.0:443 entry serves every non-SNI https binding on 443; an SNI entry is per host:port.
    thumbprint = "C" * 40
    fake_certificate(state, thumbprint)
    assert iis_app_pool.set_(WindowsFs(state), pool_spec("P")).ok
    a = site_spec("A", "P", [https("*:443:a.contoso.com", thumbprint)])
    b = site_spec(
        "B", "P", [https("*:443:b.contoso.com", thumbprint), https("*:443:sni.contoso.com", thumbprint, True)]
    )
    assert iis_site.set_(WindowsFs(state), a).ok and iis_site.set_(WindowsFs(state), b).ok
    assert set(iis.sslcerts(state)) == {"0.0.0.0:443", "sni.contoso.com:443"}
    assert iis_site.remove(WindowsFs(state), a).ok
    assert "0.0.0.0:443" in iis.sslcerts(state), "B still needs the shared entry"
    assert iis_site.remove(WindowsFs(state), b).ok
    assert iis.sslcerts(state) == {}, "no stale netsh http sslcert entry is left"
    # The inherited Bindings.Remove($b) (what the scripts used) leaves the entry behind:
    assert iis_site.set_(WindowsFs(state), a).ok
    manager = iis.ServerManager(state)
    site = manager.find_site("A")
    assert site is not None
    manager.remove_binding(site, manager.bindings(site)[0])
    manager.remove_site("A")
    manager.commit()
    assert "0.0.0.0:443" in iis.sslcerts(state)
    fixed = "[void]$Site.Bindings.Remove($Binding, $shared)"
    for operation in iis_common.IIS_SCRIPT_OPERATIONS:
        resource, verb = operation.split("/")
        assert refused(operation, unfixed(resource, verb, fixed, "[void]$Site.Bindings.Remove($Binding)")), operation
        assert refused(operation, unfixed(resource, verb, fixed, "[void]$Site.Bindings.Remove($Binding, $false)"))
    inline = unfixed("iis_site", "set", "Remove-IisBinding $manager $site $binding", "$site.Bindings.Remove($binding)")
    assert refused("iis_site/set", inline), "the unfixed set.ps1 removed bindings with the inherited Remove"
    always_shared = unfixed("iis_site", "set", "{ $shared = $true }", "{ }")
    assert refused("iis_site/set", always_shared)


def test_a_new_certificate_on_a_shared_non_sni_entry_is_refused_not_given_to_the_other_site(state: Path) -> None:
    # Review: '*:443:a' and '*:443:b' share HTTP.sys's 0.0.0.0:443 entry, which holds one certificate.
    first, second = "E" * 40, "F" * 40
    fake_certificate(state, first)
    fake_certificate(state, second)
    assert iis_app_pool.set_(WindowsFs(state), pool_spec("P")).ok
    assert iis_site.set_(WindowsFs(state), site_spec("A", "P", [https("*:443:a.contoso.com", first)])).ok
    assert iis_site.set_(WindowsFs(state), site_spec("B", "P", [https("*:443:b.contoso.com", first)])).ok
    before = iis.sslcerts(state)
    assert before == {"0.0.0.0:443": {"hash": first, "store": "My"}}
    refused = iis_site.set_(WindowsFs(state), site_spec("B", "P", [https("*:443:b.contoso.com", second)]))
    assert refused.error is not None and refused.error["id"] == "CertificateConflict", refused.error
    message = refused.error["message"]
    assert "site 'A'" in message and "0.0.0.0:443" in message and "SNI" in message and first in message
    assert refused.error["property"] == "bindings.0" and iis.sslcerts(state) == before
    # An SNI binding has its own host:port entry: no conflict.
    sni = iis_site.set_(WindowsFs(state), site_spec("B", "P", [https("*:443:b.contoso.com", second, True)]))
    assert sni.ok, sni.error
    assert iis.sslcerts(state)["0.0.0.0:443"]["hash"] == first
    # What the unfixed script did (keep the shared entry, Bindings.Add with the new hash): A's certificate
    # changes with nothing said.
    manager = iis.ServerManager(state)
    site = manager.find_site("B")
    assert site is not None
    manager.remove_binding(site, manager.bindings(site)[0], remove_config_only=True)
    manager.add_binding(site, iis.Binding("https", "*:443:b.contoso.com"), second, "My")
    manager.commit()
    assert iis.sslcerts(state)["0.0.0.0:443"]["hash"] == second
    assert iis_site.get(WindowsFs(state), site_spec("A", "P")).state["bindings"][0]["certificate_hash"] == second


def removal_spec() -> dict[str, object]:
    """IisDefaultSiteRemoval's input for the stock Default Web Site and DefaultAppPool, one owner."""
    return {
        "site_name": iis.DEFAULT_SITE,
        "pool_name": iis.DEFAULT_POOL,
        "owner": "test-stack/removal",
        "previous_owner": "",
        "restore_site": False,
        "restore_pool": False,
    }


def test_default_site_removal_frees_its_own_sslcert_entry(state: Path) -> None:
    thumbprint = "D" * 40
    fake_certificate(state, thumbprint)
    manager = iis.ServerManager(state)
    site = manager.find_site(iis.DEFAULT_SITE)
    assert site is not None
    manager.add_binding(site, iis.Binding("https", "*:443:"), thumbprint, "My")
    manager.commit()
    spec = removal_spec()
    assert iis_default_site_removal.set_(WindowsFs(state), spec).ok
    assert iis.sslcerts(state) == {}


def test_a_new_site_starts_although_was_does_not_know_it_for_a_moment(state: Path) -> None:
    # R10: for a while after the commit, Site.State and Site.Start() throw 0x800710D8; Get-IisObjectState
    # gives up after 5 s ('Unknown'), so Start() comes while WAS still does not know the site.
    (state / "_sim" / "knobs.json").write_text('{"iis_was_pickup_ms": 5600}')
    assert iis_app_pool.set_(WindowsFs(state), pool_spec("P")).ok
    manager = iis.ServerManager(state)
    manager.add_site("Probe", "C:\\probe")
    manager.commit()
    with pytest.raises(iis.NotYetKnown, match="0x800710D8"):
        iis.ServerManager(state).start_site("Probe")  # the unfixed script's single Start()
    created = iis_site.set_(WindowsFs(state), site_spec("S", "P"))
    assert created.ok and created.state["state"] == "Started", created.error
    bare = unfixed("iis_site", "set", "            Start-IisSite $site\n", "            [void]$site.Start()\n")
    assert refused("iis_site/set", bare), "the unfixed set.ps1 called Start() once"
    unwrapped = unfixed("iis_site", "set", "Invoke-WhenWasKnows { [void]$Site.Start() }", "[void]$Site.Start()")
    assert refused("iis_site/set", unwrapped), "Start-IisSite without the retry"
    other_error = unfixed("iis_site", "set", "$e.HResult -eq -2147020584", "$e.HResult -eq -2147024864")
    assert refused("iis_site/set", other_error), "the retry is on 0x800710D8"


def test_commit_conflicts_are_recognized_by_type_and_hresult_not_by_message(state: Path) -> None:
    # W5: on a localized Windows the "changed on disk" text is translated; the type and HRESULT are not.
    conflict = iis.ConfigChangedOnDisk()
    conflict.args = ("(the same error, in the language of a localized Windows)",)
    assert iis.is_commit_conflict(conflict)
    assert iis.is_commit_conflict(iis.EndpointInUse())  # 0x80070020, the sharing violation
    assert not iis.is_commit_conflict(iis.DuplicateEntry("site", "name", "x"))
    assert not iis.is_commit_conflict(iis.NotYetKnown())
    fixed = "if ($e -is [System.IO.FileLoadException] -or $e.HResult -eq -2147024864)"
    by_text = "if ($e.Message -match 'changed on disk|Cannot write configuration file' -or $e.HResult -eq -2147024864)"
    also_text = fixed.replace("-or $e.HResult", "-or $e.Message -like '*changed on disk*' -or $e.HResult")
    as_string = fixed.replace("$e -is [System.IO.FileLoadException]", "$e.ToString().Contains('changed on disk')")
    for operation in iis_common.IIS_SCRIPT_OPERATIONS:
        resource, verb = operation.split("/")
        for old in (by_text, also_text, as_string):
            assert refused(operation, unfixed(resource, verb, fixed, old)), (operation, old)
    # A comment that names the message does not count as matching it.
    loop = "    for ($e = $Exception; $null -ne $e; $e = $e.InnerException) {\n"
    commented = unfixed("iis_site", "set", loop, "    # never: $e.Message -match 'changed on disk'\n" + loop)
    assert refused("iis_site/set", commented) == []


def test_a_default_site_removal_that_fails_leaves_no_owner_record(state: Path) -> None:
    from devhost.ops import ownership

    manager = iis.ServerManager(state)
    site = manager.add_site("Other", "C:\\other", None)
    manager.root_application(site).set("applicationPool", iis.DEFAULT_POOL)
    manager.commit()
    spec = removal_spec()
    refused = iis_default_site_removal.set_(WindowsFs(state), spec)
    assert not refused.ok and refused.error and refused.error["id"] == "AppPoolInUse"
    folder = ownership.folder("IisDefaultSiteRemoval", iis.DEFAULT_SITE)
    assert ownership.records(WindowsFs(state), folder) == [], "no resource was created: no share is held"
    assert iis.ServerManager(state).find_site(iis.DEFAULT_SITE) is not None


def test_a_state_from_before_owners_were_recorded_restores_the_stock_site_and_pool(state: Path) -> None:
    before = ET.tostring(ET.parse(iis.config_file(state)).getroot())
    manager = iis.ServerManager(state)
    manager.remove_site(iis.DEFAULT_SITE)
    manager.remove_pool(iis.DEFAULT_POOL)
    manager.commit()  # removed by an earlier version of the resource: no owner records
    spec = {
        "site_name": iis.DEFAULT_SITE,
        "pool_name": iis.DEFAULT_POOL,
        "owner": "",
        "previous_owner": "",
        "restore_site": True,
        "restore_pool": True,
    }
    restored = iis_default_site_removal.remove(WindowsFs(state), spec)
    assert restored.ok and restored.state["ensure"] == "absent"
    assert ET.tostring(ET.parse(iis.config_file(state)).getroot()) == before
    assert iis.ServerManager(state).site_state(iis.DEFAULT_SITE) == "Started"


def test_a_new_owner_id_moves_the_removal_record(state: Path) -> None:
    from devhost.ops import ownership

    spec = {
        "site_name": iis.DEFAULT_SITE,
        "pool_name": iis.DEFAULT_POOL,
        "owner": "stack/old-name",
        "previous_owner": "",
        "restore_site": False,
        "restore_pool": False,
    }
    assert iis_default_site_removal.set_(WindowsFs(state), spec).ok
    moved = {**spec, "owner": "stack/new-name", "previous_owner": "stack/old-name"}
    assert iis_default_site_removal.set_(WindowsFs(state), moved).ok
    folder = ownership.folder("IisDefaultSiteRemoval", iis.DEFAULT_SITE)
    assert [r["owner"] for r in ownership.records(WindowsFs(state), folder)] == ["stack/new-name"]
    restored = iis_default_site_removal.remove(WindowsFs(state), {**moved, "previous_owner": ""})
    assert restored.ok and restored.state["site_present"] is True

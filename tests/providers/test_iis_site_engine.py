"""IisSite and IisDefaultSiteRemoval through the real Pulumi CLI against the host under test."""

from __future__ import annotations

import datetime
import random
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import pulumi
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from devhost import certstore, iis
from providers.iis_app_pool import IisAppPool
from providers.iis_default_site_removal import IisDefaultSiteRemoval
from providers.iis_site import IisSite, IisSiteModel
from tests.providers.test_iis_app_pool_engine import (
    Engine,
    changed_properties,
    host_state,
    install_iis,
    secret_connection,
    unique,
)
from tests.support.hosts import Target

pytestmark = pytest.mark.engine


@pytest.fixture(autouse=True)
def _iis(target: Target) -> None:
    install_iis(target)


def free_port() -> int:
    return random.randint(20000, 60000)


def site_on_host(target: Target, name: str) -> dict[str, Any]:
    spec = IisSiteModel.model_validate(
        {
            "connection": target.connection,
            "name": name,
            "physical_path": "C:\\x",
            "app_pool": "x",
            "bindings": [{"protocol": "http", "port": 1}],
        }
    )
    return host_state(target, "providers.iis_site", spec.script_input())


def site_program(target: Target, desired: dict[str, Any]) -> Callable[[], None]:
    """A pool and a site in it; the site's inputs are read from ``desired`` at each run."""

    def program() -> None:
        conn = secret_connection(target)
        pool = IisAppPool("pool", connection=conn, name=desired["app_pool"])
        site = IisSite("site", connection=conn, **desired, opts=pulumi.ResourceOptions(depends_on=[pool]))
        pulumi.export("site_id", site.site_id)

    return program


def import_certificate(target: Target, host: str) -> str:
    """A self-signed server certificate in the simulated LocalMachine\\My; returns its thumbprint."""
    assert target.state_dir is not None
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    pfx = pkcs12.serialize_key_and_certificates(
        b"t", key, certificate, None, serialization.BestAvailableEncryption(b"pw")
    )
    return certstore.admin_import_pfx(target.state_dir, pfx, "pw").thumbprint


def test_site_lifecycle_with_bindings_drift_and_destroy(target: Target, engine: Engine) -> None:
    port = free_port()
    desired: dict[str, Any] = {
        "name": unique("UcSite"),
        "app_pool": unique("UcSitePool"),
        "physical_path": "C:\\UsercubeIacTests\\Runtime",
        "bindings": [{"protocol": "http", "port": port, "host_header": "agent.contoso.com"}],
    }
    stack = engine(site_program(target, desired))
    created = stack.up()
    assert created.ok, created.output
    state = site_on_host(target, desired["name"])
    assert state["state"] == "Started" and state["preload_enabled"] is True and state["app_pool"] == desired["app_pool"]
    assert state["bindings"][0]["binding_information"] == f"*:{port}:agent.contoso.com"

    mark = target.journal_mark() if target.simulated else 0
    assert stack.up().summary == {"same": 3}
    if target.simulated:
        assert target.operations_since(mark) == []

    desired["bindings"] = [{"protocol": "http", "port": port + 1, "host_header": "agent.contoso.com"}]
    preview = stack.preview(diff=True)
    assert changed_properties(preview.stdout) == {"bindings", "port"}, preview.stdout  # bindings[0].port
    assert "(update)" in preview.stdout and "replace" not in preview.stdout
    desired["physical_path"] = "C:\\UsercubeIacTests\\Runtime2"
    updated = stack.up()
    assert updated.ok and updated.summary.get("update") == 1, updated.output
    state = site_on_host(target, desired["name"])
    assert state["physical_path"] == desired["physical_path"]
    assert [b["binding_information"] for b in state["bindings"]] == [f"*:{port + 1}:agent.contoso.com"]

    if target.simulated:
        assert target.state_dir is not None
        iis.admin_set_site_physical_path(target.state_dir, desired["name"], "C:\\elsewhere")
        iis.admin_add_binding(target.state_dir, desired["name"], "http", f"*:{port + 2}:")
        # WCF non-HTTP activation's kind of binding: no ip:port:host, still drift (review of B2).
        iis.admin_add_binding(target.state_dir, desired["name"], "net.tcp", "808:*")
        drift = stack.refresh(expect_no_changes=True)
        assert not drift.ok and "site" in drift.output
        assert "~bindings" in drift.output and "Exception" not in drift.output, drift.output
        assert stack.up().ok
        assert stack.refresh(expect_no_changes=True).ok
        assert len(site_on_host(target, desired["name"])["bindings"]) == 1

    assert stack.destroy().ok
    assert site_on_host(target, desired["name"])["ensure"] == "absent"


def test_https_binding_with_sni_and_its_certificate(simulated: Target, engine: Engine) -> None:
    assert simulated.state_dir is not None
    host = f"{unique('im')}.contoso.com"
    first, second = import_certificate(simulated, host), import_certificate(simulated, host)
    port = free_port()
    binding = {"protocol": "https", "port": port, "host_header": host, "sni": True, "certificate_thumbprint": first}
    desired: dict[str, Any] = {
        "name": unique("UcTls"),
        "app_pool": unique("UcTlsPool"),
        "physical_path": "C:\\UsercubeIacTests\\Tls",
        "bindings": [binding],
    }
    stack = engine(site_program(simulated, desired))
    assert stack.up().ok
    assert iis.sslcerts(simulated.state_dir)[f"{host}:{port}"] == {"hash": first, "store": "My"}

    desired["bindings"] = [{**binding, "certificate_thumbprint": second.lower()}]  # renewed certificate
    preview = stack.preview(diff=True)
    assert changed_properties(preview.stdout) == {"bindings", "certificate_thumbprint"}, preview.stdout
    assert stack.up().summary.get("update") == 1
    assert iis.sslcerts(simulated.state_dir)[f"{host}:{port}"]["hash"] == second

    desired["bindings"] = [{**binding, "certificate_thumbprint": "AB" * 20}]
    missing = stack.up()
    assert not missing.ok and "[CertificateNotFound]" in missing.output
    assert "bindings.0.certificate_thumbprint" in missing.output
    desired["bindings"] = [{**binding, "certificate_thumbprint": second}]
    assert stack.destroy().ok
    assert f"{host}:{port}" not in iis.sslcerts(simulated.state_dir), "removing the binding frees HTTP.sys"


def test_binding_used_by_another_site_is_refused(target: Target, engine: Engine) -> None:
    desired: dict[str, Any] = {
        "name": unique("UcDup"),
        "app_pool": unique("UcDupPool"),
        "physical_path": "C:\\UsercubeIacTests\\Dup",
        "bindings": [{"protocol": "http", "port": 80}],  # the Default Web Site's *:80:
    }
    stack = engine(site_program(target, desired))
    run = stack.up()
    assert not run.ok and "[BindingInUse]" in run.output and "Default Web Site" in run.output
    assert site_on_host(target, desired["name"])["ensure"] == "absent"
    assert stack.destroy().ok  # the pool it created


def removal_program(target: Target) -> Callable[[], None]:
    def program() -> None:
        removal = IisDefaultSiteRemoval("defaults", connection=secret_connection(target))
        pulumi.export("removed_site", removal.removed_site)

    return program


def defaults_snapshot(target: Target) -> tuple[set[str], set[str], bytes | None, bytes | None]:
    """Pools, sites, and the default pool and site elements (order among other pools is IIS's business)."""
    assert target.state_dir is not None
    manager = iis.ServerManager(target.state_dir)
    site, pool = manager.find_site(iis.DEFAULT_SITE), manager.find_pool(iis.DEFAULT_POOL)
    return (
        set(manager.pool_names()),
        set(manager.site_names()),
        ET.tostring(site) if site is not None else None,
        ET.tostring(pool) if pool is not None else None,
    )


def test_default_site_removal_and_destroy_restores_it(simulated: Target, engine: Engine) -> None:
    assert simulated.state_dir is not None
    before = defaults_snapshot(simulated)
    stack = engine(removal_program(simulated))
    assert stack.up().ok
    assert stack.outputs()["removed_site"] is True
    manager = iis.ServerManager(simulated.state_dir)
    assert manager.find_site(iis.DEFAULT_SITE) is None and manager.find_pool(iis.DEFAULT_POOL) is None
    assert stack.up().summary == {"same": 2}
    assert stack.refresh(expect_no_changes=True).ok
    assert stack.destroy().ok
    assert defaults_snapshot(simulated) == before
    assert iis.ServerManager(simulated.state_dir).site_state(iis.DEFAULT_SITE) == "Started"


def test_a_reply_lost_after_the_removal_still_restores_on_destroy(simulated: Target, engine: Engine) -> None:
    assert simulated.state_dir is not None
    before = defaults_snapshot(simulated)
    stack = engine(removal_program(simulated))
    mark = simulated.journal_mark()
    simulated.set_knobs(faults=[{"kind": "drop", "on": "Receive", "when": "after"}])  # the set's answer
    try:
        removed = stack.up()
    finally:
        simulated.set_knobs()
    assert removed.ok, removed.output
    assert any(e["kind"] == "fault" for e in simulated.journal_since(mark)), "the reply was not lost"
    assert simulated.operations_since(mark).count("iis_default_site_removal/set") == 2, "the set was not retried"
    assert stack.outputs()["removed_site"] is True, "the retry found the site gone, removed by itself"
    assert stack.destroy().ok
    assert defaults_snapshot(simulated) == before


def test_destroy_restores_the_site_and_pool_that_were_removed_not_stock_ones(simulated: Target, engine: Engine) -> None:
    state_dir = simulated.state_dir
    assert state_dir is not None
    port = free_port()
    thumbprint = import_certificate(simulated, "default.contoso.com")
    iis.admin_add_binding(state_dir, iis.DEFAULT_SITE, "http", f"*:{port}:")
    iis.admin_add_binding(state_dir, iis.DEFAULT_SITE, "https", f"*:{port + 1}:")
    iis.admin_bind_sslcert(state_dir, f"0.0.0.0:{port + 1}", thumbprint)
    iis.admin_set_pool_attribute(state_dir, iis.DEFAULT_POOL, "managedPipelineMode", "Classic")
    iis.admin_set_pool_attribute(state_dir, iis.DEFAULT_POOL, "processModel/idleTimeout", "00:45:00")
    iis.admin_set_state(state_dir, "site", iis.DEFAULT_SITE, "Stopped")
    iis.admin_set_state(state_dir, "pool", iis.DEFAULT_POOL, "Stopped")
    before = defaults_snapshot(simulated)
    try:
        stack = engine(removal_program(simulated))
        assert stack.up().ok
        manager = iis.ServerManager(state_dir)
        assert manager.find_site(iis.DEFAULT_SITE) is None and manager.find_pool(iis.DEFAULT_POOL) is None
        assert f"0.0.0.0:{port + 1}" not in iis.sslcerts(state_dir)
        assert stack.destroy().ok
        assert defaults_snapshot(simulated) == before, "bindings and pool settings as they were"
        assert iis.sslcerts(state_dir)[f"0.0.0.0:{port + 1}"]["hash"] == thumbprint, "its certificate binding too"
        manager = iis.ServerManager(state_dir)
        assert manager.site_state(iis.DEFAULT_SITE) == "Stopped" and manager.pool_state(iis.DEFAULT_POOL) == "Stopped"
    finally:  # back to the stock site and pool, for the other tests
        iis.admin_remove_binding(state_dir, iis.DEFAULT_SITE, "http", f"*:{port}:")
        iis.admin_remove_binding(state_dir, iis.DEFAULT_SITE, "https", f"*:{port + 1}:")
        iis.admin_delete_sslcert(state_dir, f"0.0.0.0:{port + 1}")
        manager = iis.ServerManager(state_dir)
        pool = manager.find_pool(iis.DEFAULT_POOL)
        assert pool is not None
        pool.attrib.pop("managedPipelineMode", None)
        for child in list(pool):
            pool.remove(child)
        pool.text = None
        manager.commit()
        iis.admin_set_state(state_dir, "pool", iis.DEFAULT_POOL, "Started")
        iis.admin_set_state(state_dir, "site", iis.DEFAULT_SITE, "Started")


def test_the_first_up_after_an_upgrade_keeps_the_restore_of_an_older_state(simulated: Target, engine: Engine) -> None:
    # A state written before owners were recorded on the host: no owner id in it, no records on the host, only
    # removed_site / removed_pool. The first up is an update (the new owner id); it must keep the restore.
    from devhost.fs import WindowsFs
    from devhost.ops import ownership

    state_dir = simulated.state_dir
    assert state_dir is not None
    before = defaults_snapshot(simulated)
    stack = engine(removal_program(simulated))
    assert stack.up().ok
    deployment = stack.stack.export_stack()
    for resource in deployment.deployment["resources"]:
        if resource["type"].endswith(":IisDefaultSiteRemoval"):
            resource["inputs"]["owner"] = ""
            resource["outputs"]["owner"] = ""
    stack.stack.import_stack(deployment)
    folder = ownership.folder("IisDefaultSiteRemoval", iis.DEFAULT_SITE)
    ownership.remove_folder(WindowsFs(state_dir), folder)  # (the earlier version wrote none)
    assert not WindowsFs(state_dir).resolve(folder).exists()
    upgraded = stack.up()
    assert upgraded.ok and upgraded.summary.get("update") == 1, upgraded.output
    assert stack.outputs()["removed_site"] is True
    destroyed = stack.destroy()
    assert destroyed.ok, destroyed.output
    assert defaults_snapshot(simulated) == before, "the stock site and pool are back"


def test_two_removals_restore_only_when_the_last_one_goes(simulated: Target, engine: Engine) -> None:
    assert simulated.state_dir is not None
    before = defaults_snapshot(simulated)
    first, second = engine(removal_program(simulated)), engine(removal_program(simulated))
    assert first.up().ok and second.up().ok
    assert first.outputs()["removed_site"] is True
    assert second.outputs()["removed_site"] is True, "both hold the removal of what was there"
    destroyed = first.destroy()
    assert destroyed.ok and "1 other owner(s) of the removal remain" in destroyed.output, destroyed.output
    manager = iis.ServerManager(simulated.state_dir)
    assert manager.find_site(iis.DEFAULT_SITE) is None, "the other stack still wants port 80 free"
    assert second.refresh(expect_no_changes=True).ok
    assert second.destroy().ok
    assert defaults_snapshot(simulated) == before


HTTP = {"protocol": "http", "port": 8080}
BAD_SITES: list[tuple[dict[str, Any], str, str]] = [
    ({"name": "Bad?Site"}, "name", "IIS refuses"),
    ({"bindings": [{**HTTP, "port": 0}]}, "bindings.0.port", "greater than or equal to 1"),
    ({"bindings": [{**HTTP, "port": 70000}]}, "bindings.0.port", "less than or equal to 65535"),
    ({"bindings": [{**HTTP, "ip_address": "10.0.0.300"}]}, "bindings.0.ip_address", "not '*' or an IP address"),
    ({"bindings": [{**HTTP, "protocol": "https", "certificate_thumbprint": "XYZ"}]}, "certificate_thumbprint", "40"),
    ({"bindings": [{**HTTP, "certificate_thumbprint": "AB" * 20}]}, "bindings.0", "http binding takes no"),
    (
        {"bindings": [{**HTTP, "protocol": "https", "certificate_thumbprint": "AB" * 20, "sni": True}]},
        "bindings.0",
        "sni needs a host_header",
    ),
    ({"bindings": [HTTP, HTTP]}, "bindings", "both use"),
    (
        {
            "bindings": [
                {**HTTP, "protocol": "https", "port": 443, "host_header": host, "certificate_thumbprint": t}
                for host, t in (("a.contoso.com", "AB" * 20), ("b.contoso.com", "CD" * 20))
            ]
        },
        "bindings",
        "one certificate per address and port",
    ),
    ({"physical_path": "C:/inetpub/agent"}, "physical_path", "backslashes"),
    ({"bindings": [{**HTTP, "host_header": "bad_host!"}]}, "bindings.0.host_header", "not a DNS host name"),
]


@pytest.mark.parametrize(
    ("inputs", "names", "message"), BAD_SITES, ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD_SITES)]
)
def test_bad_input_is_refused_before_any_host_call(
    simulated: Target, engine: Engine, inputs: dict[str, Any], names: str, message: str
) -> None:
    desired = {"name": unique("UcBad"), "physical_path": "C:\\x", "bindings": [HTTP], **inputs}

    def program() -> None:
        IisSite("site", connection=secret_connection(simulated), app_pool="NoSuchPool", **desired)

    mark = simulated.journal_mark()
    run = engine(program).up()
    assert not run.ok
    assert names in run.output and message in run.output, run.output
    assert simulated.journal_since(mark) == []

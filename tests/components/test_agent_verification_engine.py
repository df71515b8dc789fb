"""The agents' verification (on by default, `verify`) through the real Pulumi CLI against a SIMULATED host of its
own per test: a healthy agent passes; each cause of an agent that does not answer is produced on the host and
named in the error; `verify: false` runs no check.

Each cause is produced the way it happens on a real server, out of band (an administrator, an IIS reinstall, a
certificate rotation by hand), while the check is not declared; then the check is declared again and `up` must
fail naming the cause; then `up --refresh` (or the named fix) must make it pass."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components.args import AgentSettings, Identity, PfxCertificate, WebHosting
from components.integrated_agent import IntegratedAgent, IntegratedAgentArgs
from components.production_agent import ProductionAgent, ProductionAgentArgs
from devhost import accounts, certstore, https, iis, scm
from tests.providers.test_certificate_engine import PASSWORD, make_pfx
from tests.support.engine import EngineStack
from tests.support.hosts import Target, start_simulator, stop_simulator

pytestmark = pytest.mark.engine
Engine = Callable[[Callable[[], None]], EngineStack]
ORG = "Contoso"
ROOT = f"C:\\identitymanager{ORG}"
RUNTIME = f"{ROOT}\\Runtime"
SITE, POOL, HOST = f"Identity Manager Agent {ORG}", f"IdentityManagerAgent{ORG}", "agent.contoso.example"
IDENTITY = f"IIS APPPOOL\\{POOL}"


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Target]:
    """A fresh simulated server as the manual's prerequisites leave it, with the vendor's runtime extracted."""
    target = start_simulator(tmp_path / "host")
    assert target.state_dir is not None
    iis.ensure_installed(target.state_dir)
    iis.install_hosting_bundle(target.state_dir, "8.0.11")
    for app in ("identitymanager-Agent.dll", "identitymanager-Server.dll", "Usercube-Agent.exe"):
        https.write_stand_in_runtime(target.state_dir, RUNTIME, app)
    try:
        yield target
    finally:
        stop_simulator(target)


def state(target: Target) -> Path:
    assert target.state_dir is not None
    return target.state_dir


def secret(value: str) -> pulumi.Output[str]:
    return pulumi.Output.secret(value)


def pfx(data: str) -> PfxCertificate:
    return PfxCertificate(pfx_base64=secret(data), password=secret(PASSWORD))


def connection(target: Target) -> dict[str, Any]:
    return {**target.connection, "password": secret(target.connection["password"])}


def settings() -> AgentSettings:
    return AgentSettings(
        agent_identifier="Contoso-A1",
        application_uri="https://identitymanager.contoso.example",
        openid_clients={"Job": secret("job-secret")},
        default_openid_client="Job",
    )


def agent_program(target: Target, toggles: dict[str, Any]) -> Callable[[], None]:
    def program() -> None:
        agent = ProductionAgent(
            "agent",
            ProductionAgentArgs(
                organization=ORG,
                hosting=toggles.get("hosting", "iis"),
                web=WebHosting(site_name=SITE, pool_name=POOL, host_name=HOST, remove_default_site=False),
                identity=toggles.get("identity", Identity()),
                ssl_certificate=pfx(toggles["ssl"]),
                encryption_certificate=pfx(toggles["encryption"]),
                settings=settings(),
                verify=toggles["verify"],
            ),
            connection=connection(target),
        )
        pulumi.export("encryption", agent.encryption_thumbprint)
        if agent.ssl_thumbprint is not None:
            pulumi.export("ssl", agent.ssl_thumbprint)

    return program


def checks(target: Target, mark: int) -> list[bool]:
    return [bool(e["ok"]) for e in target.operation_events_since(mark) if e["op"] == "agent_verification/get"]


class Tour:
    """Produces one cause after another on a deployed agent and checks that the error names it."""

    def __init__(self, target: Target, stack: EngineStack, toggles: dict[str, Any]) -> None:
        self.target, self.stack, self.toggles = target, stack, toggles

    def named(self, fault: Callable[[], None], *expected: str, repair: Callable[[], None] | None = None) -> str:
        self.toggles["verify"] = False
        assert self.stack.up().ok  # the check goes (a check leaves nothing on the host to remove)
        fault()
        self.toggles["verify"] = True
        mark = self.target.journal_mark()
        failed = self.stack.up()
        assert not failed.ok, failed.output
        assert checks(self.target, mark) == [False]
        for text in ("[AgentNotAnswering]", *expected):
            assert text in failed.output, (text, failed.output[-3000:])
        if repair is not None:
            repair()
        repaired = self.stack.up(refresh=True)
        assert repaired.ok, repaired.output
        return failed.output


def test_a_healthy_agent_passes_and_each_cause_is_named(host: Target, engine: Engine) -> None:
    toggles: dict[str, Any] = {"verify": True, "ssl": make_pfx(cn=HOST), "encryption": make_pfx(cn="enc")}
    stack = engine(agent_program(host, toggles))
    mark = host.journal_mark()
    first = stack.up()
    assert first.ok, first.output
    assert checks(host, mark) == [True], "the healthy agent answers over HTTPS with its host name"
    ssl, encryption = stack.outputs()["ssl"], stack.outputs()["encryption"]
    mark = host.journal_mark()
    assert stack.up().summary.get("same") and checks(host, mark) == [], "an unchanged agent is not checked again"
    assert stack.refresh(expect_no_changes=True).ok and checks(host, mark) == [True], "refresh asks again"
    tour = Tour(host, stack, toggles)
    url = f"https://{HOST}"

    # The application pool stopped by hand: HTTP.sys answers 503 itself.
    tour.named(
        lambda: iis.admin_set_state(state(host), "pool", POOL, "Stopped"),
        f"{url}: HTTP.sys answered HTTP 503 itself",
        f"the application pool '{POOL}' is stopped",
    )
    # The site stopped: nothing listens on 443 any more.
    tour.named(
        lambda: iis.admin_set_state(state(host), "site", SITE, "Stopped"),
        "the connection was refused: nothing listens on port 443",
        f"the IIS site '{SITE}' is stopped",
    )
    # The https binding removed in IIS Manager: no started site listens on 443.
    tour.named(
        lambda: iis.admin_remove_binding(state(host), SITE, "https", f"*:443:{HOST}"),
        "the connection was refused",
        f"the site has no https binding for {HOST}:443",
    )
    # HTTP.sys's certificate binding deleted (netsh http delete sslcert): the handshake gets no certificate.
    tour.named(
        lambda: iis.admin_delete_sslcert(state(host), f"{HOST}:443"),
        f"the TLS handshake for {HOST} failed: no certificate was served",
        f"no certificate is bound to https {HOST}:443 in HTTP.sys",
    )
    # The SSL certificate deleted from the store: HTTP.sys has a binding to a certificate it cannot load.
    tour.named(
        lambda: certstore.admin_remove(state(host), ssl),
        f"the TLS handshake for {HOST} failed",
        f"the certificate bound to https {HOST}:443 ({ssl}) is missing from LocalMachine\\My",
    )
    # Another certificate bound by hand: it answers, with the wrong certificate.
    tour.named(
        lambda: iis.admin_bind_sslcert(state(host), f"{HOST}:443", encryption),
        f"it serves certificate {encryption}",
        f"not {ssl}, the one the stack bound",
        repair=lambda: iis.admin_bind_sslcert(state(host), f"{HOST}:443", ssl),
    )
    # AspNetCoreModuleV2 gone (IIS reinstalled after the bundle): IIS cannot read web.config.
    tour.named(
        lambda: iis.remove_global_module(state(host), iis.ASPNETCORE_MODULE),
        "/ answered HTTP 500.19",
        "AspNetCoreModuleV2 is missing from IIS",
        repair=lambda: iis.install_hosting_bundle(state(host), "8.0.11"),  # the repair
    )
    # The hosting bundle's runtime gone (uninstalled): ANCM finds no ASP.NET Core 8.0.
    runtime_key = f"{iis.ASPNETCORE_SHARED_FRAMEWORK}\\v8.0\\8.0.11"
    tour.named(
        lambda: iis.set_registry_key(state(host), runtime_key, None),
        "/ answered HTTP 500.31",
        "no ASP.NET Core runtime 8.0 is installed",
        repair=lambda: iis.install_hosting_bundle(state(host), "8.0.11"),
    )
    # The runtime missing from Runtime (never extracted, or deleted).
    dll = host.windows_file(f"{RUNTIME}\\identitymanager-Agent.dll")
    tour.named(
        dll.unlink,
        "/ answered HTTP 500.31",
        f"the agent's runtime is missing: {RUNTIME}\\identitymanager-Agent.dll does not exist",
        repair=lambda: https.write_stand_in_runtime(state(host), RUNTIME, "identitymanager-Agent.dll"),
    )
    # The encryption key's read access taken from the pool identity: the agent fails at start.
    tour.named(
        lambda: certstore.admin_revoke_key_access(state(host), encryption, IDENTITY),
        "/ answered HTTP 500.30",
        f"the private key of certificate {encryption} is not readable by {IDENTITY}",
    )


def test_the_servers_health_check_must_answer_healthy(host: Target, engine: Engine) -> None:
    certificates = {"ssl": make_pfx(cn="im.contoso.example"), "enc": make_pfx(cn="enc"), "ids": make_pfx(cn="ids")}
    toggles: dict[str, Any] = {"verify": True}

    def program() -> None:
        server = IntegratedAgent(
            "server",
            IntegratedAgentArgs(
                organization=ORG,
                web=WebHosting(
                    site_name=f"Identity Manager {ORG}",
                    pool_name=f"IdentityManager{ORG}",
                    host_name="im.contoso.example",
                    remove_default_site=False,
                ),
                ssl_certificate=pfx(certificates["ssl"]),
                encryption_certificate=pfx(certificates["enc"]),
                identity_server_certificate=pfx(certificates["ids"]),
                license=secret("LICENSE"),
                connection_string=secret("data source=.;Integrated Security=SSPI"),
                verify=toggles["verify"],
            ),
            connection=connection(host),
        )
        pulumi.export("encryption", server.encryption_thumbprint)

    stack = engine(program)
    mark = host.journal_mark()
    first = stack.up()
    assert first.ok, first.output
    assert checks(host, mark) == [True], "/hc answered Healthy"
    request = [r for r in host.requests_since(mark) if "# op: agent_verification/get" in r["script"]]
    assert '"path":"/hc"' in request[0]["input"] and '"expect_body":"Healthy"' in request[0]["input"]

    identity_server = next(
        c.thumbprint for c in certstore.CertStore(state(host)).entries("LocalMachine", "My") if "ids" in c.subject
    )
    output = Tour(host, stack, toggles).named(
        lambda: certstore.admin_revoke_key_access(state(host), identity_server, f"IIS APPPOOL\\IdentityManager{ORG}"),
        "https://im.contoso.example/hc: /hc answered HTTP 500.30",
        "not 200 'Healthy'",
        f"the private key of certificate {identity_server} is not readable",
    )
    assert "LICENSE" not in output

    # The server runs but its health checks fail: ASP.NET Core answers 503 'Unhealthy', or 200 'Degraded' (a
    # status code alone would pass that one).
    tour = Tour(host, stack, toggles)
    for status, code in (("Unhealthy", 503), ("Degraded", 200)):
        output = tour.named(
            lambda status=status: https.admin_set_server_health(state(host), status),
            f"https://im.contoso.example/hc: /hc answered HTTP {code} '{status}', not 200 'Healthy'",
            repair=lambda: https.admin_set_server_health(state(host), "Healthy"),
        )
        assert "LICENSE" not in output and "Integrated Security" not in output


def test_a_service_agent_must_run_with_its_runtime(host: Target, engine: Engine) -> None:
    gmsa = "CONTOSO\\svc-agent$"
    accounts.add_account(state(host), gmsa, "gmsa")
    toggles: dict[str, Any] = {
        "verify": True,
        "hosting": "service",
        "identity": Identity(kind="GroupManagedServiceAccount", account=gmsa),
        "ssl": make_pfx(cn=HOST),
        "encryption": make_pfx(cn="enc"),
    }
    stack = engine(agent_program(host, toggles))
    mark = host.journal_mark()
    first = stack.up()
    assert first.ok, first.output
    assert checks(host, mark) == [True]
    service = f"IdentityManagerAgent{ORG}"
    tour = Tour(host, stack, toggles)
    tour.named(lambda: scm.admin_stop_service(state(host), service), f"the service '{service}' is stopped")
    exe = host.windows_file(f"{RUNTIME}\\Usercube-Agent.exe")

    def lose_runtime() -> None:
        scm.admin_stop_service(state(host), service)
        exe.unlink()

    tour.named(
        lose_runtime,
        f"the agent's runtime is missing: {RUNTIME}\\Usercube-Agent.exe does not exist",
        repair=lambda: https.write_stand_in_runtime(state(host), RUNTIME, "Usercube-Agent.exe"),
    )


def test_verify_false_runs_no_check(host: Target, engine: Engine) -> None:
    toggles: dict[str, Any] = {"verify": False, "ssl": make_pfx(cn=HOST), "encryption": make_pfx(cn="enc")}
    host.windows_file(f"{RUNTIME}\\identitymanager-Agent.dll").unlink()  # an agent that cannot answer
    stack = engine(agent_program(host, toggles))
    mark = host.journal_mark()
    run = stack.up()
    assert run.ok, run.output
    assert checks(host, mark) == [] and "AgentVerification" not in stack.export()
    assert stack.refresh(expect_no_changes=True).ok and checks(host, mark) == []

"""The agent components end to end: the manual's whole installation through the real Pulumi CLI."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pulumi
import pytest

from components.args import AgentSettings, Identity, PfxCertificate, RuntimeArchiveSource, WebHosting
from components.building_blocks import RuntimeFiles
from components.integrated_agent import IntegratedAgent, IntegratedAgentArgs
from components.integrated_agent import runtime_files as integrated_runtime_files
from components.production_agent import ProductionAgent, ProductionAgentArgs
from components.production_agent import runtime_files as production_runtime_files
from devhost import accounts, https, iis
from devhost.ops.file_acl import admin_read_as
from providers.runtime_archive.local import inspect_archive
from tests.providers.test_certificate_engine import PASSWORD, make_pfx
from tests.providers.test_iis_app_pool_engine import install_iis
from tests.support.engine import EngineStack
from tests.support.hosts import Target
from tests.support.zips import write_zip

pytestmark = pytest.mark.engine
Engine = Callable[[Callable[[], None]], EngineStack]


def secret(value: str) -> pulumi.Output[str]:
    return pulumi.Output.secret(value)


def pfx(pfx_base64: str) -> PfxCertificate:
    """Outputs must be made inside the program (the engine runs it on its own event loop)."""
    return PfxCertificate(pfx_base64=secret(pfx_base64), password=secret(PASSWORD))


def connection(target: Target) -> dict[str, Any]:
    return {**target.connection, "password": secret(target.connection["password"])}


def production_program(target: Target, org: str, desired: dict[str, Any]) -> Callable[[], None]:
    def program() -> None:
        agent = ProductionAgent(
            "agent",
            ProductionAgentArgs(
                organization=org,
                working_directory=f"C:\\UsercubeIacTests\\identitymanager{org}",
                web=WebHosting(
                    site_name=f"Identity Manager Agent {org}",
                    pool_name=f"IdentityManagerAgent{org}",
                    host_name=f"agent-{org.lower()}.contoso.example",
                    remove_default_site=False,
                ),
                ssl_certificate=pfx(desired["ssl"]),
                encryption_certificate=pfx(desired["encryption"]),
                settings=AgentSettings(
                    agent_identifier=desired["agent_identifier"],
                    application_uri="https://identitymanager.contoso.example",
                    openid_clients={"Job": secret(desired["client_secret"])},
                    default_openid_client="Job",
                    connections={"ADExport": {"Login": "CONTOSO\\svc-ad", "Password": secret(desired["ad_password"])}},
                ),
                # Also against a real host, where no vendor runtime is extracted: the verification has its own
                # tests (tests/components/test_agent_verification_engine.py).
                verify=False,
            ),
            connection=connection(target),
        )
        pulumi.export("identity", agent.identity_account)

    return program


@pytest.fixture(autouse=True)
def _prepared_server(target: Target) -> None:
    install_iis(target)


def local_user(target: Target) -> str:
    """An ordinary local account of the simulated host (member of BUILTIN\\Users, as every account)."""
    assert target.state_dir is not None
    return accounts.add_account(target.state_dir, "SIMHOST\\alice", "user", "Alice-Passw0rd").name


def can_read(target: Target, windows_path: str, account: str) -> bool:
    """Whether a program running as ``account`` may open the file for reading (the simulator's access check)."""
    assert target.state_dir is not None
    try:
        admin_read_as(target.state_dir, windows_path, account)
    except PermissionError:
        return False
    return True


def leftovers(target: Target, root: str) -> list[str]:
    """Backups and temporary files of settings files anywhere under ``root`` on the simulated host."""
    folder = target.windows_file(root)
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.suffix in (".bak", ".tmp"))


def test_production_agent_installs_as_the_manual_says_and_converges(target: Target, engine: Engine) -> None:
    org = f"T{uuid.uuid4().hex[:6]}"
    client_secret = f"client-{uuid.uuid4().hex}"
    ad_password = f"ad-{uuid.uuid4().hex}"
    desired = {
        "ssl": make_pfx(cn=f"agent-{org.lower()}.contoso.example"),
        "encryption": make_pfx(cn=f"IdentityManager{org}"),
        "agent_identifier": "A1",
        "client_secret": client_secret,
        "ad_password": ad_password,
    }
    stack = engine(production_program(target, org, desired))
    first = stack.up()
    assert first.ok, first.output
    assert first.summary.get("create") == 16  # stack, component, 14 Windows resources
    assert stack.outputs()["identity"] == f"IIS APPPOOL\\IdentityManagerAgent{org}"

    if target.simulated:
        assert target.state_dir is not None
        root = f"C:\\UsercubeIacTests\\identitymanager{org}"
        settings = json.loads(target.windows_file(f"{root}\\Runtime\\appsettings.agent.json").read_text())
        assert settings["OpenId"]["AgentIdentifier"] == "A1"
        assert settings["OpenIdClients"]["Job"] == client_secret
        assert settings["Connections"]["ADExport"]["Password"] == ad_password
        assert len(settings["EncryptionCertificate"]["Thumbprint"]) == 40
        web_config = target.windows_file(f"{root}\\Runtime\\web.config").read_text()
        assert 'arguments="./identitymanager-Agent.dll"' in web_config and 'hostingModel="inprocess"' in web_config
        tree = ElementTree.parse(iis.config_file(target.state_dir))
        pool = tree.find(f".//applicationPools/add[@name='IdentityManagerAgent{org}']")
        assert pool is not None
        assert pool.get("managedRuntimeVersion") == ""  # No Managed Code (mandatory)
        assert pool.get("startMode") == "AlwaysRunning"
        assert pool.find("processModel").get("idleTimeout") == "00:00:00"  # type: ignore[union-attr]
        assert pool.find("recycling/periodicRestart").get("time") == "00:00:00"  # type: ignore[union-attr]
        site = tree.find(f".//sites/site[@name='Identity Manager Agent {org}']")
        assert site is not None
        assert site.find("application").get("preloadEnabled") == "true"  # type: ignore[union-attr]
        binding = site.find("bindings/binding")
        assert binding is not None and binding.get("protocol") == "https"
        assert binding.get("bindingInformation") == f"*:443:agent-{org.lower()}.contoso.example"
        for folder in ("Runtime", "Mails", "Sources", "Temp", "Work"):
            assert target.windows_file(f"{root}\\{folder}").is_dir()
        # The client secret and passwords: readable by the pool's identity, not by a local user.
        agent_settings = f"{root}\\Runtime\\appsettings.agent.json"
        pool_identity = f"IIS APPPOOL\\IdentityManagerAgent{org}"
        assert can_read(target, agent_settings, pool_identity)
        assert not can_read(target, agent_settings, local_user(target))
        assert can_read(target, f"{root}\\Runtime\\web.config", local_user(target)), "no secret, not protected"

    mark = target.journal_mark() if target.simulated else 0
    again = stack.up()
    assert again.ok, again.output
    assert again.summary == {"same": 16}
    if target.simulated:
        assert [op for op in target.operations_since(mark) if op.endswith("/set")] == []
    assert stack.refresh(expect_no_changes=True).ok

    desired["agent_identifier"] = "A2"
    preview = stack.preview(diff=True)
    assert preview.ok, preview.output
    assert 'AgentIdentifier: "A1" => "A2"' in preview.stdout
    for value in (client_secret, ad_password):
        assert value not in preview.output and value not in stack.export() and value not in stack.raw_state()
    assert stack.up().summary.get("update") == 1
    if target.simulated:
        backup = f"{root}\\Runtime\\appsettings.agent.json.bak"
        assert target.windows_file(backup).is_file(), "the update kept the previous version"
        assert can_read(target, backup, pool_identity) and not can_read(target, backup, local_user(target))

    destroyed = stack.destroy()
    assert destroyed.ok, destroyed.output
    if target.simulated:
        assert f'name="IdentityManagerAgent{org}"' not in iis.config_file(target.state_dir).read_text()
        assert leftovers(target, root) == [], "destroy leaves no backup or temporary file (data folders stay)"


def test_integrated_agent_deploys_the_server_site_with_secrets_masked(simulated: Target, engine: Engine) -> None:
    org = f"S{uuid.uuid4().hex[:6]}"
    certificates = [make_pfx(cn=f"im-{org.lower()}.contoso.example"), make_pfx(cn="enc"), make_pfx(cn="ids")]
    connection_string = f"data source=.;Database=Usercube{org};Integrated Security=SSPI;Password=x{uuid.uuid4().hex}"

    # The runtime archive's content, which the operator extracts into Runtime: the server's stand-in, so that the
    # verification (on by default) finds /hc answering Healthy.
    assert simulated.state_dir is not None
    https.write_stand_in_runtime(
        simulated.state_dir, f"C:\\UsercubeIacTests\\identitymanager{org}\\Runtime", "identitymanager-Server.dll"
    )

    def program() -> None:
        IntegratedAgent(
            "server",
            IntegratedAgentArgs(
                organization=org,
                working_directory=f"C:\\UsercubeIacTests\\identitymanager{org}",
                web=WebHosting(
                    site_name=f"Identity Manager {org}",
                    pool_name=f"IdentityManager{org}",
                    host_name=f"im-{org.lower()}.contoso.example",
                    remove_default_site=False,
                ),
                ssl_certificate=pfx(certificates[0]),
                encryption_certificate=pfx(certificates[1]),
                identity_server_certificate=pfx(certificates[2]),
                license=secret("LICENSE-KEY"),
                connection_string=secret(connection_string),
            ),
            connection=connection(simulated),
        )

    stack = engine(program)
    mark = simulated.journal_mark()
    up = stack.up()
    assert up.ok, up.output
    assert connection_string not in up.output and connection_string not in stack.raw_state()
    root = f"C:\\UsercubeIacTests\\identitymanager{org}"
    server_settings = json.loads(simulated.windows_file(f"{root}\\Runtime\\appsettings.json").read_text())
    assert server_settings["ConnectionString"] == connection_string
    # The license and connection string: readable by the server's pool identity, not by a local user.
    assert can_read(simulated, f"{root}\\Runtime\\appsettings.json", f"IIS APPPOOL\\IdentityManager{org}")
    assert not can_read(simulated, f"{root}\\Runtime\\appsettings.json", local_user(simulated))
    assert "identitymanager-Server.dll" in simulated.windows_file(f"{root}\\Runtime\\web.config").read_text()
    checks = [e for e in simulated.operation_events_since(mark) if e["op"] == "agent_verification/get"]
    assert [e["ok"] for e in checks] == [True], "the server's /hc answered Healthy from its host"  # verify: on
    assert stack.up().summary.get("same") is not None
    assert stack.destroy().ok


PLAIN = "not-a-secret"


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (
            lambda: AgentSettings(
                agent_identifier="Local",
                application_uri="https://s",
                openid_clients={"Job": secret("x")},
                default_openid_client="Job",
            ),
            "reserved",
        ),
        (
            lambda: AgentSettings(
                agent_identifier="A",
                application_uri="http://s",
                openid_clients={"Job": secret("x")},
                default_openid_client="Job",
            ),
            "application_uri",
        ),
        (
            lambda: AgentSettings(
                agent_identifier="A",
                application_uri="https://s",
                openid_clients={"Job": PLAIN},
                default_openid_client="Job",
            ),
            "openid_clients['Job'] must be a Pulumi secret",
        ),
        (
            lambda: AgentSettings(
                agent_identifier="A",
                application_uri="https://s",
                openid_clients={"Job": secret("x")},
                default_openid_client="Admin",
            ),
            "default_openid_client",
        ),
        (lambda: PfxCertificate(pfx_base64=PLAIN, password=secret("x")), "pfx_base64 must be a Pulumi secret"),
        (
            lambda: Identity(kind="GroupManagedServiceAccount", account="CONTOSO\\svc$", password=secret("x")),
            "a gMSA has no password",
        ),
        (lambda: Identity(kind="User", account="CONTOSO\\svc", password=PLAIN), "identity.password must be"),
        (lambda: Identity(kind="GroupManagedServiceAccount", account="CONTOSO\\svc"), "ends with '$'"),
        (lambda: WebHosting(site_name="s", pool_name="p", host_name="Agent01.Contoso.com"), "lower case"),
        (lambda: WebHosting(site_name="s", pool_name="p", host_name="agent01", https_port=0), "https_port"),
    ],
)
def test_component_arguments_are_refused_with_the_setting_named(build: Callable[[], object], fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        build()


def service_agent_args(org: str, root: str, gmsa: str, encryption: str, **extra: Any) -> ProductionAgentArgs:
    """A production agent run as a Windows service under a gMSA, with ``extra`` arguments."""
    return ProductionAgentArgs(
        organization=org,
        working_directory=root,
        hosting="service",
        identity=Identity(kind="GroupManagedServiceAccount", account=gmsa),
        encryption_certificate=pfx(encryption),
        settings=AgentSettings(
            agent_identifier="A1",
            application_uri="https://identitymanager.contoso.example",
            openid_clients={"Job": secret("s")},
            default_openid_client="Job",
        ),
        **extra,
    )


def test_production_agent_as_a_windows_service_under_a_gmsa(simulated: Target, engine: Engine) -> None:
    from devhost import accounts

    assert simulated.state_dir is not None
    org = f"W{uuid.uuid4().hex[:6]}"
    gmsa = f"CONTOSO\\svc-{org.lower()}$"
    accounts.add_account(simulated.state_dir, gmsa, "gmsa")
    root = f"C:\\UsercubeIacTests\\identitymanager{org}"
    # The runtime archive's content, which the operator extracts into Runtime (not this project's to ship).
    exe = simulated.windows_file(f"{root}\\Runtime\\Usercube-Agent.exe")
    exe.parent.mkdir(parents=True)
    exe.write_bytes(b"MZ simulated agent executable")
    encryption = make_pfx(cn=f"IdentityManager{org}")

    def program() -> None:
        ProductionAgent("agent", service_agent_args(org, root, gmsa, encryption), connection=connection(simulated))

    stack = engine(program)
    up = stack.up()
    assert up.ok, up.output
    services = json.loads((simulated.state_dir / "_sim" / "services.json").read_text())
    text = json.dumps(services)
    assert f"IdentityManagerAgent{org}" in text
    assert "--service" in text and gmsa.replace("\\", "\\\\") in text
    assert stack.up().summary.get("same") is not None
    assert stack.destroy().ok
    assert f"IdentityManagerAgent{org}" not in (simulated.state_dir / "_sim" / "services.json").read_text()


def test_a_production_agent_keeps_from_the_archive_only_the_files_it_writes(
    simulated: Target, engine: Engine, tmp_path: Path
) -> None:
    # A Windows service writes appsettings.agent.json alone: the vendor's appsettings.json (the agent's base
    # settings) and web.config come from the runtime archive, which must not keep them.
    from devhost import accounts

    assert simulated.state_dir is not None
    org = f"K{uuid.uuid4().hex[:6]}"
    gmsa = f"CONTOSO\\svc-{org.lower()}$"
    accounts.add_account(simulated.state_dir, gmsa, "gmsa")
    root = f"C:\\UsercubeIacTests\\identitymanager{org}"
    vendor = {
        "Usercube-Agent.exe": b"MZ simulated agent executable",
        "appsettings.json": b'{"vendor": "base settings"}',
        "appsettings.agent.json": b'{"vendor": "agent template"}',
        "web.config": b"<configuration>the vendor's</configuration>",
    }
    found = inspect_archive(write_zip(tmp_path / "IdentityManager-Runtime.zip", vendor))
    encryption = make_pfx(cn=f"IdentityManager{org}")

    def program() -> None:
        archive = RuntimeArchiveSource(path=found.path, name=found.name, size=found.size, sha256=found.sha256)
        args = service_agent_args(org, root, gmsa, encryption, runtime_archive=archive, verify=False)
        ProductionAgent("agent", args, connection=connection(simulated))

    stack = engine(program)
    up = stack.up()
    assert up.ok, up.output
    runtime = f"{root}\\Runtime"
    assert simulated.windows_file(f"{runtime}\\appsettings.json").read_bytes() == vendor["appsettings.json"]
    assert simulated.windows_file(f"{runtime}\\web.config").read_bytes() == vendor["web.config"]
    written = json.loads(simulated.windows_file(f"{runtime}\\appsettings.agent.json").read_text())
    assert written["OpenId"] == {"AgentIdentifier": "A1"}, "the agent's own settings, not the vendor's template"

    resources = json.loads(stack.export())["deployment"]["resources"]
    [archive] = [r for r in resources if r["type"].endswith(":RuntimeArchive")]
    settings_files = [r["inputs"]["path"] for r in resources if r["type"].endswith(":SettingsFile")]
    assert archive["inputs"]["keep_files"] == ["appsettings.agent.json"]
    assert [f"{runtime}\\{name}" for name in archive["inputs"]["keep_files"]] == settings_files
    assert stack.up().summary.get("same") is not None
    assert stack.destroy().ok
    assert not simulated.windows_file(f"{runtime}\\appsettings.json").exists(), "the archive's file goes with it"


@pytest.mark.parametrize(
    ("runtime_files", "kind", "expected"),
    [
        (production_runtime_files, "iis", ("appsettings.agent.json", "web.config")),
        (production_runtime_files, "service", ("appsettings.agent.json",)),
        (integrated_runtime_files, True, ("appsettings.json", "web.config", "appsettings.agent.json")),
        (integrated_runtime_files, False, ("appsettings.json", "web.config")),
    ],
)
def test_each_agent_kind_keeps_the_settings_files_it_writes_and_no_other(
    runtime_files: Callable[[str, Any], RuntimeFiles], kind: object, expected: tuple[str, ...]
) -> None:
    files = runtime_files("C:\\im\\Runtime", kind)
    assert files.names == expected
    with pytest.raises(ValueError, match="not among the files this agent keeps"):
        files.path("appsettings.encrypted.json")  # a file not listed would be replaced by the archive's
    with pytest.raises(ValueError, match="no settings file writes them"):
        files.check_all_written()  # a file listed and not written: a vendor file kept out for nothing
    assert [files.path(name) for name in expected] == [f"C:\\im\\Runtime\\{name}" for name in expected]
    files.check_all_written()

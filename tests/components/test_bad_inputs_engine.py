"""Bad inputs to every resource and to both agent components are refused before any host command.

The resource half of the bad-input corpus (the stack half is tests/stacks/test_bad_configuration.py):
each case is a program that declares one resource, or one ProductionAgent / IntegratedAgent, with one
bad input, run with `up` through the real Pulumi CLI against the SIMULATED host. Each must fail with
exactly one message that names the property and says what to do (a resource's `check` failure, or
the component arguments' validation error, raised before the component declares anything), and the
host must record nothing: no process start, no operation.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pulumi
import pytest
from cryptography.hazmat.primitives.asymmetric import dsa

from components.args import AgentSettings, Identity, PfxCertificate, WebHosting
from components.integrated_agent import IntegratedAgent, IntegratedAgentArgs
from components.production_agent import ProductionAgent, ProductionAgentArgs
from providers.certificate import Certificate
from providers.directory import Directory
from providers.file_acl import FileAcl
from providers.iis_app_pool import IisAppPool
from providers.iis_default_site_removal import IisDefaultSiteRemoval
from providers.iis_prerequisites import IisPrerequisites
from providers.iis_site import IisSite
from providers.settings_file import SettingsFile
from providers.windows_feature import WindowsFeature
from providers.windows_service import WindowsService
from tests.providers.test_certificate_engine import PASSWORD, make_pfx, rsa_key
from tests.support.engine import EngineStack
from tests.support.hosts import Target

pytestmark = pytest.mark.engine

Engine = Callable[[Callable[[], None]], EngineStack]
Connection = dict[str, Any]
Declare = Callable[[Connection], object]  # declares the case's resource or component on the connection
ROOT = "C:\\UsercubeIacTests\\bad"
THUMBPRINT = "AB" * 20
HTTPS = {"protocol": "https", "port": 443, "host_header": "agent.contoso.example", "certificate_thumbprint": THUMBPRINT}
HTTP = {"protocol": "http", "port": 80, "host_header": "agent.contoso.example"}
BAD_PEM = Path(__file__).resolve()  # a file, but not PEM


@dataclass(frozen=True)
class Case:
    id: str
    declare: Declare
    names: str  # the property the one message names
    fix: str  # a fragment of what it says to do


def secret(value: str) -> pulumi.Output[str]:
    return pulumi.Output.secret(value)


def pfx() -> PfxCertificate:
    return PfxCertificate(pfx_base64=secret(pfx_of()), password=secret(PASSWORD))


# -- one resource each ----------------------------------------------------------------------------


@cache
def pfx_of(kind: str = "good") -> str:
    """A PFX (base64) of ``kind``, made once when a case first runs."""
    makers: dict[str, Callable[[], str]] = {
        "good": make_pfx,
        "rsa-1024": lambda: make_pfx(key=rsa_key(1024)),
        "sha1": lambda: make_pfx(signature="sha1"),
        "no-key": lambda: make_pfx(with_key=False),
        "dsa": lambda: make_pfx(key=dsa.generate_private_key(2048)),
    }
    return makers[kind]()


def certificate(kind: str = "good", **inputs: Any) -> Declare:
    def declare(connection: Connection) -> object:
        given = dict(inputs)
        password = given.pop("pfx_password", PASSWORD)
        return Certificate(
            "bad", connection=connection, pfx=secret(pfx_of(kind)), pfx_password=secret(password), **given
        )

    return declare


class Secret(str):
    """An input passed as a Pulumi secret (made inside the program, as Outputs must be)."""

    __slots__ = ()


def resource(kind: Callable[..., object], **inputs: Any) -> Declare:
    def declare(connection: Connection) -> object:
        given = {key: secret(value) if isinstance(value, Secret) else value for key, value in inputs.items()}
        return kind("bad", connection=connection, **given)

    return declare


def connection_with(**changes: Any) -> Declare:
    """The default-site removal (whose only input is its connection) on a changed connection."""
    return lambda connection: IisDefaultSiteRemoval("bad", connection={**connection, **changes})


def site(**inputs: Any) -> Declare:
    given = {"name": "Bad Inputs Site", "physical_path": f"{ROOT}\\Runtime", "app_pool": "BadInputs"}
    return resource(IisSite, **{**given, "bindings": [HTTPS], **inputs})


def service(**inputs: Any) -> Declare:
    return resource(WindowsService, **{"name": "UcBadInputs", "binary_path": f"{ROOT}\\Agent.exe", **inputs})


RESOURCE_CASES = [
    # Certificate: the manual's rules on the PFX, checked locally
    Case("certificate-rsa-1024", certificate("rsa-1024"), "pfx", "RSA-2048 and SHA-256"),
    Case("certificate-sha1", certificate("sha1"), "pfx", "re-issue it signed with SHA-256"),
    Case("certificate-no-key", certificate("no-key"), "pfx", "export it with its key"),
    Case("certificate-dsa", certificate("dsa"), "pfx", "RSA-2048"),
    Case(
        "certificate-wrong-password",
        certificate(pfx_password="Wr0ng-Pfx-Passw0rd"),
        "pfx_password",
        "give the password it was exported with",
    ),
    Case("certificate-store", certificate(store_name="Personal"), "store_name", "'My'"),
    Case(
        "certificate-reader", certificate(private_key_readers=["a\\b\\c"]), "private_key_readers", "give 'DOMAIN\\name'"
    ),
    Case(
        "certificate-reader-always-full-control",
        certificate(private_key_readers=["IIS AppPool\\Agent", "NT AUTHORITY\\SYSTEM"]),
        "private_key_readers",
        "the key's file never shows them as readers; remove them",
    ),
    # Directory
    Case("directory-relative", resource(Directory, path="identitymanager"), "path", "give the drive and full path"),
    Case(
        "directory-nested-subfolder",
        resource(Directory, path=ROOT, subfolders=["Work\\Sub"]),
        "subfolders",
        "a separate Directory resource for a deeper tree",
    ),
    Case(
        "directory-too-long",
        resource(Directory, path=f"{ROOT}\\{'x' * 240}"),
        "path",
        "choose a shorter folder",
    ),
    # FileAcl
    Case(
        "file-acl-principal",
        resource(FileAcl, path=ROOT, principal="CONTOSO\\svc[1]", rights=["ReadAndExecute"]),
        "principal",
        "a character Windows forbids in account names",
    ),
    Case(
        "file-acl-no-rights",
        resource(FileAcl, path=ROOT, principal="BUILTIN\\Users", rights=[]),
        "rights",
        "give at least one right",
    ),
    Case(
        "file-acl-propagation-without-inheritance",
        resource(
            FileAcl, path=ROOT, principal="BUILTIN\\Users", rights=["Read"], inheritance=[], propagation=["InheritOnly"]
        ),
        "propagation",
        "inheritance",
    ),
    # IisAppPool
    Case("pool-name", resource(IisAppPool, name="Identity/Manager"), "name", "leave them out"),
    Case(
        "pool-clr",
        resource(IisAppPool, name="BadInputs", managed_runtime_version="v5.0"),
        "managed_runtime_version",
        "'v4.0'",
    ),
    Case(
        "pool-user-without-password",
        resource(IisAppPool, name="BadInputs", identity_type="SpecificUser", identity_user="CONTOSO\\svc"),
        "identity_password",
        "or use a group managed service account",
    ),
    # IisDefaultSiteRemoval: its connection (every resource's connection is checked the same way)
    Case(
        "connection-ca-bundle-missing",
        connection_with(ca_bundle="/nonexistent/contoso-root.pem", use_https=True),
        "connection.ca_bundle",
        "give the PEM file of the CAs",
    ),
    Case(
        "connection-ca-bundle-not-pem",
        connection_with(ca_bundle=str(BAD_PEM), use_https=True),
        "connection.ca_bundle",
        "holds no valid PEM certificate",
    ),
    Case("connection-url-as-host", connection_with(host="https://agent01"), "connection.host", "give only the name"),
    Case(
        "connection-basic-over-http",
        connection_with(transport="basic", use_https=False),
        "connection",
        "set use_https=true or use transport 'ntlm'",
    ),
    # IisPrerequisites
    Case(
        "prerequisites-old-bundle",
        resource(IisPrerequisites, minimum_hosting_bundle="6.0"),
        "minimum_hosting_bundle",
        "give 8.0 or newer",
    ),
    Case(
        "prerequisites-not-a-version",
        resource(IisPrerequisites, minimum_hosting_bundle="eight"),
        "minimum_hosting_bundle",
        "like 8.0 or 8.0.11",
    ),
    # IisSite
    Case("site-name", site(name="Agent:1"), "name", "leave them out"),
    Case("site-pool-name", site(app_pool="Pool|1"), "app_pool", "leave them out"),
    Case("site-physical-path", site(physical_path="C:/agent/Runtime"), "physical_path", "use backslashes"),
    Case(
        "site-bracketed-ipv4",
        site(bindings=[{**HTTPS, "ip_address": "[10.0.0.5]"}]),
        "bindings.0.ip_address",
        "an IPv4 address (10.0.0.5)",
    ),
    Case(
        "site-https-without-certificate",
        site(bindings=[{**HTTPS, "certificate_thumbprint": None}]),
        "bindings.0",
        "needs certificate_thumbprint",
    ),
    Case("site-duplicate-binding", site(bindings=[HTTPS, HTTPS]), "bindings", "each address, port and host name"),
    Case(
        "site-http-with-certificate",
        site(bindings=[{**HTTP, "certificate_thumbprint": THUMBPRINT}]),
        "bindings.0",
        "use https",
    ),
    # SettingsFile
    Case(
        "settings-backup-name",
        resource(SettingsFile, path=f"{ROOT}\\appsettings.json.bak", content="{}"),
        "path",
        "choose another name",
    ),
    Case(
        "settings-too-long-for-its-temporary-file",
        resource(SettingsFile, path=f"{ROOT}\\{'a' * 240}.json", content="{}"),
        "path",
        "can have at most 245",
    ),
    Case(
        "settings-content-and-json",
        resource(SettingsFile, path=f"{ROOT}\\appsettings.json", content="{}", json_content={"A": 1}),
        "content",
        "give exactly one of 'content'",
    ),
    Case(
        "settings-reader",
        resource(SettingsFile, path=f"{ROOT}\\appsettings.json", content="{}", readers=["a\\b\\c"]),
        "readers",
        "give 'DOMAIN\\name'",
    ),
    # WindowsFeature
    Case("feature-none", resource(WindowsFeature, names=[]), "names", "give at least one feature name"),
    Case("feature-twice", resource(WindowsFeature, names=["Web-Server", "web-server"]), "names", "listed twice"),
    # WindowsService
    Case("service-name", service(name="Usercube/Agent"), "name", "not allowed in a service name"),
    Case(
        "service-not-an-exe", service(binary_path=f"{ROOT}\\Agent.dll"), "binary_path", "give the full path of the .exe"
    ),
    Case("service-disabled-running", service(start_type="Disabled"), "state", "set state 'Stopped'"),
    Case(
        "service-upn-account",
        service(account="svc@contoso.com", password=Secret("Svc-Passw0rd")),
        "account",
        "give the account as DOMAIN\\user",
    ),
]


# -- the agent components -------------------------------------------------------------------------

ORG = "BadInputs"


def web(**changes: Any) -> WebHosting:
    return WebHosting(
        **{
            "site_name": f"Identity Manager Agent {ORG}",
            "pool_name": f"IdentityManagerAgent{ORG}",
            "host_name": "agent-bad.contoso.example",
            "remove_default_site": False,
            **changes,
        }
    )


def settings(**changes: Any) -> AgentSettings:
    given: dict[str, Any] = {
        "agent_identifier": "Contoso-bad",
        "application_uri": "https://identitymanager.contoso.example",
        "openid_clients": {"Job": secret("Job-Secret-0987")},
        "default_openid_client": "Job",
        **changes,
    }
    return AgentSettings(**given)


def production(arguments: Callable[[], dict[str, Any]]) -> Declare:
    """A ProductionAgent whose arguments are valid but for ``arguments()`` (built inside the program,
    as Outputs must be)."""

    def declare(connection: Connection) -> object:
        given: dict[str, Any] = {
            "organization": ORG,
            "working_directory": ROOT,
            "ssl_certificate": pfx(),
            "encryption_certificate": pfx(),
            "settings": settings(),
            **arguments(),
        }
        if "web" not in given and given.get("hosting", "iis") == "iis":
            given["web"] = web()
        return ProductionAgent("agent", ProductionAgentArgs(**given), connection)

    return declare


def integrated(arguments: Callable[[], dict[str, Any]]) -> Declare:
    def declare(connection: Connection) -> object:
        given: dict[str, Any] = {
            "organization": ORG,
            "working_directory": ROOT,
            "web": web(site_name=f"Identity Manager {ORG}", pool_name=f"IdentityManager{ORG}"),
            "ssl_certificate": pfx(),
            "encryption_certificate": pfx(),
            "identity_server_certificate": pfx(),
            "license": secret("License-Key-0987"),
            "connection_string": secret("Server=db;Integrated Security=SSPI"),
            **arguments(),
        }
        return IntegratedAgent("server", IntegratedAgentArgs(**given), connection)

    return declare


GMSA = {"kind": "GroupManagedServiceAccount", "account": "CONTOSO\\svc-agent$"}

COMPONENT_CASES = [
    Case("production-site-name", production(lambda: {"web": web(site_name="Agent: 1")}), "site_name", "leave them out"),
    Case("production-pool-name", production(lambda: {"web": web(pool_name="Agent/1")}), "pool_name", "leave them out"),
    Case(
        "production-ip-address",
        production(lambda: {"web": web(ip_address="10.0.0")}),
        "ip_address",
        "an IPv4 address (10.0.0.5)",
    ),
    Case(
        "production-http-port-is-https-port",
        production(lambda: {"web": web(http_port=443)}),
        "http_port equals https_port",
        "give another http_port",
    ),
    Case(
        "production-service-name",
        production(lambda: {"hosting": "service", "service_name": "Agent\\1", "identity": Identity(**GMSA)}),
        "service_name",
        "not allowed in a service name",
    ),
    Case(
        "production-working-directory-too-long",
        production(lambda: {"working_directory": f"C:\\{'w' * 220}"}),
        "working_directory",
        "keep it to 214 characters",
    ),
    Case(
        "production-identity-account",
        production(lambda: {"identity": Identity(kind="GroupManagedServiceAccount", account="CONTOSO\\svc[1]$")}),
        "identity.account",
        "give 'DOMAIN\\name'",
    ),
    Case(
        "production-connection-key-colon",
        production(lambda: {"settings": settings(connections={"AD:Export": {"Login": "CONTOSO\\x"}})}),
        "connections['AD:Export']",
        "rename the key",
    ),
    Case(
        "production-openid-clients-by-case",
        production(lambda: {"settings": settings(openid_clients={"Job": secret("a"), "job": secret("b")})}),
        "openid_clients['job']",
        "keep one of them",
    ),
    Case(
        "integrated-pool-name",
        integrated(lambda: {"web": web(pool_name="Identity Manager [Contoso]")}),
        "pool_name",
        "leave them out",
    ),
    Case(
        "integrated-plain-license",
        integrated(lambda: {"license": "License-In-Plain-Text"}),
        "license must be a Pulumi secret",
        "wrap it with pulumi.Output.secret",
    ),
    Case(
        "integrated-connection-keys-by-case",
        integrated(lambda: {"agent_connections": {"ADExport": {"Login": "x", "LOGIN": "y"}}}),
        "agent_connections['ADExport']['LOGIN']",
        "keep one of them",
    ),
    Case(
        "integrated-working-directory-relative",
        integrated(lambda: {"working_directory": "identitymanager"}),
        "working_directory",
        "give the drive and full path",
    ),
    Case(
        "integrated-identity-account",
        integrated(lambda: {"identity": Identity(kind="User", account="CONTOSO\\svc/x", password=secret("p"))}),
        "identity.account",
        "give 'DOMAIN\\name'",
    ),
]

CASES = [*RESOURCE_CASES, *COMPONENT_CASES]


def refusals(text: str) -> set[str]:
    """The distinct refusals in the diagnostics the CLI printed: each resource's check failure, or the
    arguments' validation error (its count, model, and the field and message lines that follow)."""
    diagnostics = text.replace("\r", "").partition("\nDiagnostics:\n")[2].partition("\nResources:\n")[0]
    found = set(re.findall(r"has a problem: (.+)", diagnostics))
    for count, model, body in re.findall(r"(\d+) validation errors? for (\w+)\n((?:.*\n){2})", diagnostics):
        found.add(f"{count} validation error for {model}: " + " ".join(body.split()))
    return found


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_refused_before_any_host_command(simulated: Target, engine: Engine, case: Case) -> None:
    def program() -> None:
        connection = {**simulated.connection, "password": secret(simulated.connection["password"])}
        case.declare(connection)

    mark = simulated.journal_mark()
    run = engine(program).up()

    assert not run.ok, run.output
    problems = refusals(run.stderr)  # the failed command's text, lines kept
    assert len(problems) == 1, run.stderr
    (problem,) = problems
    assert not problem.startswith(("2 ", "3 ")), problem
    assert case.names in problem, problem
    assert case.fix in problem, problem
    assert simulated.journal_since(mark) == [], "a host command ran"
    assert PASSWORD not in run.output and simulated.connection["password"] not in run.output


def test_the_corpus_covers_every_resource_and_both_components() -> None:
    kinds = {case.id.split("-")[0] for case in CASES}
    assert kinds >= {
        "certificate", "directory", "file", "pool", "connection", "prerequisites", "site", "settings", "feature",
        "service", "production", "integrated",
    }  # fmt: skip
    assert len({case.id for case in CASES}) == len(CASES)

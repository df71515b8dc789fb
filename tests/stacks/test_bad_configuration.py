"""Bad stack configurations are refused before any resource is declared, each with one message.

Every case changes one thing in the `local` stack file, as a user editing it would, and runs
`preview` through the real Pulumi CLI against the simulated estate. Each must fail with exactly one
problem, written as ``usercube-agents:<key path>: <what is wrong and how to fix it>``; no simulated
host may receive a single command; and no secret's plaintext may appear in the output.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from stackrun.workspace import open_stack
from tests.support.estate import (
    AGENTS_KEY,
    HOSTS_KEY,
    LOCAL_HOST_PASSWORD,
    EstateProject,
    SimulatedEstate,
)

pytestmark = pytest.mark.engine

Config = dict[str, Any]  # the stack file's `config` section (secrets as {secure: v1:...})
Plain = dict[str, Any]  # the same values decrypted: {"hosts": {...}, "agents": [...]}
Loc = tuple[str | int, ...]  # ("agents", 1, "hostName")
Mutation = Callable[[Config, Plain], None]
STACK = "local"
SET_SECRET = f"pulumi config set --stack {STACK} --secret --path"


@dataclass(frozen=True)
class PlainText:
    """The decrypted value at ``loc``, to be written in plain text."""

    loc: Loc


@dataclass(frozen=True)
class Copied:
    """What the stack file holds at ``loc`` (an encrypted ``{secure: ...}`` value stays so), copied."""

    loc: Loc


def _parent(document: Any, loc: Loc) -> Any:
    for part in loc[:-1]:
        document = document[part]
    return document


def _top(cfg: Config) -> dict[str, Any]:
    """``cfg`` seen with the short keys (``hosts``, ``agents``), sharing its values."""
    return {"hosts": cfg[HOSTS_KEY], "agents": cfg[AGENTS_KEY]}


def _resolve(value: Any, cfg: Config, plain: Plain) -> Any:
    if isinstance(value, PlainText):
        return _parent(plain, value.loc)[value.loc[-1]]
    if isinstance(value, Copied):
        return copy.deepcopy(_parent(_top(cfg), value.loc)[value.loc[-1]])
    return value


def put(loc: Loc, value: Any) -> Mutation:
    def mutate(cfg: Config, plain: Plain) -> None:
        _parent(_top(cfg), loc)[loc[-1]] = _resolve(value, cfg, plain)

    return mutate


def drop(loc: Loc) -> Mutation:
    def mutate(cfg: Config, plain: Plain) -> None:
        del _parent(_top(cfg), loc)[loc[-1]]

    return mutate


def rename(loc: Loc, new_key: str) -> Mutation:
    def mutate(cfg: Config, plain: Plain) -> None:
        parent = _parent(_top(cfg), loc)
        parent[new_key] = parent.pop(loc[-1])

    return mutate


def stack_key(key: str, value: Any) -> Mutation:
    def mutate(cfg: Config, plain: Plain) -> None:
        cfg[f"usercube-agents:{key}"] = value

    return mutate


def steps(*mutations: Mutation) -> Mutation:
    def mutate(cfg: Config, plain: Plain) -> None:
        for mutation in mutations:
            mutation(cfg, plain)

    return mutate


def twin(of: int, **keys: Any) -> Mutation:
    """A second agent beside ``agents[of]`` on the same host, valid as it is (its own directory,
    site, pool, service, DNS alias, name and identifier), appended as agents[3] with ``keys``."""

    def mutate(cfg: Config, plain: Plain) -> None:
        agent = copy.deepcopy(cfg[AGENTS_KEY][of])
        agent.update(name="two", workingDirectory="C:\\identitymanagerTwo", hostName="agent-two.contoso.example")
        if agent.get("hosting") == "service":
            agent["serviceName"] = "IdentityManagerAgentTwo"
        else:
            agent.update(siteName="Identity Manager Agent Two", poolName="IdentityManagerAgentTwo")
        agent["settings"]["agentIdentifier"] = "Contoso-two"
        agent.update(keys)
        cfg[AGENTS_KEY].append(agent)

    return mutate


@dataclass(frozen=True)
class Case:
    id: str
    mutate: Mutation
    path: str  # the key path the one problem names
    fix: str  # a fragment of what the message says to do


ZONE_A_SSL = ("agents", 1, "sslCertificate")
ZONE_B_IDENTITY = ("agents", 2, "identity")

CASES = [
    # -- the estate as a whole -------------------------------------------------------------------
    Case("unknown-host", put(("agents", 1, "host"), "zone-c"), "agents[1].host", "did you mean 'zone-b'?"),
    Case(
        "shared-working-directory",
        twin(1, workingDirectory="c:\\IdentityManagerContoso"),
        "agents[3].workingDirectory",
        "working directory on host 'zone-a' is also used by agents[1] (zone-a); give each agent its own",
    ),
    Case(
        "shared-working-directory-by-default",
        put(("agents", 2, "host"), "zone-a"),
        "agents[2].workingDirectory",
        "is also used by agents[1] (zone-a)",
    ),
    Case(
        "shared-site",
        twin(1, siteName="Identity Manager Agent Contoso"),
        "agents[3].siteName",
        "site on host 'zone-a' is also used by agents[1]",
    ),
    Case(
        "shared-pool",
        twin(1, poolName="identitymanageragentcontoso"),
        "agents[3].poolName",
        "pool on host 'zone-a' is also used by agents[1]",
    ),
    Case(
        "shared-service",
        twin(2, serviceName="IdentityManagerAgentContoso"),
        "agents[3].serviceName",
        "service on host 'zone-b' is also used by agents[2]",
    ),
    Case(
        "shared-binding-host-name",
        twin(1, hostName="agent-zone-a.contoso.example"),
        "agents[3].httpsPort",
        "binding *:443:agent-zone-a.contoso.example on host 'zone-a' is also used by agents[1]; give another",
    ),
    Case(
        "shared-binding-port",
        twin(1, hostName="agent-zone-a.contoso.example", httpsPort=8443, httpPort=443),
        "agents[3].httpPort",
        "binding *:443:agent-zone-a.contoso.example on host 'zone-a' is also used by agents[1]",
    ),
    Case(
        "shared-binding-ip",
        steps(
            put(("agents", 1, "ipAddress"), "10.0.0.5"),
            twin(1, hostName="agent-zone-a.contoso.example", ipAddress="10.0.0.5"),
        ),
        "agents[3].httpsPort",
        "binding 10.0.0.5:443:agent-zone-a.contoso.example on host 'zone-a' is also used by agents[1]",
    ),
    Case(
        "agent-identifier-local",
        put(("agents", 1, "settings", "agentIdentifier"), "local"),
        "agents[1].settings.agentIdentifier",
        "'Local' is reserved by Identity Manager for the integrated agent; choose another name",
    ),
    Case(
        "agent-identifier-twice",
        put(("agents", 2, "settings", "agentIdentifier"), "CONTOSO-Zone-A"),
        "agents[2].settings.agentIdentifier",
        "this agent identifier is also used by agents[1] (zone-a); give each agent its own",
    ),
    Case(
        "agent-name-twice",
        put(("agents", 2, "name"), "zone-a"),
        "agents[2].name",
        "this name is also used by agents[1] (zone-a)",
    ),
    Case(
        "default-openid-client-unknown",
        put(("agents", 1, "settings", "defaultOpenIdClient"), "Jobs"),
        "agents[1].settings.defaultOpenIdClient",
        "Jobs is not a key of settings.openIdClients (['Job']); name one of them",
    ),
    Case(
        "production-without-openid-client",
        steps(drop(("agents", 1, "settings", "openIdClients")), drop(("agents", 1, "settings", "defaultOpenIdClient"))),
        "agents[1].settings.openIdClients",
        "give at least one client: name -> secret",
    ),
    Case(
        "production-without-identifier",
        drop(("agents", 1, "settings", "agentIdentifier")),
        "agents[1].settings.agentIdentifier",
        "is required for a production agent",
    ),
    Case(
        "http-port-equals-https-port",
        put(("agents", 1, "httpPort"), 443),
        "agents[1].httpPort",
        "equals httpsPort (443); give another port, or 0 for no http binding",
    ),
    # -- the agent kinds -------------------------------------------------------------------------
    Case(
        "service-as-application-pool-identity",
        drop(("agents", 2, "identity")),
        "agents[2].identity.kind",
        "a Windows service cannot run as ApplicationPoolIdentity; use GroupManagedServiceAccount or User",
    ),
    Case(
        "service-with-ssl-certificate",
        put(("agents", 2, "sslCertificate"), Copied(ZONE_A_SSL)),
        "agents[2].sslCertificate",
        "is used only with hosting: iis; remove it",
    ),
    Case(
        "integrated-as-service",
        put(("agents", 0, "hosting"), "service"),
        "agents[0].hosting",
        "the integrated agent runs in the server's IIS site; use iis",
    ),
    Case(
        "integrated-without-license",
        drop(("agents", 0, "license")),
        "agents[0].license",
        "is required for the integrated agent",
    ),
    Case(
        "integrated-with-agent-identifier",
        put(("agents", 0, "settings"), {"agentIdentifier": "Contoso-server"}),
        "agents[0].settings.agentIdentifier",
        "is not used by the integrated agent (it is the server's 'Local' agent); remove it",
    ),
    Case(
        "production-with-license",
        put(("agents", 1, "license"), Copied(("agents", 0, "license"))),
        "agents[1].license",
        "belongs to the integrated agent (the server); remove it from a production agent",
    ),
    Case(
        "wrong-kind", put(("agents", 1, "kind"), "prod"), "agents[1].kind", "'production' or 'integrated', not 'prod'"
    ),
    # -- one agent's values ----------------------------------------------------------------------
    Case(
        "host-name-upper-case",
        put(("agents", 1, "hostName"), "Agent-Zone-A.contoso.example"),
        "agents[1].hostName",
        "the manual requires the DNS alias in lower case: 'agent-zone-a.contoso.example'",
    ),
    Case(
        "working-directory-forward-slashes",
        put(("agents", 1, "workingDirectory"), "C:/identitymanager/zone-a"),
        "agents[1].workingDirectory",
        "Windows paths use backslashes: 'C:\\\\identitymanager\\\\zone-a'",
    ),
    Case(
        "application-uri-http",
        put(("agents", 1, "settings", "applicationUri"), "http://identitymanager.contoso.example"),
        "agents[1].settings.applicationUri",
        "is not an https:// URL of the Identity Manager server",
    ),
    Case(
        "agent-name-characters",
        put(("agents", 1, "name"), "Zone_A"),
        "agents[1].name",
        "should match pattern '^[a-z][a-z0-9-]{0,39}$', not 'Zone_A'",
    ),
    Case(
        "ip-address",
        put(("agents", 1, "ipAddress"), "10.0.0"),
        "agents[1].ipAddress",
        "'10.0.0' is not '*' or an IP address",
    ),
    Case(
        "https-port-out-of-range",
        put(("agents", 1, "httpsPort"), 70000),
        "agents[1].httpsPort",
        "less than or equal to 65535",
    ),
    Case(
        "missing-host-name",
        drop(("agents", 1, "hostName")),
        "agents[1].hostName",
        "is required: The agent's DNS alias, lower case",
    ),
    Case(
        "gmsa-without-dollar",
        put((*ZONE_B_IDENTITY, "account"), "CONTOSO\\svc-agent-b"),
        "agents[2].identity",
        "a group managed service account name ends with '$'",
    ),
    Case(
        "user-without-password",
        put(ZONE_B_IDENTITY, {"kind": "User", "account": "CONTOSO\\svc-agent-b"}),
        "agents[2].identity",
        "kind User needs identity.password (a secret)",
    ),
    Case(
        "certificate-pfx-and-thumbprint",
        put((*ZONE_A_SSL, "thumbprint"), "A" * 40),
        "agents[1].sslCertificate",
        "give either thumbprint (a certificate already in the store) or pfx + password",
    ),
    Case(
        "certificate-thumbprint-malformed",
        put(ZONE_A_SSL, {"thumbprint": "0123456789abcdef"}),
        "agents[1].sslCertificate",
        "thumbprint '0123456789abcdef' is not 40 hexadecimal characters",
    ),
    Case(
        "pfx-password-of-another-certificate",
        put((*ZONE_A_SSL, "password"), Copied(("agents", 1, "encryptionCertificate", "password"))),
        "agents[1].sslCertificate.password",
        "could not be decrypted with this password; give the password it was exported with",
    ),
    # -- hosts -----------------------------------------------------------------------------------
    Case(
        "winrm-basic-over-http",
        put(("hosts", "zone-a", "transport"), "basic"),
        "hosts.zone-a",
        "over plain HTTP would send the password readable on the wire; set useHttps: true or use transport 'ntlm'",
    ),
    Case(
        "ca-bundle-missing",
        put(("hosts", "zone-a", "caBundle"), "certs/contoso-root.pem"),
        "hosts.zone-a.caBundle",
        "file 'certs/contoso-root.pem' does not exist",
    ),
    # -- secrets ---------------------------------------------------------------------------------
    *(
        Case(f"plain-{name}", put(loc, PlainText(loc)), path, f"{SET_SECRET} '{path}'")
        for name, loc, path in (
            ("host-password", ("hosts", "server", "password"), "hosts.server.password"),
            (
                "openid-client",
                ("agents", 1, "settings", "openIdClients", "Job"),
                "agents[1].settings.openIdClients.Job",
            ),
            ("pfx", (*ZONE_A_SSL, "pfx"), "agents[1].sslCertificate.pfx"),
            (
                "pfx-password",
                ("agents", 2, "encryptionCertificate", "password"),
                "agents[2].encryptionCertificate.password",
            ),
            ("license", ("agents", 0, "license"), "agents[0].license"),
            ("connection-string", ("agents", 0, "connectionString"), "agents[0].connectionString"),
            (
                "managed-system-password",
                ("agents", 1, "settings", "connections", "ADExport", "Password"),
                "agents[1].settings.connections.ADExport.Password",
            ),
        )
    ),
    Case(
        "plain-user-password",
        put(ZONE_B_IDENTITY, {"kind": "User", "account": "CONTOSO\\svc-agent-b", "password": "Us3r-Passw0rd!"}),
        "agents[2].identity.password",
        f"{SET_SECRET} 'agents[2].identity.password'",
    ),
    Case(
        "encrypted-user-name",
        put(("hosts", "zone-a", "user"), Copied(("hosts", "zone-a", "password"))),
        "hosts.zone-a.user",
        "is encrypted but is not a secret: previews would hide its changes; store it in plain text",
    ),
    Case(
        "encrypted-host-name",
        put(("agents", 1, "hostName"), Copied(("agents", 1, "settings", "openIdClients", "Job"))),
        "agents[1].hostName",
        "pulumi config set --stack local --path 'agents[1].hostName' <value>",
    ),
    # -- typos -----------------------------------------------------------------------------------
    Case(
        "typo-agent-key",
        put(("agents", 1, "workingDirectroy"), "C:\\identitymanagerContoso"),
        "agents[1].workingDirectroy",
        "is not a known key; did you mean 'workingDirectory'?",
    ),
    Case(
        "typo-settings-key",
        rename(("agents", 1, "settings", "defaultOpenIdClient"), "defaultOpenIDClients"),
        "agents[1].settings.defaultOpenIDClients",
        "did you mean 'defaultOpenIdClient'?",
    ),
    Case(
        "typo-host-key",
        put(("hosts", "zone-a", "trasport"), "ntlm"),
        "hosts.zone-a.trasport",
        "did you mean 'transport'?",
    ),
    Case(
        "typo-identity-key",
        rename((*ZONE_B_IDENTITY, "account"), "acount"),
        "agents[2].identity.acount",
        "did you mean 'account'?",
    ),
    Case(
        "typo-stack-key",
        stack_key("agentz", []),
        "agentz",
        "is not a setting of this project; did you mean 'agents'?; remove it with `pulumi config rm",
    ),
    Case(
        "one-agent-layout-key",
        stack_key("windowsHost", "agent01.contoso.com"),
        "windowsHost",
        "is a key of the one-agent layout, replaced by `hosts` and `agents`",
    ),
]


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory, estate: SimulatedEstate) -> Plain:
    """The local stack's values decrypted by the CLI (``pulumi config --show-secrets``), once."""
    project = EstateProject(tmp_path_factory.mktemp("decrypt"), estate)
    project.write()
    stack = open_stack(
        STACK,
        work_dir=project.project,
        extra_env={"PULUMI_BACKEND_URL": f"file://{project.backend}", "PULUMI_CONFIG_PASSPHRASE": project.passphrase},
    )
    config = stack.get_all_config()
    return {key: json.loads(config[f"usercube-agents:{key}"].value) for key in ("hosts", "agents")}


def secret_values(cfg: Config, plain: Plain) -> list[str]:
    """The plaintext of every value the original stack file holds encrypted."""
    found: list[str] = []

    def walk(encrypted: Any, decrypted: Any) -> None:
        if isinstance(encrypted, dict) and set(encrypted) == {"secure"}:
            found.append(str(decrypted))
        elif isinstance(encrypted, dict):
            for key, item in encrypted.items():
                walk(item, decrypted[key])
        elif isinstance(encrypted, list):
            for item, value in zip(encrypted, decrypted, strict=True):
                walk(item, value)

    walk(_top(cfg), plain)
    return found


def test_secret_values_are_known(local: EstateProject, plain: Plain) -> None:
    """The leak check below looks for real plaintexts: the host password, the PFX, ..."""
    values = secret_values(local.config(), plain)
    assert LOCAL_HOST_PASSWORD in values
    assert all(len(value) >= 16 for value in values)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_configuration_is_refused_before_any_host_is_touched(
    local: EstateProject, plain: Plain, case: Case
) -> None:
    cfg = local.config()
    secrets = [*secret_values(cfg, plain), "Us3r-Passw0rd!"]
    case.mutate(cfg, plain)
    local.write(cfg)
    marks = local.estate.marks()

    code, output = local.run("preview")

    assert code != 0, output
    assert "invalid stack configuration (1 problem):" in output, output
    problems = {line.strip() for line in output.splitlines() if line.strip().startswith("usercube-agents:")}
    assert len(problems) == 1, output
    (problem,) = problems
    assert problem.startswith(f"usercube-agents:{case.path}: "), output
    assert case.fix in problem, output
    assert local.estate.commands_since(marks) == dict.fromkeys(local.estate.hosts, 0)
    leaked = [value for value in secrets if value in output]
    assert not leaked, "a secret's plaintext is in the output"


def test_cases_cover_the_issue() -> None:
    assert len(CASES) >= 30
    assert len({case.id for case in CASES}) == len(CASES)

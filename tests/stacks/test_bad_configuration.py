"""Bad stack configurations are refused before any resource is declared, each with one message.

The stack half of the bad-input corpus (the resource and component half is
tests/components/test_bad_inputs_engine.py). Every case changes one thing in the `local` stack file,
as a user editing it would, and runs `up` through the real Pulumi CLI against the simulated estate.
Each must fail with exactly one problem, written as ``usercube-agents:<key path>: <what is wrong and
how to fix it>``; no simulated host may receive a single command (with `up`, a check that only a
resource made would come after other resources already ran); and no secret's plaintext may appear
in the output.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import dsa
from pulumi import automation as auto

from stackrun.workspace import open_stack
from tests.providers.test_certificate_engine import PASSWORD, make_pfx, rsa_key
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


@dataclass(frozen=True)
class Values:
    """What a mutation can write: the stack's values decrypted, and the bad secrets of ``bad_secrets()``
    encrypted for this stack (``{secure: ...}``, as `pulumi config set --secret` writes them)."""

    plain: Plain
    encrypted: dict[str, dict[str, str]]


Mutation = Callable[[Config, Values], None]
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


@dataclass(frozen=True)
class Encrypted:
    """One of ``bad_secrets()``, encrypted."""

    name: str


def _parent(document: Any, loc: Loc) -> Any:
    for part in loc[:-1]:
        document = document[part]
    return document


def _top(cfg: Config) -> dict[str, Any]:
    """``cfg`` seen with the short keys (``hosts``, ``agents``), sharing its values."""
    return {"hosts": cfg[HOSTS_KEY], "agents": cfg[AGENTS_KEY]}


def _resolve(value: Any, cfg: Config, values: Values) -> Any:
    if isinstance(value, PlainText):
        return _parent(values.plain, value.loc)[value.loc[-1]]
    if isinstance(value, Copied):
        return copy.deepcopy(_parent(_top(cfg), value.loc)[value.loc[-1]])
    if isinstance(value, Encrypted):
        return dict(values.encrypted[value.name])
    if isinstance(value, dict):
        return {key: _resolve(item, cfg, values) for key, item in value.items()}
    return value


def put(loc: Loc, value: Any) -> Mutation:
    def mutate(cfg: Config, values: Values) -> None:
        _parent(_top(cfg), loc)[loc[-1]] = _resolve(value, cfg, values)

    return mutate


def drop(loc: Loc) -> Mutation:
    def mutate(cfg: Config, values: Values) -> None:
        del _parent(_top(cfg), loc)[loc[-1]]

    return mutate


def rename(loc: Loc, new_key: str) -> Mutation:
    def mutate(cfg: Config, values: Values) -> None:
        parent = _parent(_top(cfg), loc)
        parent[new_key] = parent.pop(loc[-1])

    return mutate


def stack_key(key: str, value: Any) -> Mutation:
    def mutate(cfg: Config, values: Values) -> None:
        cfg[f"usercube-agents:{key}"] = _resolve(value, cfg, values)

    return mutate


def steps(*mutations: Mutation) -> Mutation:
    def mutate(cfg: Config, values: Values) -> None:
        for mutation in mutations:
            mutation(cfg, values)

    return mutate


def twin(of: int, **keys: Any) -> Mutation:
    """A second agent beside ``agents[of]`` on the same host, valid as it is (its own directory,
    site, pool, service, DNS alias, name and identifier), appended as agents[3] with ``keys``."""

    def mutate(cfg: Config, values: Values) -> None:
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
    files: tuple[tuple[str, bytes], ...] = ()  # files the stack names, written under the project first


# A zip with no entry (its end-of-central-directory record only): a valid archive whose SHA-256 the cases choose.
EMPTY_ZIP = b"PK\x05\x06" + bytes(18)
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
    Case(
        "shared-binding-ipv6-spelled-twice",
        steps(
            put(("agents", 1, "ipAddress"), "2001:db8::5"),
            twin(1, hostName="agent-zone-a.contoso.example", ipAddress="[2001:DB8:0::5]"),
        ),
        "agents[3].httpsPort",
        "binding [2001:db8::5]:443:agent-zone-a.contoso.example on host 'zone-a' is also used by agents[1]",
    ),
    Case(
        "shared-sni-entry-on-two-addresses",
        steps(
            put(("agents", 1, "ipAddress"), "10.0.0.5"),
            twin(1, hostName="agent-zone-a.contoso.example", ipAddress="10.0.0.6"),
        ),
        "agents[3].hostName",
        "HTTP.sys keeps one certificate per host name and port: give another hostName or httpsPort",
    ),
    Case(
        "one-url-on-two-hosts",
        put(("agents", 2, "hostName"), "agent-zone-a.contoso.example"),
        "agents[2].hostName",
        "https://agent-zone-a.contoso.example is also the URL of agents[1] (zone-a) on host 'zone-a'; give each",
    ),
    Case(
        "http-port-equals-https-port-elsewhere",
        steps(put(("agents", 1, "httpsPort"), 8443), put(("agents", 1, "httpPort"), 8443)),
        "agents[1].httpPort",
        "equals httpsPort (8443); give another port, or 0 for no http binding",
    ),
    # -- names the resources check, checked first -----------------------------------------------
    Case(
        "site-name-forbidden-character",
        put(("agents", 1, "siteName"), "Identity Manager: Zone A"),
        "agents[1].siteName",
        'IIS refuses \\ / ? ; : @ & = + $ , | " < > * in site names: leave them out',
    ),
    Case(
        "pool-name-forbidden-character",
        put(("agents", 1, "poolName"), "IdentityManager/ZoneA"),
        "agents[1].poolName",
        "(IIS refuses them) nor $ % & (the name becomes the account IIS APPPOOL\\<name>): leave them out",
    ),
    Case(
        "pool-name-too-long",
        put(("agents", 0, "poolName"), "IdentityManager" + "x" * 60),
        "agents[0].poolName",
        "keep pool names to 64 (the IIS APPPOOL account name)",
    ),
    Case(
        "service-name-backslash",
        put(("agents", 2, "serviceName"), "Identity\\Manager"),
        "agents[2].serviceName",
        "'/' and '\\' (and control characters) are not allowed in a service name",
    ),
    Case(
        "service-name-with-iis-hosting",
        put(("agents", 1, "serviceName"), "IdentityManagerAgentZoneA"),
        "agents[1].serviceName",
        "is used only with hosting: service; remove it",
    ),
    Case(
        "pool-name-with-service-hosting",
        put(("agents", 2, "poolName"), "IdentityManagerAgentZoneB"),
        "agents[2].poolName",
        "is used only with hosting: iis; remove it",
    ),
    Case(
        "gmsa-account-forbidden-character",
        put((*ZONE_B_IDENTITY, "account"), "CONTOSO\\svc[agent-b]$"),
        "agents[2].identity.account",
        "is not an account name; give 'DOMAIN\\name'",
    ),
    Case(
        "user-account-as-upn-for-a-service",
        put(
            ZONE_B_IDENTITY,
            {"kind": "User", "account": "CONTOSO\\svc@contoso.example", "password": Copied((*ZONE_A_SSL, "password"))},
        ),
        "agents[2].identity.account",
        "give the account as DOMAIN\\user, not as user@domain",
    ),
    Case(
        "working-directory-too-long",
        put(("agents", 1, "workingDirectory"), "C:\\" + "w" * 220),
        "agents[1].workingDirectory",
        "keep it to 214 characters",
    ),
    Case(
        "hosting-bundle-older-than-the-manual",
        put(("agents", 1, "minimumHostingBundle"), "6.0"),
        "agents[1].minimumHostingBundle",
        "older than the .NET 8 hosting bundle the manual requires; give 8.0 or newer",
    ),
    Case(
        "host-name-not-a-dns-name",
        put(("agents", 1, "hostName"), "agent_zone_a.contoso.example"),
        "agents[1].hostName",
        "is not a DNS name (letters, digits, '-' and '.')",
    ),
    Case(
        "ip-address-bracketed-ipv4",
        put(("agents", 1, "ipAddress"), "[10.0.0.5]"),
        "agents[1].ipAddress",
        "give '*' (all unassigned), an IPv4 address (10.0.0.5) or an IPv6 address without a zone index",
    ),
    Case(
        "ip-address-with-zone-index",
        put(("agents", 1, "ipAddress"), "fe80::1%12"),
        "agents[1].ipAddress",
        "an IPv6 address without a zone index (2001:db8::5 or [2001:db8::5])",
    ),
    # -- settings keys the agent's .NET configuration cannot read back ---------------------------
    Case(
        "managed-system-name-with-colon",
        rename(("agents", 1, "settings", "connections", "ADExport"), "AD:Export"),
        'agents[1].settings.connections["AD:Export"]',
        "holds ':', which .NET configuration reads as a nested section; rename the key",
    ),
    Case(
        "managed-system-keys-differing-in-case",
        put(("agents", 1, "settings", "connections", "ADExport", "login"), "CONTOSO\\other"),
        "agents[1].settings.connections.ADExport.login",
        "differs from 'Login' only in case: .NET configuration reads both as one setting; keep one of them",
    ),
    Case(
        "openid-clients-differing-in-case",
        put(
            ("agents", 1, "settings", "openIdClients", "job"), Copied(("agents", 1, "settings", "openIdClients", "Job"))
        ),
        "agents[1].settings.openIdClients.job",
        "differs from 'Job' only in case",
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
    *(
        Case(
            f"pfx-{name}",
            put(ZONE_A_SSL, {"pfx": Encrypted(name), "password": Encrypted("pfx-password")}),
            "agents[1].sslCertificate.pfx",
            fix,
        )
        for name, fix in (
            ("rsa-1024", "holds an RSA-1024 key; the manual requires RSA-2048 or larger: create a new key pair"),
            ("sha1", "signed with SHA1, which the manual forbids (never SHA-1); re-issue it signed with SHA-256"),
            ("no-key", "holds a certificate but no private key; export it with its key"),
            ("dsa", "holds a DSA key, which IIS and Identity Manager do not use: create a new key pair"),
            ("expired", "holds a certificate that expired on "),
        )
    ),
    Case(
        "identity-server-pfx-sha1",
        put(
            ("agents", 0, "identityServerCertificate"),
            {"pfx": Encrypted("sha1"), "password": Encrypted("pfx-password")},
        ),
        "agents[0].identityServerCertificate.pfx",
        "which the manual forbids (never SHA-1)",
    ),
    Case(
        "encryption-pfx-weak",
        put(
            ("agents", 2, "encryptionCertificate"),
            {"pfx": Encrypted("rsa-1024"), "password": Encrypted("pfx-password")},
        ),
        "agents[2].encryptionCertificate.pfx",
        "the manual requires RSA-2048 or larger",
    ),
    # -- hosts -----------------------------------------------------------------------------------
    Case(
        "winrm-basic-over-http",
        put(("hosts", "zone-a", "transport"), "basic"),
        "hosts.zone-a.transport",
        "over plain HTTP would send the password readable on the wire; set useHttps: true or use transport 'ntlm'",
    ),
    Case(
        "ca-bundle-missing",
        put(("hosts", "zone-a", "caBundle"), "certs/contoso-root.pem"),
        "hosts.zone-a.caBundle",
        "'certs/contoso-root.pem' (relative paths start at the project directory) does not exist; give the PEM file",
    ),
    Case(
        "ca-bundle-not-pem",
        put(("hosts", "zone-a", "caBundle"), "Pulumi.yaml"),
        "hosts.zone-a.caBundle",
        "holds no valid PEM certificate ('-----BEGIN CERTIFICATE-----' ...); give the PEM file of the CAs",
    ),
    Case(
        "ca-bundle-a-folder",
        put(("hosts", "zone-a", "caBundle"), "stacks"),
        "hosts.zone-a.caBundle",
        "is not a file; give the PEM file",
    ),
    Case(
        "host-address-is-a-url",
        put(("hosts", "zone-a", "address"), "http://127.0.0.3"),
        "hosts.zone-a.address",
        "give only the name, without 'http://', port or path (set 'port' and 'useHttps' separately)",
    ),
    Case(
        "one-host-twice",
        steps(
            put(("hosts", "zone-b", "address"), Copied(("hosts", "zone-a", "address"))),
            put(("hosts", "zone-b", "port"), Copied(("hosts", "zone-a", "port"))),
        ),
        "hosts.zone-b.address",
        "is also hosts.zone-a: one Windows host is one entry of hosts",
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
        "typo-of-a-one-agent-layout-secret",
        stack_key("winrmPasword", Encrypted("pfx-password")),
        "winrmPasword",
        "looks like 'winrmPassword', a key of the one-agent layout, replaced by `hosts` and `agents`",
    ),
    Case(
        "one-agent-layout-key",
        stack_key("windowsHost", "agent01.contoso.com"),
        "windowsHost",
        "is a key of the one-agent layout, replaced by `hosts` and `agents`",
    ),
    # -- the runtime archive, the hosting bundle, the verification (issue 11 §5: none had a case) --------------
    Case(
        "runtime-archive-file-missing",
        put(("agents", 1, "runtimeArchive"), {"path": "vendor/IdentityManager-Runtime.zip"}),
        "agents[1].runtimeArchive.path",
        "does not exist; give the path of the vendor's runtime archive (.zip) (relative paths start at the project",
    ),
    Case(
        "runtime-archive-sha256-not-hex",
        put(("agents", 1, "runtimeArchive"), {"path": "Pulumi.yaml", "sha256": "not-a-hash"}),
        "agents[1].runtimeArchive.sha256",
        "give 64 hexadecimal digits",
    ),
    Case(
        "runtime-archive-sha256-does-not-match",
        put(("agents", 1, "runtimeArchive"), {"path": "vendor/runtime.zip", "sha256": "0" * 64}),
        "agents[1].runtimeArchive.sha256",
        f"not the {'0' * 64} the stack expects: it is not the archive you meant",
        files=(("vendor/runtime.zip", EMPTY_ZIP),),
    ),
    Case(
        "runtime-archive-not-a-zip",
        put(("agents", 2, "runtimeArchive"), {"path": "Pulumi.yaml"}),
        "agents[2].runtimeArchive.path",
        "is not a zip archive; give the vendor's runtime archive (.zip)",
    ),
    Case(
        "runtime-archive-typo-key",
        put(("agents", 1, "runtimeArchive"), {"path": "Pulumi.yaml", "sha": "0" * 64}),
        "agents[1].runtimeArchive.sha",
        "did you mean 'sha256'?",
    ),
    Case(
        "hosting-bundle-installer-missing",
        put(("hosts", "zone-a", "hostingBundle"), {"path": "dotnet-hosting-8.0.12-win.exe", "version": "8.0.12"}),
        "hosts.zone-a.hostingBundle.path",
        "does not exist; give the path of the .NET Hosting Bundle installer you downloaded",
    ),
    Case(
        "hosting-bundle-not-an-installer",
        put(("hosts", "zone-a", "hostingBundle"), {"path": "Pulumi.yaml", "version": "8.0.12"}),
        "hosts.zone-a.hostingBundle.path",
        "is not a Windows executable (no 'MZ' header); download the hosting bundle installer again",
    ),
    Case(
        "hosting-bundle-version-not-three-numbers",
        put(("hosts", "zone-a", "hostingBundle"), {"path": "Pulumi.yaml", "version": "8.0"}),
        "hosts.zone-a.hostingBundle.version",
        "not '8.0': The ASP.NET Core runtime version it installs, e.g. 8.0.11",
    ),
    Case(
        "hosting-bundle-typo-key",
        put(("hosts", "zone-a", "hostingBundle"), {"path": "Pulumi.yaml", "version": "8.0.12", "restrat": True}),
        "hosts.zone-a.hostingBundle.restrat",
        "did you mean 'restart'?",
    ),
    Case(
        "verify-not-a-boolean",
        put(("agents", 1, "verify"), "sometimes"),
        "agents[1].verify",
        "is 'sometimes', not a boolean: write true or false",
    ),
]


@cache
def bad_secrets() -> dict[str, str]:
    """PFX files the manual forbids, and their password (made once, when the tests run)."""
    pfxs = {
        "rsa-1024": make_pfx(key=rsa_key(1024)),
        "sha1": make_pfx(signature="sha1"),
        "no-key": make_pfx(with_key=False),
        "dsa": make_pfx(key=dsa.generate_private_key(2048)),
        "expired": make_pfx(valid_from_days=-30, valid_days=10),
    }
    return {**pfxs, "pfx-password": PASSWORD}


@pytest.fixture(scope="module")
def values(tmp_path_factory: pytest.TempPathFactory, estate: SimulatedEstate) -> Values:
    """The local stack's values decrypted by the CLI (``pulumi config --show-secrets``), and
    ``bad_secrets()`` encrypted with the stack's key by `pulumi config set --secret`, once."""
    project = EstateProject(tmp_path_factory.mktemp("decrypt"), estate)
    project.write()
    stack = open_stack(
        STACK,
        work_dir=project.project,
        extra_env={"PULUMI_BACKEND_URL": f"file://{project.backend}", "PULUMI_CONFIG_PASSPHRASE": project.passphrase},
    )
    config = stack.get_all_config()
    plain = {key: json.loads(config[f"usercube-agents:{key}"].value) for key in ("hosts", "agents")}
    scratch = {
        f"usercube-agents:scratch.{name}": auto.ConfigValue(value, secret=True) for name, value in bad_secrets().items()
    }
    stack.set_all_config(scratch, path=True)
    written = yaml.safe_load(project.stack_file.read_text(encoding="utf-8"))["config"]["usercube-agents:scratch"]
    return Values(plain, {name: dict(written[name]) for name in bad_secrets()})


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


def test_secret_values_are_known(local: EstateProject, values: Values) -> None:
    """The leak check below looks for real plaintexts: the host password, the PFX, ..."""
    found = secret_values(local.config(), values.plain)
    assert LOCAL_HOST_PASSWORD in found
    assert all(len(value) >= 16 for value in found)
    assert set(values.encrypted) == set(bad_secrets())
    assert all(set(value) == {"secure"} for value in values.encrypted.values())


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_configuration_is_refused_before_any_host_is_touched(
    local: EstateProject, values: Values, case: Case
) -> None:
    cfg = local.config()
    secrets = [*secret_values(cfg, values.plain), "Us3r-Passw0rd!", *bad_secrets().values()]
    case.mutate(cfg, values)
    local.write(cfg)
    for relative, content in case.files:
        (local.project / relative).parent.mkdir(parents=True, exist_ok=True)
        (local.project / relative).write_bytes(content)
    marks = local.estate.marks()

    code, output = local.run("up")

    assert code != 0, output
    assert "invalid stack configuration (1 problem):" in output, output
    problems = {line.strip() for line in output.splitlines() if line.strip().startswith("usercube-agents:")}
    assert len(problems) == 1, output
    (problem,) = problems
    assert problem.startswith(f"usercube-agents:{case.path}: "), output
    assert case.fix in problem, output
    # The stack's words, not the resources': no snake_case property outside quoted values and commands.
    words = re.sub(r"'[^']*'|`[^`]*`|\"[^\"]*\"", "", problem)
    assert not re.search(r"\b[a-z]+_[a-z_]+\b", words), problem
    assert local.estate.commands_since(marks) == dict.fromkeys(local.estate.hosts, 0)
    leaked = [value for value in secrets if value in output]
    assert not leaked, "a secret's plaintext is in the output"


def test_cases_cover_the_issue() -> None:
    assert len(CASES) >= 60
    assert len({case.id for case in CASES}) == len(CASES)


def test_a_valid_stack_does_reach_every_host(local: EstateProject) -> None:
    """The control for the count above: the same run with the stack file unchanged sends commands to
    every host, so zero commands means the configuration stopped the run (last: it deploys)."""
    local.write(local.config())
    marks = local.estate.marks()
    code, output = local.run("up")
    assert code == 0, output
    assert all(count > 0 for count in local.estate.commands_since(marks).values())

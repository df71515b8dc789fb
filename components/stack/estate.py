"""Rules of the estate as a whole: what one agent's keys alone cannot tell.

Hosts referenced exist; the fields each agent kind needs are there and the ones it cannot use are
not; no two agents on one host share a working directory, site, pool, service or binding; agent
identifiers are unique in the environment; PFX files pass the manual's rules, runtime archives
exist with the SHA-256 the stack expects and hosting bundle installers exist (checked locally,
before any host is contacted).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError

from components.args import configuration_key_problems, identity_account
from components.stack.errors import Problem, key_path, nearest
from components.stack.schema import (
    AgentSpec,
    CertificateSpec,
    EstateSpec,
    HostingBundleSpec,
    HostSpec,
    RuntimeArchiveSpec,
)
from providers.certificate.pfx import PfxRefused, inspect_pfx
from providers.hosting_bundle.local import InstallerRefused, inspect_installer
from providers.runtime_archive.local import ArchiveRefused, inspect_archive
from providers.transport.connection import HostConnection, ca_bundle_file


def check_estate(spec: EstateSpec, project_dir: Path) -> list[Problem]:
    problems: list[Problem] = []
    problems += _hosts(spec, project_dir)
    for index, agent in enumerate(spec.agents):
        problems += _agent(index, agent, spec)
        problems += _runtime_archive(f"agents[{index}].runtimeArchive", agent.runtime_archive, project_dir)
    problems += _unique_in_environment(spec)
    problems += _unique_per_host(spec)
    return problems


# HostConnection's fields as `hosts.<name>` writes them.
_CONNECTION_KEYS = {
    "host": "address",
    "port": "port",
    "transport": "transport",
    "use_https": "useHttps",
    "validate_certificate": "validateCertificate",
    "ca_bundle": "caBundle",
    "username": "user",
    "password": "password",
    "max_parallel_operations": "maxParallelOperations",
}


def _stack_words(message: str) -> str:
    """A HostConnection message in the stack file's words."""
    message = message.replace("use_https=true", "useHttps: true")
    for field, key in _CONNECTION_KEYS.items():
        message = message.replace(f"'{field}'", f"'{key}'")
    return message


def _hosts(spec: EstateSpec, project_dir: Path) -> list[Problem]:
    problems = []
    endpoints: dict[tuple[str, int], str] = {}
    for name, host in spec.hosts.items():
        at = f"hosts.{name}"
        # The CA bundle is checked where a relative path starts (the project directory), below.
        connection = {**host.connection(host.password), "ca_bundle": None}
        try:
            checked = HostConnection.model_validate(connection)
        except ValidationError as error:  # only the messages: the input (with the password) stays out
            for item in error.errors(include_url=False, include_input=False):
                # The one rule across fields is basic authentication over plain HTTP: the transport's.
                key = _CONNECTION_KEYS.get(str(item["loc"][0]), "transport") if item["loc"] else "transport"
                reason = _stack_words(str(item["msg"]).removeprefix("Value error, "))
                problems.append(Problem(f"{at}.{key}", reason))
        else:
            endpoint = (checked.host.lower(), checked.effective_port)
            if endpoint in endpoints:
                problems.append(
                    Problem(
                        f"{at}.address",
                        f"{checked.label} is also hosts.{endpoints[endpoint]}: one Windows host is one entry of "
                        "hosts (its features and default site are declared once); put its agents on "
                        f"{endpoints[endpoint]!r} and remove this entry",
                    )
                )
            endpoints.setdefault(endpoint, name)
        if host.ca_bundle:
            problems += _ca_bundle(f"{at}.caBundle", host.ca_bundle, project_dir)
        problems += _hosting_bundle(name, host, spec, project_dir)
    return problems


def _ca_bundle(at: str, path: str, project_dir: Path) -> list[Problem]:
    resolved = str(project_dir / path)
    try:
        ca_bundle_file(resolved)
    except ValueError as error:
        message = str(error).replace(repr(resolved), repr(path))
        if not Path(path).is_absolute():
            message = message.replace(f"{path!r} ", f"{path!r} (relative paths start at the project directory) ", 1)
        return [Problem(at, message)]
    return []


def installer_path(bundle: HostingBundleSpec, project_dir: Path) -> Path:
    """Where the installer is: relative paths start at the project directory (as caBundle's)."""
    return project_dir / Path(bundle.path).expanduser()


def _hosting_bundle(name: str, host: HostSpec, spec: EstateSpec, project_dir: Path) -> list[Problem]:
    bundle = host.hosting_bundle
    if bundle is None:
        return []
    at = f"hosts.{name}.hostingBundle"
    try:
        inspect_installer(installer_path(bundle, project_dir), bundle.version)
    except InstallerRefused as refused:
        return [Problem(f"{at}.path", f"{refused} (relative paths start at the project directory)")]
    problems = []
    for index, agent in enumerate(spec.agents):
        if agent.host == name and _version(bundle.version) < _version(agent.minimum_hosting_bundle):
            problems.append(
                Problem(
                    f"{at}.version",
                    f"{bundle.version} is below agents[{index}].minimumHostingBundle ({agent.minimum_hosting_bundle}): "
                    "give the installer of that version or newer",
                )
            )
    return problems


def _version(text: str) -> tuple[int, ...]:
    parts = [int(part) for part in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def _agent(index: int, agent: AgentSpec, spec: EstateSpec) -> list[Problem]:
    at = f"agents[{index}]"
    problems: list[Problem] = []

    def need(condition: bool, key: str, message: str) -> None:
        if not condition:
            problems.append(Problem(f"{at}.{key}", message))

    if agent.host not in spec.hosts:
        guess = nearest(agent.host, spec.hosts)
        hint = f"did you mean {guess!r}? " if guess else ""
        problems.append(
            Problem(f"{at}.host", f"unknown host {agent.host!r}; {hint}hosts of this stack: {sorted(spec.hosts)}")
        )
    if agent.http_port and agent.http_port == agent.https_port:
        need(False, "httpPort", f"equals httpsPort ({agent.https_port}); give another port, or 0 for no http binding")
    if agent.identity.account:
        try:
            identity_account(agent.identity.account, agent.hosting)
        except ValueError as error:
            need(False, "identity.account", str(error))
    for name_key, name, hosting in (
        ("siteName", agent.site_name, "iis"),
        ("poolName", agent.pool_name, "iis"),
        ("serviceName", agent.service_name, "service"),
    ):
        need(not name or agent.hosting == hosting, name_key, f"is used only with hosting: {hosting}; remove it")
    settings = agent.settings
    for loc, message in configuration_key_problems(dict.fromkeys(settings.open_id_clients)):
        problems.append(Problem(key_path(("agents", index, "settings", "openIdClients", *loc)), message))
    for loc, message in configuration_key_problems(settings.connections):
        problems.append(Problem(key_path(("agents", index, "settings", "connections", *loc)), message))
    if agent.kind == "production":
        need(bool(settings.agent_identifier), "settings.agentIdentifier", "is required for a production agent")
        need(bool(settings.application_uri), "settings.applicationUri", "is required: the Identity Manager URL")
        need(bool(settings.open_id_clients), "settings.openIdClients", "give at least one client: name -> secret")
        if settings.open_id_clients and settings.default_client not in settings.open_id_clients:
            need(
                False,
                "settings.defaultOpenIdClient",
                f"{settings.default_open_id_client or '(empty)'} is not a key of settings.openIdClients "
                f"({sorted(settings.open_id_clients)}); name one of them",
            )
        for key, present in (
            ("license", agent.license),
            ("connectionString", agent.connection_string),
            ("identityServerCertificate", agent.identity_server_certificate),
        ):
            need(not present, key, "belongs to the integrated agent (the server); remove it from a production agent")
    else:
        need(agent.hosting == "iis", "hosting", "the integrated agent runs in the server's IIS site; use iis")
        need(bool(agent.license), "license", "is required for the integrated agent (the server's License)")
        need(bool(agent.connection_string), "connectionString", "is required for the integrated agent (a secret)")
        need(agent.identity_server_certificate is not None, "identityServerCertificate", "is required (the server)")
        unused: tuple[tuple[str, object], ...] = (
            ("settings.agentIdentifier", settings.agent_identifier),
            ("settings.applicationUri", settings.application_uri),
            ("settings.openIdClients", settings.open_id_clients),
        )
        for key, value in unused:
            need(not value, key, "is not used by the integrated agent (it is the server's 'Local' agent); remove it")
    if agent.hosting == "iis":
        need(agent.ssl_certificate is not None, "sslCertificate", "IIS serves the agent over HTTPS; give pfx+password")
    elif agent.kind == "production":  # an integrated agent is told above to use iis
        need(
            agent.identity.kind != "ApplicationPoolIdentity",
            "identity.kind",
            "a Windows service cannot run as ApplicationPoolIdentity; use GroupManagedServiceAccount or User",
        )
        need(agent.ssl_certificate is None, "sslCertificate", "is used only with hosting: iis; remove it")
    for key, certificate in (
        ("sslCertificate", agent.ssl_certificate),
        ("encryptionCertificate", agent.encryption_certificate),
        ("identityServerCertificate", agent.identity_server_certificate),
    ):
        problems += _pfx(f"{at}.{key}", certificate)
    return problems


def _pfx(at: str, certificate: CertificateSpec | None) -> list[Problem]:
    if certificate is None or certificate.from_store:
        return []
    try:
        inspect_pfx(certificate.pfx, certificate.password)
    except PfxRefused as refused:
        key = "password" if refused.property == "pfx_password" else "pfx"
        return [Problem(f"{at}.{key}", refused.message.replace("with pfx_password", "with this password"))]
    return []


def archive_path(archive: RuntimeArchiveSpec, project_dir: Path) -> Path:
    """Where the archive is: relative paths start at the project directory (as caBundle's)."""
    return project_dir / Path(archive.path).expanduser()


def _runtime_archive(at: str, archive: RuntimeArchiveSpec | None, project_dir: Path) -> list[Problem]:
    if archive is None:
        return []
    try:
        found = inspect_archive(archive_path(archive, project_dir))
    except ArchiveRefused as refused:
        return [Problem(f"{at}.path", f"{refused} (relative paths start at the project directory)")]
    if archive.sha256 and found.sha256 != archive.sha256:
        return [
            Problem(
                f"{at}.sha256",
                f"{found.name} has SHA-256 {found.sha256}, not the {archive.sha256} the stack expects: it is not the "
                "archive you meant (another version, or a corrupted download); download it again, or set the "
                "SHA-256 the vendor publishes for the file you mean",
            )
        ]
    return []


def _duplicates(
    agents: Sequence[tuple[int, AgentSpec]], value: Callable[[AgentSpec], object], key: str, what: str
) -> list[Problem]:
    seen: dict[object, int] = {}
    problems = []
    for index, agent in agents:
        item = value(agent)
        if item is None:
            continue
        if item in seen:
            first = seen[item]
            problems.append(
                Problem(
                    f"agents[{index}].{key}",
                    f"{what} is also used by agents[{first}] ({dict(agents)[first].name}); give each agent its own",
                )
            )
        else:
            seen[item] = index
    return problems


def _unique_in_environment(spec: EstateSpec) -> list[Problem]:
    indexed = list(enumerate(spec.agents))
    problems = _duplicates(indexed, lambda a: a.name, "name", "this name")
    # The server reaches each agent at its URL, and DNS sends a name to one host: no two agents can
    # share one (two IIS agents on one host are told by the binding checks below which binding collides).
    first_url: dict[str, int] = {}
    for index, agent in indexed:
        first = spec.agents[first_url.setdefault(agent.url, index)]
        both_iis_on_one_host = first.host == agent.host and first.hosting == agent.hosting == "iis"
        if first is not agent and not both_iis_on_one_host:
            problems.append(
                Problem(
                    f"agents[{index}].hostName",
                    f"{agent.url} is also the URL of agents[{first_url[agent.url]}] ({first.name}) on host "
                    f"{first.host!r}; give each agent its own DNS alias",
                )
            )
    production = [(i, a) for i, a in indexed if a.kind == "production" and a.settings.agent_identifier]
    problems += _duplicates(
        production, lambda a: a.settings.agent_identifier.lower(), "settings.agentIdentifier", "this agent identifier"
    )
    return problems


def _unique_per_host(spec: EstateSpec) -> list[Problem]:
    problems: list[Problem] = []
    for host in spec.hosts:
        on_host = [(i, a) for i, a in enumerate(spec.agents) if a.host == host]
        iis = [(i, a) for i, a in on_host if a.hosting == "iis"]
        service = [(i, a) for i, a in on_host if a.hosting == "service"]
        problems += _duplicates(
            on_host, lambda a: a.root.lower(), "workingDirectory", f"working directory on host {host!r}"
        )
        problems += _duplicates(iis, lambda a: a.effective_site_name.lower(), "siteName", f"site on host {host!r}")
        problems += _duplicates(iis, lambda a: a.effective_pool_name.lower(), "poolName", f"pool on host {host!r}")
        problems += _duplicates(
            service, lambda a: a.effective_service_name.lower(), "serviceName", f"service on host {host!r}"
        )
        bindings = [(i, a, port) for i, a in iis for port in (a.https_port, a.http_port) if port]
        seen: dict[tuple[str, int, str], int] = {}
        for index, agent, port in bindings:
            binding = (agent.ip_address, port, agent.host_name)
            if binding in seen and seen[binding] != index:
                address = f"[{agent.ip_address}]" if ":" in agent.ip_address else agent.ip_address  # as IIS writes it
                problems.append(
                    Problem(
                        f"agents[{index}].{'httpsPort' if port == agent.https_port else 'httpPort'}",
                        f"binding {address}:{port}:{agent.host_name} on host {host!r} is also used by "
                        f"agents[{seen[binding]}]; give another hostName or port",
                    )
                )
            seen.setdefault(binding, index)
        # With SNI (how the agents' https bindings are made), HTTP.sys keeps one certificate per host name
        # and port, whatever the address (netsh http add sslcert hostnameport=<name>:<port>): two agents
        # with one hostName and httpsPort on different addresses would overwrite each other's certificate.
        sni: dict[tuple[str, int], int] = {}
        for index, agent in iis:
            first = sni.setdefault((agent.host_name, agent.https_port), index)
            if first != index and spec.agents[first].ip_address != agent.ip_address:
                problems.append(
                    Problem(
                        f"agents[{index}].hostName",
                        f"{agent.host_name}:{agent.https_port} on host {host!r} is also the https binding of "
                        f"agents[{first}] (on another address); HTTP.sys keeps one certificate per host name and "
                        "port: give another hostName or httpsPort",
                    )
                )
    return problems


__all__ = ["check_estate", "key_path"]

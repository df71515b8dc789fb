"""One environment: a connection and a baseline per host, then every agent the stack describes.

Resource names come from the agent's ``name`` (and the host's key for the baseline), never from
its position in the list, so adding, removing or reordering agents touches only those agents.
Moving an agent to another host keeps its names: its resources are replaced because their
connection's host changed (created on the new host first, then deleted on the old one).
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import quoteattr

import pulumi

from components.args import (
    AgentSettings,
    CertificateSource,
    HostingBundleSource,
    Identity,
    PfxCertificate,
    RuntimeArchiveSource,
    StoreCertificate,
    WebHosting,
)
from components.host_baseline import HostBaseline
from components.integrated_agent import IntegratedAgent, IntegratedAgentArgs
from components.production_agent import ProductionAgent, ProductionAgentArgs
from components.stack.load import Estate
from components.stack.schema import AgentSpec, CertificateSpec
from components.stack.secrets import must_be_secret


def deploy(estate: Estate) -> dict[str, Any]:
    """Declare every host's baseline and every agent; return the stack's ``agents`` export."""
    spec = estate.spec
    connections = {name: host.connection(pulumi.Output.secret(host.password)) for name, host in spec.hosts.items()}
    baselines = {name: _baseline(name, connections[name], spec.agents, estate) for name in spec.hosts}
    # A host the hosting bundle may restart: everything else on it waits for the bundle, so no operation is in flight
    # there while it restarts (the connection's password, the same secret, is known only once the bundle is done).
    for name, host in spec.hosts.items():
        baseline = baselines[name]
        if baseline is not None and baseline.bundle is not None and host.hosting_bundle and host.hosting_bundle.restart:
            password = pulumi.Output.all(baseline.bundle.urn, pulumi.Output.secret(host.password))
            connections[name] = host.connection(password.apply(lambda pair: pair[1]))
    exports: dict[str, Any] = {}
    for index, agent in enumerate(spec.agents):
        secrets = _Secrets(estate, index)
        link = connections[agent.host]
        base = baselines[agent.host]
        deployed: ProductionAgent | IntegratedAgent
        if agent.kind == "integrated":
            deployed = IntegratedAgent(agent.name, _integrated_args(agent, secrets), link, baseline=base)
        else:
            deployed = ProductionAgent(agent.name, _production_args(agent, secrets), link, baseline=base)
        exports[agent.name] = {
            "kind": agent.kind,
            "host": agent.host,
            "url": agent.url,
            "identityAccount": deployed.identity_account,
            "sslCertificateThumbprint": deployed.ssl_thumbprint,
            "encryptionCertificateThumbprint": deployed.encryption_thumbprint,
            "workingDirectory": agent.root,
            "xmlConfiguration": agent_xml(agent),
        }
    # What each host's hosting bundle run left: the version, and a restart the installer asked for (never done).
    bundles = {
        name: {
            "hostingBundle": {
                "installedVersion": b.bundle.installed_version,
                "restartPending": b.bundle.restart_pending,
            }
        }
        for name, b in baselines.items()
        if b is not None and b.bundle is not None
    }
    if bundles:
        pulumi.export("hosts", bundles)
    return exports


def agent_xml(agent: AgentSpec) -> str:
    """The line the integration team adds to the XML configuration (its Identifier is the agent's)."""
    display = agent.display_name or agent.identifier
    return (
        f"<Agent Identifier={quoteattr(agent.identifier)} DisplayName_L1={quoteattr(display)} "
        f"URI={quoteattr(agent.url)} />"
    )


def _baseline(host: str, link: dict[str, Any], agents: list[AgentSpec], estate: Estate) -> HostBaseline | None:
    """One per host that runs an IIS agent or has a hosting bundle: the union of what its agents ask of it."""
    iis = [agent for agent in agents if agent.host == host and agent.hosting == "iis"]
    bundle = _bundle(estate, host)
    if not iis and bundle is None:
        return None
    return HostBaseline(
        f"host-{host}",
        link,
        rsat_ad_tools=any(agent.rsat_ad_tools for agent in iis),
        minimum_hosting_bundle=max((agent.minimum_hosting_bundle for agent in iis), key=_version, default="8.0"),
        remove_default_site=any(agent.remove_default_site for agent in iis),
        install_features=any(agent.install_features for agent in iis),
        iis=bool(iis),
        bundle=bundle,
    )


def _bundle(estate: Estate, host: str) -> HostingBundleSource | None:
    """The host's hosting bundle installer as the loader checked it (a path, a name, a size, a hash: no secret)."""
    found = estate.hosting_bundle(host)
    bundle = estate.spec.hosts[host].hosting_bundle
    if found is None or bundle is None:
        return None
    return HostingBundleSource(
        path=found.path,
        name=found.name,
        size=found.size,
        sha256=found.sha256,
        version=bundle.version,
        restart=bundle.restart,
    )


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


class _Secrets:
    """Wraps the values of one agent that are secrets as Pulumi secrets, each on its own."""

    def __init__(self, estate: Estate, index: int) -> None:
        self.estate = estate
        self.at: tuple[str | int, ...] = ("agents", index)

    def __call__(self, value: Any) -> pulumi.Output[Any]:
        return pulumi.Output.secret(value)

    def tree(self, value: Any, *path: str | int) -> Any:
        """A free-form object (managed-system connections): secret where the stack encrypted it or
        where the key names a password or secret; plain elsewhere, so those diffs stay visible."""
        loc = (*self.at, *path)
        if isinstance(value, dict):
            return {key: self.tree(item, *path, key) for key, item in value.items()}
        if isinstance(value, list):
            return [self.tree(item, *path, index) for index, item in enumerate(value)]
        if self.estate.is_secret(loc) or must_be_secret(loc):
            return pulumi.Output.secret(value)
        return value

    def certificate(self, spec: CertificateSpec) -> CertificateSource:
        if spec.from_store:
            return StoreCertificate(thumbprint=spec.thumbprint)
        return PfxCertificate(pfx_base64=self(spec.pfx), password=self(spec.password))

    def identity(self, agent: AgentSpec) -> Identity:
        spec = agent.identity
        return Identity(
            kind=spec.kind,
            account=spec.account or None,
            password=self(spec.password) if spec.password else None,
        )


def _runtime_archive(secrets: _Secrets) -> RuntimeArchiveSource | None:
    """The agent's runtime archive as the loader checked it (not a secret: a path, a name, a size, a hash)."""
    found = secrets.estate.runtime_archive(int(secrets.at[1]))
    if found is None:
        return None
    return RuntimeArchiveSource(path=found.path, name=found.name, size=found.size, sha256=found.sha256)


def _web(agent: AgentSpec) -> WebHosting:
    return WebHosting(
        site_name=agent.effective_site_name,
        pool_name=agent.effective_pool_name,
        host_name=agent.host_name,
        https_port=agent.https_port,
        http_port=agent.http_port or None,
        ip_address=agent.ip_address,
        remove_default_site=agent.remove_default_site,
    )


def _production_args(agent: AgentSpec, secrets: _Secrets) -> ProductionAgentArgs:
    settings = agent.settings
    return ProductionAgentArgs(
        organization=agent.organization,
        working_directory=agent.working_directory or None,
        hosting=agent.hosting,
        web=_web(agent) if agent.hosting == "iis" else None,
        service_name=agent.effective_service_name,
        identity=secrets.identity(agent),
        ssl_certificate=secrets.certificate(agent.ssl_certificate) if agent.ssl_certificate else None,
        encryption_certificate=secrets.certificate(agent.encryption_certificate),
        settings=AgentSettings(
            agent_identifier=settings.agent_identifier,
            application_uri=settings.application_uri,
            openid_clients={name: secrets(value) for name, value in settings.open_id_clients.items()},
            default_openid_client=settings.default_client,
            connections=secrets.tree(settings.connections, "settings", "connections"),
        ),
        data_folder_rights=agent.data_folder_rights,
        install_features=agent.install_features,
        rsat_ad_tools=agent.rsat_ad_tools,
        minimum_hosting_bundle=agent.minimum_hosting_bundle,
        runtime_archive=_runtime_archive(secrets),
        verify=agent.verify,
    )


def _integrated_args(agent: AgentSpec, secrets: _Secrets) -> IntegratedAgentArgs:
    assert agent.ssl_certificate is not None and agent.identity_server_certificate is not None  # checked on load
    return IntegratedAgentArgs(
        organization=agent.organization,
        working_directory=agent.working_directory or None,
        web=_web(agent),
        identity=secrets.identity(agent),
        ssl_certificate=secrets.certificate(agent.ssl_certificate),
        encryption_certificate=secrets.certificate(agent.encryption_certificate),
        identity_server_certificate=secrets.certificate(agent.identity_server_certificate),
        license=secrets(agent.license),
        connection_string=secrets(agent.connection_string),
        agent_connections=secrets.tree(agent.settings.connections, "settings", "connections"),
        data_folder_rights=agent.data_folder_rights,
        install_features=agent.install_features,
        rsat_ad_tools=agent.rsat_ad_tools,
        minimum_hosting_bundle=agent.minimum_hosting_bundle,
        runtime_archive=_runtime_archive(secrets),
        verify=agent.verify,
    )

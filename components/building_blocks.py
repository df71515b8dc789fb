"""Pieces both agent shapes share: features, folders, permissions, certificates, settings files."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pulumi

from components.args import (
    AgentSettings,
    CertificateSource,
    DataFolderRights,
    HostingBundleSource,
    Identity,
    RuntimeArchiveSource,
    StoreCertificate,
    WebHosting,
)
from providers.agent_verification import AgentVerification
from providers.certificate import Certificate
from providers.certificate.pfx import pfx_thumbprint
from providers.directory import Directory
from providers.file_acl import FileAcl
from providers.hosting_bundle import HostingBundle
from providers.iis_default_site_removal import IisDefaultSiteRemoval
from providers.iis_prerequisites import IisPrerequisites
from providers.iis_site import IisSite
from providers.runtime_archive import RuntimeArchive
from providers.settings_file import SettingsFile
from providers.windows_feature import WindowsFeature

SUBFOLDERS = ("Runtime", "Mails", "Sources", "Temp", "Work")
DATA_FOLDERS = ("Temp", "Work", "Mails")
# The settings files an agent may write into Runtime (install-agents-6.2), relative to it.
WEB_CONFIG = "web.config"
SERVER_SETTINGS = "appsettings.json"
AGENT_SETTINGS = "appsettings.agent.json"


class RuntimeFiles:
    """The files one agent writes into Runtime itself, named once when the component starts: every SettingsFile
    takes its path from ``path`` and the runtime archive keeps exactly these (``names``), so the archive never
    replaces one of them and always puts the vendor's others in place (a production agent writes no
    appsettings.json: the vendor's is its base settings). ``check_all_written`` ends the component: a name listed
    and not written would be a vendor file kept out of Runtime for nothing."""

    def __init__(self, runtime: str, names: Iterable[str]) -> None:
        self.runtime = runtime
        self.names = tuple(names)
        self._written: set[str] = set()

    def path(self, name: str) -> str:
        """The full path of ``name``, one of ``names`` (any other is a bug of the component: the archive would
        replace it)."""
        if name not in self.names:
            raise ValueError(f"{name} is not among the files this agent keeps from the runtime archive {self.names}")
        self._written.add(name)
        return f"{self.runtime}\\{name}"

    def check_all_written(self) -> None:
        unwritten = [name for name in self.names if name not in self._written]
        if unwritten:
            raise ValueError(f"{unwritten} are kept from the runtime archive but no settings file writes them")


WEB_CONFIG_TEMPLATE = """<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <location path="." inheritInChildApplications="false">
    <system.webServer>
      <handlers>
        <add name="aspNetCore" path="*" verb="*" modules="AspNetCoreModuleV2" resourceType="Unspecified" />
      </handlers>
      <aspNetCore processPath="dotnet" arguments="{dll}" stdoutLogEnabled="false"
                  stdoutLogFile="../Temp/{log}" hostingModel="inprocess" />
      <applicationInitialization doAppInitAfterRestart="true">
        <add initializationPage="/" />
      </applicationInitialization>
    </system.webServer>
  </location>
</configuration>
"""


def features(name: str, connection: Any, rsat_ad_tools: bool, opts: pulumi.ResourceOptions) -> list[pulumi.Resource]:
    """IIS with Application Initialization (install-agents-saas-full-guide: Install IIS via Server Manager)."""
    names = ["Web-Server", "Web-AppInit"] + (["RSAT-ADDS-Tools"] if rsat_ad_tools else [])
    return [WindowsFeature(f"{name}-features", connection=connection, names=names, opts=opts)]


def prerequisites(
    name: str, connection: Any, minimum: str, opts: pulumi.ResourceOptions, after: list[pulumi.Resource]
) -> pulumi.Resource:
    """IIS >= 10, the hosting bundle and AspNetCoreModuleV2 (agent-requirements, finalize)."""
    return IisPrerequisites(
        f"{name}-prerequisites",
        connection=connection,
        minimum_hosting_bundle=minimum,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=after)),
    )


def hosting_bundle(
    name: str, connection: Any, source: HostingBundleSource, opts: pulumi.ResourceOptions, after: list[pulumi.Resource]
) -> HostingBundle:
    """The .NET Hosting Bundle, after IIS (agent-requirements; the manual's Finalize, step 1: installed before IIS,
    it must be repaired)."""
    return HostingBundle(
        f"{name}-hosting-bundle",
        connection=connection,
        source_path=source.path,
        installer_name=source.name,
        sha256=source.sha256,
        size=source.size,
        version=source.version,
        restart=source.restart,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=after)),
    )


def default_site_removal(
    name: str, connection: Any, opts: pulumi.ResourceOptions, after: list[pulumi.Resource]
) -> list[pulumi.Resource]:
    """The manual removes the Default Web Site and DefaultAppPool; destroy puts them back."""
    options = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=after))
    return [IisDefaultSiteRemoval(f"{name}-remove-default-site", connection=connection, opts=options)]


def working_folders(name: str, connection: Any, root: str, opts: pulumi.ResourceOptions) -> Directory:
    """The working directory and its sub-folders (install-production-agent-6.1). Never deleted with data in it."""
    return Directory(
        f"{name}-working-directory", connection=connection, path=root, subfolders=list(SUBFOLDERS), opts=opts
    )


def identity_for_pool(identity: Identity) -> dict[str, Any]:
    if identity.kind == "ApplicationPoolIdentity":
        return {"identity_type": "ApplicationPoolIdentity"}
    if identity.kind == "GroupManagedServiceAccount":
        return {"identity_type": "SpecificUser", "identity_user": identity.account}
    return {"identity_type": "SpecificUser", "identity_user": identity.account, "identity_password": identity.password}


def data_folder_acls(
    name: str,
    connection: Any,
    root: str,
    account: pulumi.Input[str],
    data_rights: DataFolderRights,
    opts: pulumi.ResourceOptions,
    after: list[pulumi.Resource],
) -> list[pulumi.Resource]:
    """Permissions of the agent's account (DOMAIN.md: Permissions). No Deny entries are added: the
    account gets nothing else explicitly, and inherited rights stay as the server's policy sets them."""
    options = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=after))
    grants: list[tuple[str, str, list[str]]] = [
        ("root", root, ["Read", "ReadAndExecute", "ListDirectory"]),
        ("runtime", f"{root}\\Runtime", ["ReadAndExecute", "ListDirectory"]),
        *[(folder.lower(), f"{root}\\{folder}", [str(data_rights)]) for folder in DATA_FOLDERS],
    ]
    return [
        FileAcl(f"{name}-acl-{key}", connection=connection, path=path, principal=account, rights=rights, opts=options)
        for key, path, rights in grants
    ]


def certificate(
    name: str,
    connection: Any,
    source: CertificateSource,
    readers: list[pulumi.Input[str]],
    opts: pulumi.ResourceOptions,
) -> pulumi.Output[str]:
    """The certificate's thumbprint: a PFX is imported into LocalMachine\\My with a non-exportable key
    readable by ``readers``; a certificate already in the store is only referenced."""
    if isinstance(source, StoreCertificate):
        if readers:
            pulumi.log.warn(
                f"{name}: certificate {source.thumbprint} is taken from LocalMachine\\My as it is; grant the "
                "agent's account read access to its private key where it was imported (the manual requires it)"
            )
        return pulumi.Output.from_input(source.thumbprint.upper())
    imported = Certificate(
        name,
        connection=connection,
        pfx=source.pfx_base64,
        pfx_password=source.password,
        private_key_readers=readers,
        opts=opts,
    )
    # The PFX determines its thumbprint: computed here, it is known in every preview, also when the
    # certificate is being updated (whose outputs the engine marks unknown until the update ran), so
    # the bindings and settings that use it show no false change. Not a secret: Windows shows it.
    thumbprint = pulumi.Output.unsecret(
        pulumi.Output.all(source.pfx_base64, source.password).apply(lambda pair: pfx_thumbprint(pair[0], pair[1]))
    )
    return known_after(imported, thumbprint)


def known_after(resource: pulumi.Resource, value: pulumi.Input[str]) -> pulumi.Output[str]:
    """``value``, known in previews, that still makes its consumers wait for ``resource``."""
    return pulumi.Output.all(resource.urn, value).apply(lambda pair: str(pair[1]))


def pool_account(pool_name: str, identity: Identity) -> str:
    """The account an application pool runs as: ``IIS APPPOOL\\<pool>`` for ApplicationPoolIdentity
    (the virtual account Windows derives from the pool's name), else the configured account."""
    return f"IIS APPPOOL\\{pool_name}" if identity.kind == "ApplicationPoolIdentity" else str(identity.account)


def agent_settings_document(settings: AgentSettings, encryption_thumbprint: pulumi.Input[str]) -> dict[str, Any]:
    """appsettings.agent.json (install-agents-6.2); the encryption certificate is referenced in the
    store (the manual's recommended method), never as a PFX file with its password."""
    document: dict[str, Any] = {
        "OpenId": {"AgentIdentifier": settings.agent_identifier},
        "ApplicationUri": settings.application_uri,
        "OpenIdClients": dict(settings.openid_clients),
        "DefaultOpenIdClient": settings.default_openid_client,
        "EncryptionCertificate": {
            "Thumbprint": encryption_thumbprint,
            "StoreLocation": "LocalMachine",
            "StoreName": "My",
        },
    }
    if settings.connections:
        document["Connections"] = dict(settings.connections)
    return document


def runtime_archive(
    name: str,
    connection: Any,
    source: RuntimeArchiveSource | None,
    files: RuntimeFiles,
    opts: pulumi.ResourceOptions,
    after: list[pulumi.Resource],
    *,
    app_pool: str = "",
    service_name: str = "",
) -> list[pulumi.Resource]:
    """The vendor's runtime archive extracted into Runtime (install-agents-6.2: working directory content),
    upgraded with the pool or service stopped; none when the stack names no archive. The settings files
    are written after it (they depend on it) and kept by it: ``files``, the agent's own list."""
    if source is None:
        return []
    return [
        RuntimeArchive(
            f"{name}-runtime",
            connection=connection,
            source_path=source.path,
            archive_name=source.name,
            sha256=source.sha256,
            size=source.size,
            runtime_path=files.runtime,
            keep_files=list(files.names),
            app_pool=app_pool,
            service_name=service_name,
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=after)),
        )
    ]


def web_config(
    name: str,
    connection: Any,
    files: RuntimeFiles,
    dll: str,
    log: str,
    opts: pulumi.ResourceOptions,
    after: list[pulumi.Resource],
) -> SettingsFile:
    """web.config: in-process hosting of ``dll`` with application initialization (IIS start mode)."""
    return SettingsFile(
        name,
        connection=connection,
        path=files.path(WEB_CONFIG),
        content=WEB_CONFIG_TEMPLATE.format(dll=dll, log=log),
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=after)),
    )


def web_site(
    name: str,
    connection: Any,
    web: WebHosting,
    runtime: str,
    ssl_thumbprint: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
    installed: list[pulumi.Resource],
    after: list[pulumi.Resource],
) -> IisSite:
    """The site on Runtime: https with the host name and SSL certificate (plus http when asked),
    preload on; the Default Web Site and DefaultAppPool removed first when asked (install-agents-6.2)."""
    bindings: list[dict[str, Any]] = []
    if web.http_port:
        bindings.append(
            {"protocol": "http", "ip_address": web.ip_address, "port": web.http_port, "host_header": web.host_name}
        )
    bindings.append(
        {
            "protocol": "https",
            "ip_address": web.ip_address,
            "port": web.https_port,
            "host_header": web.host_name,
            "certificate_thumbprint": ssl_thumbprint,
            "certificate_store": "My",
            "sni": True,
        }
    )
    removed = default_site_removal(name, connection, opts, installed) if web.remove_default_site else []
    return IisSite(
        f"{name}-site",
        connection=connection,
        name=web.site_name,
        physical_path=runtime,
        app_pool=web.pool_name,
        bindings=bindings,
        preload_enabled=True,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[*after, *removed])),
    )


def runtime_family(minimum_hosting_bundle: str) -> str:
    """The ASP.NET Core major.minor an agent runs on, from its minimum hosting bundle (8.0.11 -> 8.0)."""
    return ".".join(minimum_hosting_bundle.split(".")[:2])


def web_verification(
    name: str,
    connection: Any,
    web: WebHosting,
    runtime: str,
    app_file: str,
    identity: pulumi.Input[str],
    ssl_thumbprint: pulumi.Input[str],
    key_thumbprints: list[pulumi.Input[str]],
    family: str,
    opts: pulumi.ResourceOptions,
    after: list[pulumi.Resource],
    *,
    health_check: bool,
) -> AgentVerification:
    """The manual's verification of an IIS agent, from its host: the site over HTTPS with its host name and bound
    certificate; the server's /hc must answer Healthy (install-server-6.2, Test Your Installation)."""
    port = "" if web.https_port == 443 else f":{web.https_port}"
    path = "/hc" if health_check else "/"
    return AgentVerification(
        f"{name}-verify",
        connection=connection,
        hosting="iis",
        url=f"https://{web.host_name}{port}{path if health_check else ''}",
        host_name=web.host_name,
        port=web.https_port,
        ip_address=web.ip_address,
        path=path,
        expect_body="Healthy" if health_check else "",
        expected_thumbprint=ssl_thumbprint,
        site_name=web.site_name,
        pool_name=web.pool_name,
        runtime_path=runtime,
        app_file=app_file,
        identity=identity,
        key_thumbprints=key_thumbprints,
        runtime_family=family,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=after)),
    )

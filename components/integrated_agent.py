"""IntegratedAgent: the agent inside the Identity Manager server (Usercube-Server.exe).

There is no agent executable: deploying it means deploying the server's site, pool, identity,
permissions, certificates and settings (agent-requirements, install-server-6.2). The agent's
settings live in appsettings.agent.json next to the server in Runtime. The server writes appsettings.json and
web.config, and appsettings.agent.json only when it has agent connections (``runtime_files``); the runtime
archive keeps those and puts the vendor's others in place.

Known limit: a server that loses its agent connections gets the archive's appsettings.agent.json extracted
(it is no longer kept), which the old SettingsFile's delete, run after the update, then deletes; the next
``up --refresh`` sees it missing and extracts it again.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pydantic import Field, field_validator, model_validator

from components.args import (
    AgentArgsBase,
    CertificateSource,
    WebHosting,
    check_configuration_keys,
    require_secret,
)
from components.building_blocks import (
    AGENT_SETTINGS,
    SERVER_SETTINGS,
    WEB_CONFIG,
    RuntimeFiles,
    certificate,
    data_folder_acls,
    features,
    identity_for_pool,
    known_after,
    pool_account,
    prerequisites,
    runtime_archive,
    runtime_family,
    web_config,
    web_site,
    web_verification,
    working_folders,
)
from components.host_baseline import HostBaseline
from providers.iis_app_pool import IisAppPool
from providers.settings_file import SettingsFile

SERVER_DLL = "./identitymanager-Server.dll"


class IntegratedAgentArgs(AgentArgsBase):
    web: WebHosting
    ssl_certificate: CertificateSource
    identity_server_certificate: CertificateSource
    license: Any = Field(description="The license key (a Pulumi secret).")
    connection_string: Any = Field(
        description="Database connection string (a Pulumi secret); Integrated Security=SSPI recommended."
    )
    agent_connections: dict[str, Any] = Field(default_factory=dict, description="Managed systems of the agent.")
    verify: bool = Field(True, description="Check from the host that the server answers /hc with Healthy.")

    @field_validator("agent_connections")
    @classmethod
    def _connection_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_configuration_keys(value, "agent_connections")

    @model_validator(mode="after")
    def _account(self) -> IntegratedAgentArgs:
        self.check_identity_account("iis")
        return self

    def model_post_init(self, context: Any, /) -> None:
        require_secret(self.license, "license")
        require_secret(self.connection_string, "connection_string")


def runtime_files(runtime: str, agent_connections: bool) -> RuntimeFiles:
    """What the server writes into Runtime: appsettings.json and web.config, and appsettings.agent.json when it has
    agent connections."""
    return RuntimeFiles(runtime, [SERVER_SETTINGS, WEB_CONFIG, *([AGENT_SETTINGS] if agent_connections else [])])


class IntegratedAgent(pulumi.ComponentResource):
    identity_account: pulumi.Output[str]
    encryption_thumbprint: pulumi.Output[str]
    ssl_thumbprint: pulumi.Output[str]
    site_name: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: IntegratedAgentArgs,
        connection: pulumi.Input[dict[str, Any]],
        opts: pulumi.ResourceOptions | None = None,
        *,
        baseline: HostBaseline | None = None,
    ) -> None:
        """``baseline``: the host's features, prerequisites check and default-site removal (see ProductionAgent)."""
        super().__init__("usercube:agents:IntegratedAgent", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        root = args.root
        runtime = f"{root}\\Runtime"
        written = runtime_files(runtime, bool(args.agent_connections))

        installed: list[pulumi.Resource] = []
        if baseline is None:
            installed = features(name, connection, args.rsat_ad_tools, child) if args.install_features else []
            ready = [*installed, prerequisites(name, connection, args.minimum_hosting_bundle, child, installed)]
        else:
            ready = baseline.ready
        folders = working_folders(name, connection, root, child)
        pool = IisAppPool(
            f"{name}-pool",
            connection=connection,
            name=args.web.pool_name,
            **identity_for_pool(args.identity),
            opts=pulumi.ResourceOptions(parent=self, depends_on=ready),
        )
        # Known from the inputs (previews stay exact), and still waiting for the pool to exist.
        account = known_after(pool, pool_account(args.web.pool_name, args.identity))
        acls = data_folder_acls(name, connection, root, account, args.data_folder_rights, child, [folders])
        archive = runtime_archive(
            name, connection, args.runtime_archive, written, child, [folders, *acls, pool], app_pool=args.web.pool_name
        )
        encryption = certificate(f"{name}-encryption-cert", connection, args.encryption_certificate, [account], child)
        identity_server = certificate(
            f"{name}-identity-server-cert", connection, args.identity_server_certificate, [account], child
        )
        ssl = certificate(f"{name}-ssl-cert", connection, args.ssl_certificate, [], child)
        after_folders = pulumi.ResourceOptions(parent=self, depends_on=[folders, *archive])
        server_settings = SettingsFile(
            f"{name}-appsettings",
            connection=connection,
            path=written.path(SERVER_SETTINGS),
            json_content={
                "License": args.license,
                "ConnectionString": args.connection_string,
                # The store (recommended by the manual), never a PFX file path with its password.
                "IdentityServer": {
                    "X509Thumbprint": identity_server,
                    "X509StoreLocation": "LocalMachine",
                    "X509StoreName": "My",
                },
                "EncryptionCertificate": {
                    "Thumbprint": encryption,
                    "StoreLocation": "LocalMachine",
                    "StoreName": "My",
                },
            },
            # The license and connection string: only the server's account (with SYSTEM and
            # Administrators) may read the file.
            readers=[account],
            opts=after_folders,
        )
        files: list[pulumi.Resource] = [server_settings]
        if args.agent_connections:
            files.append(
                SettingsFile(
                    f"{name}-appsettings-agent",
                    connection=connection,
                    path=written.path(AGENT_SETTINGS),
                    json_content={"Connections": dict(args.agent_connections)},
                    readers=[account],
                    opts=after_folders,
                )
            )
        files.append(
            web_config(
                f"{name}-web-config", connection, written, SERVER_DLL, "stdout-server.log", child, [folders, *archive]
            )
        )
        web = args.web if baseline is None else args.web.model_copy(update={"remove_default_site": False})
        site = web_site(name, connection, web, runtime, ssl, child, installed, [*ready, pool, *acls, *files])
        if args.verify:
            family = runtime_family(args.minimum_hosting_bundle)
            web_verification(
                name, connection, args.web, runtime, SERVER_DLL.removeprefix("./"), account, ssl,
                [encryption, identity_server], family, child, [site], health_check=True,
            )  # fmt: skip
        written.check_all_written()
        self.identity_account = account
        self.encryption_thumbprint = encryption
        self.ssl_thumbprint = ssl
        self.site_name = site.name
        self.register_outputs({"identity_account": account, "encryption_thumbprint": encryption})

"""ProductionAgent: a separate Identity Manager agent on its own Windows Server, as the manual prescribes.

Composes, in the manual's order (DOMAIN.md):
1. Windows features Web-Server and Web-AppInit (+ RSAT AD tools when asked) — IIS hosting only.
2. A read-only prerequisites check: IIS >= 10, .NET hosting bundle, AspNetCoreModuleV2.
3. The working directory with Runtime, Mails, Sources, Temp, Work (never deleted with data).
4. The application pool (No Managed Code, AlwaysRunning, idle 0, load profile, no periodic
   recycling) and its identity — or a Windows service running Usercube-Agent.exe --service.
5. NTFS permissions for that identity: working directory and Runtime read/execute/list, Temp,
   Work and Mails Modify (or FullControl when the stack chooses it).
6. Certificates: the SSL certificate for the https binding and the encryption key pair
   (RSA >= 2048, SHA-256), private key readable by the agent's identity.
7. The runtime archive (when the stack names one) extracted into Runtime, then the settings:
   web.config (in-process, the agent dll, app initialization; IIS hosting only) and appsettings.agent.json
   (agent identifier, server URL, OpenId clients, encryption certificate, managed-system connections) —
   secrets stay Pulumi secrets, and the file is readable only by the agent's account, SYSTEM and
   Administrators. The archive keeps these two (``runtime_files``) and puts the vendor's others in place,
   appsettings.json (the agent's base settings) among them.
8. The IIS site on <working directory>\\Runtime with https on 443 (and optional http), preload on;
   the Default Web Site and DefaultAppPool removed when asked.
9. The manual's "Verify Agent Installation", from the host itself (on by default, ``verify``): the site
   answers over HTTPS with its host name and the bound certificate (or the service runs), else the likely
   cause is named.
"""

from __future__ import annotations

from typing import Any, Literal

import pulumi
from pydantic import Field, field_validator, model_validator

from components.args import (
    AgentArgsBase,
    AgentSettings,
    CertificateSource,
    WebHosting,
)
from components.building_blocks import (
    AGENT_SETTINGS,
    WEB_CONFIG,
    RuntimeFiles,
    agent_settings_document,
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
from providers.agent_verification import AgentVerification
from providers.iis_app_pool import IisAppPool
from providers.settings_file import SettingsFile
from providers.windows_service import WindowsService
from providers.windows_service.model import service_name

AGENT_DLL = "./identitymanager-Agent.dll"
SERVICE_EXE = "Usercube-Agent.exe"


class ProductionAgentArgs(AgentArgsBase):
    hosting: Literal["iis", "service"] = "iis"
    web: WebHosting | None = None
    service_name: str | None = None
    ssl_certificate: CertificateSource | None = None
    settings: AgentSettings
    verify: bool = Field(True, description="Check from the host that the agent answers once it is in place.")

    @field_validator("service_name")
    @classmethod
    def _service(cls, value: str | None) -> str | None:
        return None if value is None else service_name(value)

    @model_validator(mode="after")
    def _hosting(self) -> ProductionAgentArgs:
        if self.hosting == "iis":
            if self.web is None:
                raise ValueError("web: IIS hosting needs site_name, pool_name and host_name")
            if self.ssl_certificate is None:
                raise ValueError("ssl_certificate: IIS hosting serves the agent over HTTPS; give the certificate")
        elif self.identity.kind == "ApplicationPoolIdentity":
            raise ValueError("identity: a Windows service cannot run as ApplicationPoolIdentity; use a gMSA or user")
        self.check_identity_account(self.hosting)
        return self


def runtime_files(runtime: str, hosting: str) -> RuntimeFiles:
    """What a production agent writes into Runtime: appsettings.agent.json, and web.config when IIS hosts it (a
    service reads no web.config); never appsettings.json, which comes from the runtime archive."""
    return RuntimeFiles(runtime, [AGENT_SETTINGS, *([WEB_CONFIG] if hosting == "iis" else [])])


class ProductionAgent(pulumi.ComponentResource):
    """A separate agent: features, folders, identity, permissions, certificates, settings, site or service."""

    site_name: pulumi.Output[str] | None
    identity_account: pulumi.Output[str]
    encryption_thumbprint: pulumi.Output[str]
    ssl_thumbprint: pulumi.Output[str] | None

    def __init__(
        self,
        name: str,
        args: ProductionAgentArgs,
        connection: pulumi.Input[dict[str, Any]],
        opts: pulumi.ResourceOptions | None = None,
        *,
        baseline: HostBaseline | None = None,
    ) -> None:
        """``baseline``: the host's features, prerequisites check and default-site removal, declared
        once per host by the stack; without it the agent declares its own (a host of its own)."""
        super().__init__("usercube:agents:ProductionAgent", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        root = args.root
        runtime = f"{root}\\Runtime"
        written = runtime_files(runtime, args.hosting)

        installed: list[pulumi.Resource] = []
        ready: list[pulumi.Resource] = []
        if baseline is not None:
            ready = baseline.ready
        elif args.hosting == "iis":
            installed = features(name, connection, args.rsat_ad_tools, child) if args.install_features else []
            ready = [*installed, prerequisites(name, connection, args.minimum_hosting_bundle, child, installed)]
        folders = working_folders(name, connection, root, child)

        pool: IisAppPool | None = None
        if args.hosting == "iis":
            assert args.web is not None
            pool = IisAppPool(
                f"{name}-pool",
                connection=connection,
                name=args.web.pool_name,
                **identity_for_pool(args.identity),
                opts=pulumi.ResourceOptions(parent=self, depends_on=ready),
            )
            # Known from the inputs (previews stay exact), and still waiting for the pool to exist.
            account: pulumi.Output[str] = known_after(pool, pool_account(args.web.pool_name, args.identity))
        else:
            account = pulumi.Output.from_input(str(args.identity.account))

        acls = data_folder_acls(name, connection, root, account, args.data_folder_rights, child, [folders])
        service_name = args.service_name or f"IdentityManagerAgent{args.organization}"
        archive = runtime_archive(
            name,
            connection,
            args.runtime_archive,
            written,
            child,
            [folders, *acls, *([pool] if pool is not None else [])],
            app_pool=args.web.pool_name if args.web is not None and args.hosting == "iis" else "",
            service_name=service_name if args.hosting == "service" else "",
        )
        encryption = certificate(f"{name}-encryption-cert", connection, args.encryption_certificate, [account], child)
        files = [
            SettingsFile(
                f"{name}-appsettings-agent",
                connection=connection,
                path=written.path(AGENT_SETTINGS),
                json_content=agent_settings_document(args.settings, encryption),
                # The OpenId client secret and managed-system passwords: only the agent's account (with
                # SYSTEM and Administrators) may read the file.
                readers=[account],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[folders, *archive]),
            )
        ]

        self.site_name = None
        self.ssl_thumbprint = None
        if args.hosting == "iis":
            assert args.web is not None and args.ssl_certificate is not None and pool is not None
            files.append(
                web_config(
                    f"{name}-web-config", connection, written, AGENT_DLL, "stdout-agent.log", child, [folders, *archive]
                )
            )
            ssl = certificate(f"{name}-ssl-cert", connection, args.ssl_certificate, [], child)
            web = args.web if baseline is None else args.web.model_copy(update={"remove_default_site": False})
            site = web_site(name, connection, web, runtime, ssl, child, installed, [*ready, pool, *acls, *files])
            self.site_name = site.name
            self.ssl_thumbprint = ssl
            if args.verify:
                family = runtime_family(args.minimum_hosting_bundle)
                web_verification(
                    name, connection, args.web, runtime, AGENT_DLL.removeprefix("./"), account, ssl, [encryption],
                    family, child, [site], health_check=False,
                )  # fmt: skip
        else:
            service = WindowsService(
                f"{name}-service",
                connection=connection,
                name=service_name,
                display_name=f"Identity Manager Agent {args.organization}",
                binary_path=f"{runtime}\\{SERVICE_EXE}",
                arguments=["--service"],
                account=str(args.identity.account),
                password=args.identity.password,
                # After the archive: the service starts its program, which the archive puts in Runtime.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*ready, *acls, *files, *archive]),
            )
            if args.verify:
                # No HTTPS endpoint to request: this project configures none for a service (its Kestrel endpoints
                # are the vendor's settings); the service must run, with its runtime and its keys readable.
                AgentVerification(
                    f"{name}-verify",
                    connection=connection,
                    hosting="service",
                    url=f"service {args.service_name or f'IdentityManagerAgent{args.organization}'}",
                    service_name=args.service_name or f"IdentityManagerAgent{args.organization}",
                    runtime_path=runtime,
                    app_file=SERVICE_EXE,
                    identity=account,
                    key_thumbprints=[encryption],
                    runtime_family=runtime_family(args.minimum_hosting_bundle),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[service]),
                )

        written.check_all_written()
        self.identity_account = account
        self.encryption_thumbprint = encryption
        self.register_outputs(
            {"identity_account": account, "encryption_thumbprint": encryption, "site_name": self.site_name}
        )

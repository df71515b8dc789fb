"""The example stack: a production Identity Manager agent on one Windows host, as the manual prescribes.

Run it with `make up` (the `local` stack against the simulated host) or, for a real host,
`python -m stackrun up --stack <name>` with the stack's configuration in stacks/.
"""

from __future__ import annotations

import pulumi

from components import config
from components.args import AgentSettings, Identity, PfxCertificate, WebHosting
from components.production_agent import ProductionAgent, ProductionAgentArgs

settings, secrets = config.load()
org = settings.organization

agent = ProductionAgent(
    "agent",
    ProductionAgentArgs(
        organization=org,
        working_directory=settings.working_directory or None,
        hosting=settings.hosting,
        web=WebHosting(
            site_name=settings.site_name or f"Identity Manager Agent {org}",
            pool_name=settings.pool_name or f"IdentityManagerAgent{org}",
            host_name=settings.host_name,
            https_port=settings.https_port,
            http_port=settings.http_port or None,
            remove_default_site=settings.remove_default_site,
        )
        if settings.hosting == "iis"
        else None,
        identity=Identity(
            kind=settings.identity_kind,
            account=settings.identity_account or None,
            password=secrets.get("identityPassword"),
        ),
        ssl_certificate=PfxCertificate(pfx_base64=secrets["sslPfx"], password=secrets["sslPfxPassword"])
        if settings.hosting == "iis"
        else None,
        encryption_certificate=PfxCertificate(
            pfx_base64=secrets["encryptionPfx"], password=secrets["encryptionPfxPassword"]
        ),
        settings=AgentSettings(
            agent_identifier=settings.agent_identifier,
            application_uri=settings.application_uri,
            openid_clients={"Job": secrets["openIdClientSecret"]},
            default_openid_client="Job",
        ),
        data_folder_rights=settings.data_folder_rights,
        rsat_ad_tools=settings.rsat_ad_tools,
    ),
    connection=settings.connection(secrets["winrmPassword"]),
)

pulumi.export("identityAccount", agent.identity_account)
pulumi.export("encryptionCertificateThumbprint", agent.encryption_thumbprint)
pulumi.export("siteName", agent.site_name)

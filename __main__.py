"""The example stack: an Identity Manager agent's settings on one Windows host.

Run it with `make up` (local stack against the simulated host) or, for a real host,
`python -m stackrun up --stack <name>` with the stack's configuration in stacks/.
"""

from __future__ import annotations

import pulumi

from components import config
from components.settings_content import WEB_CONFIG, agent_settings
from providers.settings_file import SettingsFile

settings, secrets = config.load()
connection = settings.connection(secrets["winrmPassword"])
runtime = f"{settings.effective_working_directory}\\Runtime"

agent_settings = SettingsFile(
    "appsettings-agent",
    connection=connection,
    path=f"{runtime}\\appsettings.agent.json",
    json_content=agent_settings(settings.agent_identifier, settings.application_uri, secrets["openIdClientSecret"]),
)
web_config = SettingsFile("web-config", connection=connection, path=f"{runtime}\\web.config", content=WEB_CONFIG)

pulumi.export("agentSettingsPath", agent_settings.path)
pulumi.export("agentSettingsSha256", agent_settings.sha256)
pulumi.export("webConfigSha256", web_config.sha256)

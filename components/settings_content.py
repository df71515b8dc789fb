"""Text of the agent's settings files, as the vendor's manual lays them out (DOMAIN.md: settings files)."""

from __future__ import annotations

import json

import pulumi

WEB_CONFIG = """<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <location path="." inheritInChildApplications="false">
    <system.webServer>
      <handlers>
        <add name="aspNetCore" path="*" verb="*" modules="AspNetCoreModuleV2" resourceType="Unspecified" />
      </handlers>
      <aspNetCore processPath="dotnet" arguments="./identitymanager-Agent.dll" stdoutLogEnabled="false" stdoutLogFile="../Temp/stdout-agent.log" hostingModel="inprocess" />
      <applicationInitialization doAppInitAfterRestart="true">
        <add initializationPage="/" />
      </applicationInitialization>
    </system.webServer>
  </location>
</configuration>
"""


def agent_settings_json(
    agent_identifier: str, application_uri: str, client_secret: pulumi.Output[str]
) -> pulumi.Output[str]:
    """appsettings.agent.json; the result is a secret because it embeds the OpenId client secret."""

    def render(secret: str) -> str:
        document = {
            "OpenId": {"AgentIdentifier": agent_identifier},
            "ApplicationUri": application_uri,
            "OpenIdClients": {"Job": secret},
            "DefaultOpenIdClient": "Job",
        }
        return json.dumps(document, indent=2) + "\n"

    return pulumi.Output.secret(client_secret.apply(render))

"""Text of the agent's settings files, as the vendor's manual lays them out (DOMAIN.md: settings files)."""

from __future__ import annotations

from typing import Any

import pulumi

WEB_CONFIG = """<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <location path="." inheritInChildApplications="false">
    <system.webServer>
      <handlers>
        <add name="aspNetCore" path="*" verb="*" modules="AspNetCoreModuleV2" resourceType="Unspecified" />
      </handlers>
      <aspNetCore processPath="dotnet" arguments="./identitymanager-Agent.dll" stdoutLogEnabled="false"
                  stdoutLogFile="../Temp/stdout-agent.log" hostingModel="inprocess" />
      <applicationInitialization doAppInitAfterRestart="true">
        <add initializationPage="/" />
      </applicationInitialization>
    </system.webServer>
  </location>
</configuration>
"""


def agent_settings(agent_identifier: str, application_uri: str, client_secret: pulumi.Output[str]) -> dict[str, Any]:
    """appsettings.agent.json as a JSON object: the client secret stays a Pulumi secret inside it."""
    return {
        "OpenId": {"AgentIdentifier": agent_identifier},
        "ApplicationUri": application_uri,
        "OpenIdClients": {"Job": client_secret},
        "DefaultOpenIdClient": "Job",
    }

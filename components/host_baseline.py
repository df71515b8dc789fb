"""HostBaseline: what one Windows server needs once, whatever number of IIS agents it runs.

IIS and Application Initialization, the prerequisites check (IIS >= 10, hosting bundle,
AspNetCoreModuleV2) and the removal of the Default Web Site are properties of the server, not of
an agent: declared once per host, no two agents fight over them, and removing one agent from a
host leaves the others' server as it was (the Default Web Site stays removed while any agent that
asked for it remains).
"""

from __future__ import annotations

from typing import Any

import pulumi

from components.building_blocks import default_site_removal, features, prerequisites


class HostBaseline(pulumi.ComponentResource):
    """Features, prerequisites check and default-site removal of one host; agents depend on ``ready``."""

    ready: list[pulumi.Resource]

    def __init__(
        self,
        name: str,
        connection: pulumi.Input[dict[str, Any]],
        *,
        rsat_ad_tools: bool,
        minimum_hosting_bundle: str,
        remove_default_site: bool,
        install_features: bool = True,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("usercube:agents:HostBaseline", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        installed = features(name, connection, rsat_ad_tools, child) if install_features else []
        checked = prerequisites(name, connection, minimum_hosting_bundle, child, installed)
        removed = default_site_removal(name, connection, child, installed) if remove_default_site else []
        self.ready = [*installed, checked, *removed]
        self.register_outputs({})

"""HostBaseline: what one Windows server needs once, whatever number of agents it runs.

IIS and Application Initialization, the .NET Hosting Bundle (when the stack gives its installer), the
prerequisites check (IIS >= 10, hosting bundle, AspNetCoreModuleV2) and the removal of the Default Web Site
are properties of the server, not of an agent: declared once per host, no two agents fight over them, and
removing one agent from a host leaves the others' server as it was (the Default Web Site stays removed while
any agent that asked for it remains). A host that runs only Windows-service agents gets a baseline only for
its hosting bundle (the .NET runtime the agent runs on); IIS is none of its business.
"""

from __future__ import annotations

from typing import Any

import pulumi

from components.args import HostingBundleSource
from components.building_blocks import default_site_removal, features, hosting_bundle, prerequisites
from providers.hosting_bundle import HostingBundle


class HostBaseline(pulumi.ComponentResource):
    """Features, hosting bundle, prerequisites check and default-site removal of one host; agents depend on
    ``ready``."""

    ready: list[pulumi.Resource]
    bundle: HostingBundle | None

    def __init__(
        self,
        name: str,
        connection: pulumi.Input[dict[str, Any]],
        *,
        rsat_ad_tools: bool,
        minimum_hosting_bundle: str,
        remove_default_site: bool,
        install_features: bool = True,
        iis: bool = True,
        bundle: HostingBundleSource | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("usercube:agents:HostBaseline", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        installed = features(name, connection, rsat_ad_tools, child) if iis and install_features else []
        # After IIS: the installer adds AspNetCoreModuleV2 only to an IIS that is there.
        runtime = [hosting_bundle(name, connection, bundle, child, installed)] if bundle is not None else []
        checked = []
        if iis:
            checked = [prerequisites(name, connection, minimum_hosting_bundle, child, [*installed, *runtime])]
        removed = []
        if iis and remove_default_site:
            removed = default_site_removal(name, connection, child, [*installed, *runtime])
        self.bundle = runtime[0] if runtime else None
        self.ready = [*installed, *runtime, *checked, *removed]
        self.register_outputs({})

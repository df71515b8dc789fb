"""The Pulumi resource class users write in their programs."""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import Resource

from providers.framework.adoption import refuse_import
from providers.iis_site.provider import IisSiteProvider


class IisSite(Resource, module="windows", name="IisSite"):
    """An IIS site whose root application runs in ``app_pool`` from ``physical_path``.

    ``bindings``: dicts with ``protocol`` (http/https), ``ip_address`` ("*"), ``port``, ``host_header``, and for
    https ``certificate_thumbprint``, ``certificate_store`` ("My") and ``sni``. The pool must exist (depend on it).
    """

    name: pulumi.Output[str]
    site_id: pulumi.Output[int]

    def __init__(
        self,
        resource_name: str,
        *,
        connection: pulumi.Input[dict[str, Any]],
        name: pulumi.Input[str],
        physical_path: pulumi.Input[str],
        app_pool: pulumi.Input[str],
        bindings: pulumi.Input[list[Any]],
        preload_enabled: pulumi.Input[bool] = True,
        state: pulumi.Input[str] = "Started",
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "connection": connection,
            "name": name,
            "physical_path": physical_path,
            "app_pool": app_pool,
            "bindings": bindings,
            "preload_enabled": preload_enabled,
            "state": state,
            "site_id": None,
        }
        refuse_import("IisSite", resource_name, opts)
        super().__init__(IisSiteProvider(), resource_name, props, opts)

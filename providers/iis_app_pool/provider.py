"""IisAppPool lifecycle on the host (scripts in ./scripts)."""

from __future__ import annotations

from typing import ClassVar

from providers.framework.provider import WindowsResourceProvider
from providers.iis_app_pool.model import IisAppPoolModel


class IisAppPoolProvider(WindowsResourceProvider):
    # The password never comes back from get (it is not in the state), so refresh never reports it.
    model = IisAppPoolModel
    package = "providers.iis_app_pool"
    output_keys: ClassVar[tuple[str, ...]] = ("identity_account", "identity_sid")

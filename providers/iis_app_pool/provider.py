"""IisAppPool lifecycle on the host (scripts in ./scripts)."""

from __future__ import annotations

from typing import Any, ClassVar

from providers.framework.model import ResourceModel
from providers.framework.provider import WindowsResourceProvider
from providers.iis_app_pool.model import IisAppPoolModel

# How refresh shows a SpecificUser identity that WAS cannot log on as a batch job (get's batch_logon_right):
# after the value of identity_user, so the drift names the account and the cause, and the next `up` grants it.
WITHOUT_BATCH_LOGON_RIGHT = (
    "(without 'Log on as a batch job': neither the account nor IIS_IUSRS holds SeBatchLogonRight)"
)


class IisAppPoolProvider(WindowsResourceProvider):
    # The password never comes back from get (it is not in the state), so refresh never reports it.
    model = IisAppPoolModel
    package = "providers.iis_app_pool"
    output_keys: ClassVar[tuple[str, ...]] = ("identity_account", "identity_sid")

    def actual_properties(self, spec: ResourceModel, state: dict[str, Any]) -> dict[str, Any]:
        actual = super().actual_properties(spec, state)
        # A Group Policy refresh may take the right from IIS_IUSRS after the deployment: the running worker
        # keeps its token, the next one (a recycle, a restart) fails to start.
        if state.get("batch_logon_right") is False and actual.get("identity_user"):
            actual["identity_user"] = f"{actual['identity_user']} {WITHOUT_BATCH_LOGON_RIGHT}"
        return actual

"""HostingBundle lifecycle on the host (scripts in ./scripts): get, chunk (the upload), set (the installer's
silent run), remove (the staged installer only).

Create and update: ask the host what it has (get). When it needs nothing (the runtime at this version or a newer
one of its major.minor, and AspNetCoreModuleV2 where IIS is installed), nothing is sent and nothing runs. Otherwise
the installer travels in resumable chunks (providers.framework.upload) unless the host already holds it, and set
runs it with `/install` or `/repair`, `/quiet /norestart`. A restart the installer asks for (exit code 3010) is
reported, in the `restart_pending` output and a warning, and done only when the stack allows it (``restart``): then
the provider waits until the host answers again with a new boot time.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import pulumi
from pulumi.dynamic import CheckFailure, CreateResult, UpdateResult

from providers.framework.model import ResourceModel
from providers.framework.upload import UploadingProvider, local_file_problems
from providers.hosting_bundle import local
from providers.hosting_bundle.model import HostingBundleModel

REBOOT_REQUIRED = 3010  # ERROR_SUCCESS_REBOOT_REQUIRED
RESTART_STARTED = 1641  # ERROR_SUCCESS_REBOOT_INITIATED
RESTART_POLL_S = 5.0


class HostingBundleProvider(UploadingProvider):
    model = HostingBundleModel
    package = "providers.hosting_bundle"
    output_keys: ClassVar[tuple[str, ...]] = (
        "installed_version",
        "netcore_installed_version",
        "aspnetcore_module_present",
        "restart_pending",
        "machine_restart_pending",
        "last_action",
        "exit_code",
    )

    def local_problems(self, spec: ResourceModel) -> list[CheckFailure]:
        assert isinstance(spec, HostingBundleModel)
        return local_file_problems(spec, lambda: local.inspect_installer(spec.source_path, spec.version))

    def actual_properties(self, spec: ResourceModel, state: dict[str, Any]) -> dict[str, Any]:
        # The host cannot tell which installer put the runtime there, only whether it needs one.
        return {"installed": state.get("action") == "none"}

    def create(self, props: dict[str, Any]) -> CreateResult:
        spec = self._spec(props)
        return CreateResult(spec.resource_id(), self._outputs(spec, self._ensure(spec)))

    def apply_update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        spec = self._spec(news)
        return UpdateResult(self._outputs(spec, self._ensure(spec)))

    # -- internals -------------------------------------------------------------------------

    def _ensure(self, spec: ResourceModel) -> dict[str, Any]:
        assert isinstance(spec, HostingBundleModel)
        self._refuse_changed_file(spec)
        state = self._run(spec, "get").state
        if state.get("action") == "none":
            return {**state, "last_action": "none", "exit_code": None}  # nothing to send, nothing to run
        if state.get("action") in ("install", "repair") and not state.get("staged"):
            self._send(spec, spec.installer_name, state)
        after = self._run(spec, "set").state
        if after.get("machine_restart_pending") and not after.get("restart_pending"):
            # Not this resource's: other software's pending renames, or servicing (machine_restart_pending output).
            pulumi.log.info(
                f"{self._label(spec)} on {spec.connection.host}: the host waits for a restart the installer did not "
                "ask for (PendingFileRenameOperations or component servicing); not done, not drift"
            )
        if after.get("restart_pending") and after.get("exit_code") == REBOOT_REQUIRED and spec.restart:
            return self._restart(spec, after)
        if after.get("restart_pending") and after.get("exit_code") not in (REBOOT_REQUIRED, RESTART_STARTED):
            pulumi.log.warn(
                f"{self._label(spec)} on {spec.connection.host}: an earlier run of the installer asked for a restart "
                "that is not done yet; restart the host when it suits you (`Restart-Computer`)"
            )
        elif after.get("restart_pending"):
            # Reported, not done: a restart in the middle of `up` cuts every operation in flight on the host and the
            # agents it serves; the operator restarts it in a maintenance window, or the stack allows it (restart,
            # and then every other resource of the host waits for this one).
            pulumi.log.warn(
                f"{self._label(spec)} on {spec.connection.host}: the installer ({after.get('last_action')}, exit code "
                f"{after.get('exit_code')}) asks for a restart to finish; not done (hostingBundle.restart is off): "
                "restart the host when it suits you (`Restart-Computer`), then run `up --refresh`"
            )
        return after

    def _restart(self, spec: HostingBundleModel, after: dict[str, Any]) -> dict[str, Any]:
        """Restart the host (restart.ps1) and wait until it answers with another boot time."""
        from providers.transport.errors import WinRMError
        from providers.transport.session import close_session

        before = after.get("boot_time")
        label = f"{self._label(spec)} on {spec.connection.host}"
        try:
            self._run(spec, "restart")
        except WinRMError as error:  # the host may go down before its answer arrives: the restart is under way
            pulumi.log.info(f"{label}: the restart request got no answer ({error}); waiting for the host")
        close_session(spec.connection)  # its shell and process went down with the host
        deadline = time.monotonic() + spec.restart_timeout_s
        while True:
            time.sleep(RESTART_POLL_S)
            try:
                state = self._run(spec, "get").state
            except WinRMError:
                state = {}
            if state.get("boot_time") not in (None, before):
                pulumi.log.info(
                    f"{label}: restarted as the installer asked (hostingBundle.restart), up since {state['boot_time']}"
                )
                return {**state, "last_action": after.get("last_action"), "exit_code": after.get("exit_code")}
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{label}: restarted for the installer (exit code 3010) but it did not answer again within "
                    f"restart_timeout_s={spec.restart_timeout_s}s; check the host, then run `up --refresh`"
                )

"""Errors of a script that ran: the host, the resource, the error id, the property and the cause."""

from __future__ import annotations

from providers.transport.errors import WinRMError


class HostOperationFailed(WinRMError):
    """The script ran and reported a failure in the JSON envelope (``ok: false``)."""

    error_id = "HostOperationFailed"

    def __init__(
        self,
        host: str,
        resource: str,
        operation: str,
        error_id: str,
        message: str,
        category: str | None = None,
        property_name: str | None = None,
    ) -> None:
        self.resource = resource
        self.operation = operation
        self.script_error_id = error_id
        self.category = category
        self.property_name = property_name
        where = f"{resource} ({operation})"
        if property_name:
            where += f", property '{property_name}'"
        super().__init__(host, f"{where}: [{error_id}] {message}")


class ScriptOutputInvalid(WinRMError):
    """The script did not print the JSON envelope: a crash before the prelude, or a host that is not PowerShell."""

    error_id = "ScriptOutputInvalid"

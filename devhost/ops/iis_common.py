"""SIMULATOR: what the IIS scripts share (Stop-Operation inside Invoke-IisChange, Import-IisAdministration)."""

from __future__ import annotations

from devhost.ops.envelope import Envelope, OperationStopped, fail

# Stop-Operation inside Invoke-IisChange: the script exits with this envelope.
ScriptStop = OperationStopped


def not_installed() -> Envelope:
    """Import-IisAdministration's failure when Microsoft.Web.Administration.dll is absent."""
    return fail(
        "IisNotInstalled",
        "IIS is not installed on this host (C:\\Windows\\system32\\inetsrv\\Microsoft.Web.Administration.dll is "
        "missing); install the Web-Server feature first (WindowsFeature resource)",
        category="NotInstalled",
    )

"""SIMULATOR: what the IIS scripts share (Stop-Operation inside Invoke-IisChange, Import-IisAdministration)."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import TypeVar

from devhost import iis
from devhost.ops.envelope import Envelope, OperationStopped, fail

T = TypeVar("T")

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


def object_state(read: Callable[[], str]) -> str:
    """_iis.ps1 Get-IisObjectState: State throws 0x800710D8 while WAS does not know the object (or an error while WAS
    does not run, iis.WasNotRunning; the script catches any); 20 tries 250 ms apart, then 'Unknown'."""
    for _ in range(20):
        try:
            return read()
        except iis.STATE_READ_ERRORS:
            time.sleep(0.25)
    return "Unknown"


def when_was_knows(control: Callable[[], T]) -> T:
    """_iis.ps1 Invoke-WhenWasKnows: a Start() or Stop() of a site or pool retried on 0x800710D8 for 40 tries
    250 ms apart; other errors pass."""
    for attempt in range(41):
        try:
            return control()
        except iis.NotYetKnown:
            if attempt >= 40:
                raise
            time.sleep(0.25)
    raise AssertionError("unreachable")


def start_site(manager: iis.ServerManager, name: str) -> str:
    """_iis.ps1 Start-IisSite: Start() through Invoke-WhenWasKnows."""
    return when_was_knows(lambda: manager.start_site(name))


def stop_site(manager: iis.ServerManager, name: str) -> str:
    """_iis.ps1 Stop-IisSite: Stop() through Invoke-WhenWasKnows."""
    return when_was_knows(lambda: manager.stop_site(name))


def remove_binding(manager: iis.ServerManager, site: ET.Element, binding: iis.Binding) -> None:
    """_iis.ps1 Remove-IisBinding: Remove(binding, removeConfigOnly) with removeConfigOnly true only when
    another https binding shares the HTTP.sys certificate binding."""
    manager.remove_binding(site, binding, remove_config_only=manager.sslcert_shared(site, binding))


def remove_site(manager: iis.ServerManager, name: str) -> None:
    """The scripts remove each binding (Remove-IisBinding) before Sites.Remove."""
    site = manager.find_site(name)
    if site is None:
        return
    for binding in manager.bindings(site):
        remove_binding(manager, site, binding)
    manager.remove_site(name)

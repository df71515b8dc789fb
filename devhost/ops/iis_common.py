"""SIMULATOR: what the IIS scripts share (Stop-Operation inside Invoke-IisChange, Import-IisAdministration)."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import TypeVar

from devhost import iis
from devhost.ops.envelope import Envelope, OperationStopped, fail
from devhost.ps51 import ScriptFact, in_code_of_function, in_function

T = TypeVar("T")

# Every operation whose script includes providers/scripting/ps/_iis.ps1 (tests/devhost/test_iis_model.py checks
# this list against the rendered scripts): the helpers below model that file's functions for all of them.
IIS_SCRIPT_OPERATIONS: tuple[str, ...] = (
    "agent_verification/get",
    "hosting_bundle/get",
    "hosting_bundle/set",
    "iis_app_pool/get",
    "iis_app_pool/remove",
    "iis_app_pool/set",
    "iis_default_site_removal/get",
    "iis_default_site_removal/remove",
    "iis_default_site_removal/set",
    "iis_prerequisites/get",
    "iis_site/get",
    "iis_site/remove",
    "iis_site/set",
    "runtime_archive/remove",
    "runtime_archive/set",
)

# The _iis.ps1 constructs the models below (and devhost.iis) assume: the fixes of the Windows PowerShell 5.1
# review (shared/reviews/windows-powershell-5.1.md) that only a model would otherwise show.
SCRIPT_FACTS = (
    ScriptFact(
        IIS_SCRIPT_OPERATIONS,
        in_function(
            "Get-BindingEndpoint",
            r"if\s*\(\s*(?:\$Protocol\s+-ne\s+'http'\s+-and\s+\$Protocol\s+-ne\s+'https'"
            r"|\$Protocol\s+-notin\s+@?\(\s*'http'\s*,\s*'https'\s*\))\s*\)\s*\{\s*return\s+\$null\s*\}"
            r"(?:(?!^\}).)*?\.Split\(",
        ),
        "B2: only http and https bindings have an HTTP.sys endpoint '<ip>:<port>:<host>'; WCF non-HTTP activation "
        "bindings (net.tcp '808:*', net.pipe '*', msmq 'localhost'; learn.microsoft.com, Configuring WAS for use "
        "with WCF) give $null before any parsing (iis.Binding.endpoint refuses to parse them)",
    ),
    ScriptFact(
        IIS_SCRIPT_OPERATIONS,
        in_function("Remove-IisBinding", r"\.Bindings\.Remove\(\s*\$Binding\s*,\s*\$shared\s*\)"),
        "W1: BindingCollection.Remove(binding, removeConfigOnly) deletes the HTTP.sys certificate binding unless "
        "removeConfigOnly; the inherited Remove(binding) leaves it behind (learn.microsoft.com, "
        "Remove-IISSiteBinding -RemoveConfigOnly; iis_common.remove_binding)",
    ),
    ScriptFact(
        IIS_SCRIPT_OPERATIONS,
        in_function(
            "Remove-IisBinding",
            r"if\s*\(\s*\(\s*Get-SslBindingKey\s+\$other\s*\)\s+-eq\s+\$key\s*\)\s*\{\s*\$shared\s*=\s*\$true\s*\}",
        ),
        "W1: the HTTP.sys entry is kept (removeConfigOnly) only while another binding maps to the same "
        "ip:port or host:port entry (iis.ServerManager.sslcert_shared)",
    ),
    ScriptFact(
        IIS_SCRIPT_OPERATIONS,
        r"(?i)\.Bindings\.Remove\(\s*\$\w+\s*\)",
        "W1: the one-argument Bindings.Remove is the collection's inherited Remove, which leaves the HTTP.sys "
        "certificate binding behind: bindings are removed through Remove-IisBinding",
        present=False,
    ),
    ScriptFact(
        IIS_SCRIPT_OPERATIONS,
        in_function("Test-IisCommitConflict", r"\$e\s+-is\s+\[(?:System\.)?IO\.FileLoadException\]"),
        "W5: a commit after another writer's throws System.IO.FileLoadException (microsoft/IIS.Administration#324); "
        "iis.is_commit_conflict recognises it by type",
    ),
    ScriptFact(
        IIS_SCRIPT_OPERATIONS,
        in_function("Test-IisCommitConflict", r"\.HResult\s+-eq\s+-2147024864\b"),
        "W5: a commit while another writer holds the file fails with HRESULT 0x80070020 (sharing violation; "
        "jexuswebserver/JexusManager#164); iis.is_commit_conflict recognises it by HRESULT",
    ),
    ScriptFact(
        IIS_SCRIPT_OPERATIONS,
        in_code_of_function(
            "Test-IisCommitConflict",
            r"(?i:\.Message\b|\.ToString\(|-[ci]?(?:not)?(?:match|like)\b|Select-String|\[regex\])",
        ),
        "W5: a commit conflict is never recognised by its message: the texts are translated on a localized "
        "Windows, and the model (iis.is_commit_conflict) looks only at the type and the HRESULT",
        present=False,
    ),
    ScriptFact(
        IIS_SCRIPT_OPERATIONS,
        in_function("Invoke-WhenWasKnows", r"\.HResult\s+-eq\s+-2147020584\b"),
        "R10: Start()/Stop() of an object WAS has not picked up yet throws 0x800710D8 (ERROR_OBJECT_NOT_FOUND); "
        "the retry (when_was_knows) is on that HRESULT",
    ),
    ScriptFact(
        IIS_SCRIPT_OPERATIONS,
        in_function("Start-IisSite", r"Invoke-WhenWasKnows\s*\{\s*(?:\[void\]\s*)?\$Site\.Start\(\)\s*\}"),
        "R10: a site just committed is started through Invoke-WhenWasKnows (start_site)",
    ),
)

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

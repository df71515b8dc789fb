"""SIMULATOR: Python models of the project's PowerShell operation scripts, keyed by the script's
``# op: <resource>/<operation>`` header line."""

from __future__ import annotations

import re

from devhost.ops import (
    agent_verification,
    certificate,
    directory,
    file_acl,
    hosting_bundle,
    iis_app_pool,
    iis_common,
    iis_default_site_removal,
    iis_prerequisites,
    iis_site,
    machine_identity,
    runtime_archive,
    script_accounts,
    settings_file,
    windows_feature,
    windows_service,
)
from devhost.ops.envelope import Operation
from devhost.ps51 import ScriptFact

OPERATIONS: dict[str, Operation] = {
    **certificate.OPERATIONS,
    **settings_file.OPERATIONS,
    **windows_service.OPERATIONS,
    **windows_feature.OPERATIONS,
    **file_acl.OPERATIONS,
    **directory.OPERATIONS,
    **iis_app_pool.OPERATIONS,
    **iis_site.OPERATIONS,
    **iis_default_site_removal.OPERATIONS,
    **iis_prerequisites.OPERATIONS,
    **runtime_archive.OPERATIONS,
    **hosting_bundle.OPERATIONS,
    **agent_verification.OPERATIONS,
    **machine_identity.OPERATIONS,
}

# Operations whose model handles concurrency itself (e.g. IIS configuration commits, which fail on
# a stale configuration as on Windows). All others run one at a time under the host's lock.
UNLOCKED_OPERATIONS: set[str] = {
    *iis_app_pool.OPERATIONS,
    *iis_site.OPERATIONS,
    *iis_default_site_removal.OPERATIONS,
    *iis_prerequisites.OPERATIONS,
    # read-only, and it waits between attempts: it must not hold the host's lock meanwhile
    *agent_verification.OPERATIONS,
    # SetAccessControl writes a DACL read earlier, whole: two writers interleave as on Windows, and the
    # scripts' named mutex (file_acl.DACL_MUTEX) is what keeps both entries
    *file_acl.OPERATIONS,
}

# The script constructs the models rely on (devhost.ps51): tools/bless_scripts.py refuses to record a
# script text that lacks one, so the hash gate never admits a script its model does not describe.
# Every script runs inside the bootstrap's long-lived loop (providers/scripting/ps/bootstrap.ps1).
_IN_THE_LOOP: tuple[ScriptFact, ...] = (
    ScriptFact(
        tuple(OPERATIONS),
        r"(?im)(^|[;{}]|\belse\b)\s*exit\b(?!-)",
        "`exit` would end the loop's powershell.exe (about_Language_Keywords: exit ends the script or the PowerShell "
        "instance) with every other operation in flight; a script ends through Complete-Operation/Stop-Operation",
        present=False,
    ),
    ScriptFact(
        tuple(OPERATIONS),
        r"::Replace\([^)]*\$null\s*\)",
        "PowerShell passes $null to a .NET string parameter as '' (PowerShell/PowerShell#11515; [NullString]::Value "
        "exists for this), and File.Replace refuses '' as a backup path: no backup is [NullString]::Value",
        present=False,
    ),
    ScriptFact(
        tuple(OPERATIONS),
        re.escape("if (Test-OperationEnd $_.Exception) { break }"),
        "the prelude's trap must let the end of the operation through to the loop (a trap's `break` rethrows; "
        "about_Trap), or every Complete-Operation would turn into an UnexpectedError",
    ),
)

SCRIPT_FACTS: tuple[ScriptFact, ...] = (
    *_IN_THE_LOOP,
    *agent_verification.SCRIPT_FACTS,
    *certificate.SCRIPT_FACTS,
    *directory.SCRIPT_FACTS,
    *file_acl.SCRIPT_FACTS,
    *hosting_bundle.SCRIPT_FACTS,
    *iis_app_pool.SCRIPT_FACTS,
    *iis_common.SCRIPT_FACTS,
    *iis_default_site_removal.SCRIPT_FACTS,
    *iis_site.SCRIPT_FACTS,
    *machine_identity.SCRIPT_FACTS,
    *runtime_archive.SCRIPT_FACTS,
    *script_accounts.SCRIPT_FACTS,
    *settings_file.SCRIPT_FACTS,
    *windows_service.SCRIPT_FACTS,
    *windows_feature.SCRIPT_FACTS,
)

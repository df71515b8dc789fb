"""SIMULATOR: Python models of the project's PowerShell operation scripts, keyed by the script's
``# op: <resource>/<operation>`` header line."""

from __future__ import annotations

from devhost.ops import (
    certificate,
    directory,
    file_acl,
    iis_app_pool,
    iis_default_site_removal,
    iis_prerequisites,
    iis_site,
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
}

# Operations whose model handles concurrency itself (e.g. IIS configuration commits, which fail on
# a stale configuration as on Windows). All others run one at a time under the host's lock.
UNLOCKED_OPERATIONS: set[str] = {
    *iis_app_pool.OPERATIONS,
    *iis_site.OPERATIONS,
    *iis_default_site_removal.OPERATIONS,
    *iis_prerequisites.OPERATIONS,
}

# The script constructs the models rely on (devhost.ps51): tools/bless_scripts.py refuses to record a
# script text that lacks one, so the hash gate never admits a script its model does not describe.
SCRIPT_FACTS: tuple[ScriptFact, ...] = (
    *certificate.SCRIPT_FACTS,
    *directory.SCRIPT_FACTS,
    *iis_site.SCRIPT_FACTS,
    *settings_file.SCRIPT_FACTS,
    *windows_service.SCRIPT_FACTS,
    *windows_feature.SCRIPT_FACTS,
)

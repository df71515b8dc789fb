"""Issue 11, §3: every create adopts what is already there, every delete accepts what is already gone.

The local estate (three SIMULATED hosts) with every optional resource the stack schema has added: a runtime
archive for each production agent and a hosting bundle installer for zone-a, so that every resource kind of the
project is taken through both cases.

An interrupted run may stop after a host acted and before the state recorded it, in both directions: a create
whose object exists, a delete whose object went. The kill matrix (test_interrupted_runs_engine.py) samples such
points; this test takes every resource of the local estate (three SIMULATED hosts) through both at once, with
the real CLI:

- **create finds it there.** After an `up`, the state's resources are dropped (as if the `up` had been killed
  before it recorded any of them) and `up` runs again: every resource is created anew on hosts that already hold
  it; each must adopt it: the run succeeds, every settings file keeps its content, and
  `refresh --preview-only --expect-no-changes` exits 0.
- **delete finds it gone.** The state is exported, the estate destroyed, the exported state put back (as if
  `destroy` had been killed before it recorded the deletes) and `destroy` runs again: every delete finds its
  object gone; each must succeed and change nothing on the hosts.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import pytest
from pulumi import automation as auto

from devhost import accounts, installers
from stackrun.workspace import open_stack
from tests.stacks.test_runtime_archive_estate_engine import with_archives
from tests.support.estate import HOSTS_KEY, EstateProject, SimulatedEstate
from tests.support.interrupt import estate_states, settings_files

pytestmark = pytest.mark.engine

# Every resource type the stack declares: a type missing here (or a new one) fails the test, so that a new
# kind cannot skip these two checks unnoticed.
LOCAL_TYPES = {
    "AgentVerification",
    "Certificate",
    "HostingBundle",
    "RuntimeArchive",
    "Directory",
    "FileAcl",
    "IisAppPool",
    "IisDefaultSiteRemoval",
    "IisPrerequisites",
    "IisSite",
    "SettingsFile",
    "WindowsFeature",
    "WindowsService",
}
DYNAMIC = "pulumi-python:dynamic/"


def stack_of(local: EstateProject) -> auto.Stack:
    return open_stack(
        local.stack,
        local.program,
        work_dir=local.project,
        extra_env={"PULUMI_BACKEND_URL": f"file://{local.backend}", "PULUMI_CONFIG_PASSPHRASE": local.passphrase},
    )


def custom_resources(deployment: auto.Deployment) -> list[dict[str, Any]]:
    """The state's resources of our providers (dynamic resources), with their type's name."""
    resources = (deployment.deployment or {}).get("resources") or []
    return [r for r in resources if str(r["type"]).startswith(DYNAMIC)]


def kind(resource: dict[str, Any]) -> str:
    return str(resource["type"]).rsplit(":", 1)[-1]


def without_custom_resources(deployment: auto.Deployment) -> auto.Deployment:
    """The state as an `up` killed before it recorded any resource leaves it: the stack, components, providers."""
    document = copy.deepcopy(deployment.deployment or {})
    document["resources"] = [
        r for r in document.get("resources") or [] if r["type"] != "pulumi-python:dynamic:Resource"
    ]
    document.pop("pending_operations", None)
    return auto.Deployment(version=deployment.version, deployment=document)


def host_disks(estate: SimulatedEstate) -> dict[str, str]:
    """Every file of the hosts' state (disks, IIS, registry, certificate store), not the simulator's own
    journal (``_sim``) and log (``devhost.log``), by path and SHA-256."""
    found = {}
    for state in estate_states(estate):
        for path in sorted(state.rglob("*")):
            relative = path.relative_to(state)
            if relative.parts[:1] in (("_sim",), ("devhost.log",)) or not path.is_file():
                continue
            found[f"{state.name}/{relative}"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def test_every_create_adopts_and_every_delete_accepts_gone(tmp_path: Path, fresh_estate: SimulatedEstate) -> None:
    local = EstateProject(tmp_path, fresh_estate)
    config = with_archives(local, 1)
    installer = installers.stand_in_installer(tmp_path / "dotnet-hosting-8.0.12-win.exe", "8.0.12")
    config[HOSTS_KEY]["zone-a"]["hostingBundle"] = {"path": str(installer), "version": "8.0.12"}
    local.write(config)
    code, text = local.run("up")
    assert code == 0, text[-3000:]
    stack = stack_of(local)
    deployed = stack.export_stack()
    kinds = {kind(r) for r in custom_resources(deployed)}
    assert kinds == LOCAL_TYPES, f"the local stack's resource types changed: {sorted(kinds ^ LOCAL_TYPES)}"
    files = settings_files(fresh_estate)

    # Create finds it there: the state forgets every resource, the hosts keep them.
    stack.import_stack(without_custom_resources(deployed))
    code, text = local.run("up")
    assert code == 0, f"a create did not adopt what it found:\n{text[-3000:]}"
    readopted = stack_of(local).export_stack()
    assert sorted(r["urn"] for r in custom_resources(readopted)) == sorted(r["urn"] for r in custom_resources(deployed))
    assert settings_files(fresh_estate) == files, "adopting rewrote a settings file"
    code, text = local.run("refresh", "--preview-only", "--expect-no-changes")
    assert code == 0, f"what the creates adopted is not what they recorded:\n{text[-3000:]}"

    # Delete finds it gone: destroy, put the state back, destroy again.
    before_destroy = stack_of(local).export_stack()
    code, text = local.run("destroy")
    assert code == 0, text[-3000:]
    destroyed = host_disks(fresh_estate)
    stack_of(local).import_stack(before_destroy)
    code, text = local.run("destroy")
    assert code == 0, f"a delete did not accept that its object was gone:\n{text[-3000:]}"
    assert custom_resources(stack_of(local).export_stack()) == []
    after = host_disks(fresh_estate)
    changed = {path for path in destroyed.keys() | after.keys() if destroyed.get(path) != after.get(path)}
    assert changed == set(), f"a delete of an object already gone changed the hosts: {sorted(changed)}"


def test_the_local_estate_on_french_windows_deploys_and_then_changes_nothing(
    tmp_path: Path, fresh_estate: SimulatedEstate
) -> None:
    # Issue 8 §2, a localized host: on a Windows installed in French the well-known accounts have French names
    # (BUILTIN\Administrateurs, AUTORITE NT\Système, ...), NTAccount.Translate of the English ones fails there, and
    # every message of Windows is French. The stack names accounts in English; the scripts must go by SIDs.
    for host in fresh_estate.hosts.values():
        assert host.state_dir is not None
        accounts.set_display_language(host.state_dir, "fr-FR")
        with pytest.raises(accounts.IdentityNotMapped):
            accounts.resolve(host.state_dir, "BUILTIN\\Administrators")
    local = EstateProject(tmp_path, fresh_estate)
    code, text = local.run("up")
    assert code == 0, text[-3000:]
    code, text = local.run("refresh", "--preview-only", "--expect-no-changes")
    assert code == 0, f"drift on French hosts right after up:\n{text[-3000:]}"
    code, text = local.run("destroy")
    assert code == 0, text[-3000:]

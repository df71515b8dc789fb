"""One change by hand, per resource type: the drift check and `preview --refresh` show exactly it.

Issue 7's acceptance, table-driven over the local estate on three SIMULATED hosts: for each
out-of-band change (as an administrator makes it in IIS Manager, services.msc, the Security tab,
Server Manager...), `refresh --preview-only --diff` and `preview --refresh --diff` name that
resource alone, with that property alone, as an update (never a replacement), and `up --refresh`
repairs it. Then the same for a change of one property in the stack file.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stackrun.workspace import ROOT
from tests.support.estate import AGENTS_KEY, EstateProject, SimulatedEstate

pytestmark = pytest.mark.engine

_HEADER = re.compile(r"^\s*([~+-]{1,2})\s+pulumi-python:dynamic/windows:(\w+): \(([\w-]+)\)")
_URN = re.compile(r"\[urn=[^\]]*::([\w-]+)\]")
_PROPERTY = re.compile(r"^(\s*)([~+-])\s([a-z_]+)\s*:")


@dataclass(frozen=True)
class Change:
    op: str
    resource: str
    properties: frozenset[str]


def changes_in(text: str) -> list[Change]:
    """The resources a `--diff` output proposes to change, with the properties it marks."""
    found: list[Change] = []
    op = resource = None
    properties: set[str] = set()
    indent = 0  # a top-level property's marker sits two columns left of the resource's [urn=...] line
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            if resource:
                found.append(Change(str(op), resource, frozenset(properties)))
            op, resource, properties = header.group(3), None, set()
            continue
        urn = _URN.search(line)
        if urn and op and resource is None and "pulumi:pulumi:Stack" not in line:
            resource = urn.group(1)
            indent = len(line) - len(line.lstrip()) - 2
            continue
        prop = _PROPERTY.match(line)
        if prop and resource and len(prop.group(1)) == indent:
            properties.add(prop.group(3))
    if resource:
        found.append(Change(str(op), resource, frozenset(properties)))
    return found


def admin(estate: SimulatedEstate, host: str, *args: str) -> None:
    state = estate.hosts[host].state_dir
    assert state is not None
    done = subprocess.run(
        [sys.executable, "-m", "devhost", "admin", args[0], "--state", str(state), *args[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


POOL = "IdentityManagerAgentContoso"
ROOT_DIR = "C:\\identitymanagerContoso"
# (case, host, admin command, resource expected, property expected)
OUT_OF_BAND = [
    ("pool-idle", "zone-a", ["iis-pool-set", "--pool", POOL, "--attribute", "processModel/idleTimeout",
                            "--value", "00:20:00"], "zone-a-pool", "idle_timeout_minutes"),
    ("pool-stopped", "zone-a", ["iis-state", "--kind", "pool", "--name", POOL, "--to", "Stopped"],
     "zone-a-pool", "state"),
    ("site-binding", "zone-a", ["iis-add-binding", "--site", "Identity Manager Agent Contoso",
                               "--information", "*:8080:"], "zone-a-site", "bindings"),
    ("settings-file", "zone-a", ["file-write", "--path", f"{ROOT_DIR}\\Runtime\\appsettings.agent.json",
                                "--text", '{"OpenId": {"AgentIdentifier": "Tampered"}}'],
     "zone-a-appsettings-agent", "json_content"),
    ("settings-file-reader", "zone-b", ["acl-edit", "--path", f"{ROOT_DIR}\\Runtime\\appsettings.agent.json",
                                       "--principal", "BUILTIN\\Users", "--rights", "R"],
     "zone-b-appsettings-agent", "readers"),
    ("settings-file-inheritance", "server", ["acl-inheritance", "--path", f"{ROOT_DIR}\\Runtime\\appsettings.json",
                                            "--mode", "e"], "server-appsettings", "readers"),
    ("web-config", "server", ["file-write", "--path", f"{ROOT_DIR}\\Runtime\\web.config", "--text", "<x/>"],
     "server-web-config", "content"),
    ("acl-rights", "zone-a", ["acl-edit", "--path", f"{ROOT_DIR}\\Work", "--principal", f"IIS APPPOOL\\{POOL}",
                             "--rights", "F", "--inheritance", "ContainerInherit", "ObjectInherit"],
     "zone-a-acl-work", "rights"),
    ("service-start-mode", "zone-b", ["service-edit", "--name", POOL, "--start-mode", "Manual"],
     "zone-b-service", "start_type"),
    ("feature-removed", "server", ["feature-remove", "--name", "Web-AppInit"], "host-server-features", "names"),
]  # fmt: skip


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, estate: SimulatedEstate) -> Iterator[EstateProject]:
    project = EstateProject(Path(tmp_path_factory.mktemp("drift")), estate)
    code, text = project.run("up")
    assert code == 0, text
    yield project
    project.run("destroy")


# Outputs the host computes from a property (a file's size, a feature's installed list) change with it.
DERIVED = {
    "json_content": {"size"},
    "content": {"size"},
    "names": {"installed"},
    "rights": {"access_mask"},
    "answers": {"status", "problem", "causes", "served_thumbprint"},  # what the check saw, and why
    "encoding": {"size"},
    "account": {"account_sid"},
    "identity_type": {"identity_account", "identity_sid"},  # the account the host now runs the pool as
}


# Changes after which the agent no longer answers: its verification shows that too, as `answers` (and its warning
# names the cause); the change itself is still the only other resource.
STOPS_ANSWERING = {
    "pool-stopped": ("zone-a-verify", f"likely cause: the application pool '{POOL}' is stopped"),
    "web-config": ("server-verify", "is not the agent's: it has no aspNetCore element"),
}


def only_these(changes: list[Change], expected: dict[str, str], op: str) -> None:
    """``changes`` are exactly the ``expected`` resources, each an ``op`` with its property (and what the host
    derives from it) alone."""
    listed = "\n".join(f"{c.op} {c.resource} {sorted(c.properties)}" for c in changes)
    assert sorted((c.op, c.resource) for c in changes) == sorted((op, r) for r in expected), listed
    for change in changes:
        wanted = expected[change.resource]
        assert wanted in change.properties and change.properties <= {wanted, *DERIVED.get(wanted, ())}, changes


def only(changes: list[Change], resource: str, prop: str, op: str, verification: str | None = None) -> None:
    """One resource with one property (and its verification's ``answers`` when the change stops the agent)."""
    only_these(changes, {resource: prop, **({verification: "answers"} if verification else {})}, op)


@contextlib.contextmanager
def repaired_afterwards(deployed: EstateProject) -> Iterator[None]:
    """Whatever the body found, `up --refresh` repairs the drift and the drift check then finds none."""
    try:
        yield
    finally:
        code, text = deployed.run("up", "--refresh")
    assert code == 0, text
    code, text = deployed.run("refresh", "--preview-only", "--expect-no-changes")
    assert code == 0, text


@pytest.mark.parametrize(
    ("host", "command", "resource", "prop", "stops"),
    [pytest.param(*case[1:], STOPS_ANSWERING.get(str(case[0]), (None, "")), id=str(case[0])) for case in OUT_OF_BAND],
)
def test_one_change_by_hand_shows_as_that_resource_and_property_alone(
    deployed: EstateProject, host: str, command: list[str], resource: str, prop: str, stops: tuple[str | None, str]
) -> None:
    verification, cause = stops
    admin(deployed.estate, host, *command)
    with repaired_afterwards(deployed):
        code, check = deployed.run("refresh", "--preview-only", "--diff", "--expect-no-changes")
        assert code == 7, check
        only(changes_in(check), resource, prop, "update", verification)
        assert cause in check, check
        assert "to replace" not in check and "to delete" not in check
        code, preview = deployed.run("preview", "--refresh", "--diff")
        assert code == 0, preview
        proposed = [c for c in changes_in(preview) if c.op != "refresh"]
        only(proposed, resource, prop, "update", verification)
        assert "to replace" not in preview


# Every other property a hand change on a host can alter, in rounds: one change per resource in a round, on
# distinct resources, so each round shows that each change appears on its resource with its property alone
# and that nothing untouched appears. (resource, host, admin commands, property, whether the agent then stops
# answering: its verification shows `answers` too.)
SERVER_POOL, SERVER_SITE = "IdentityManagerContoso", "Identity Manager Contoso"
ZONE_A_SITE = "Identity Manager Agent Contoso"
SERVICE = POOL  # zone-b's Windows service has the pool's name
ROUNDS: dict[str, list[tuple[str, str, list[list[str]], str, bool]]] = {
    "pools-sites-service-folders": [
        ("zone-a-pool", "zone-a", [["iis-pool-set", "--pool", POOL, "--attribute", "managedRuntimeVersion",
                                    "--value", "v4.0"]], "managed_runtime_version", False),
        ("server-pool", "server", [["iis-pool-set", "--pool", SERVER_POOL, "--attribute", "managedPipelineMode",
                                    "--value", "Classic"]], "pipeline_mode", False),
        ("zone-a-site", "zone-a", [["iis-site-set", "--site", ZONE_A_SITE, "--attribute",
                                    "application/preloadEnabled", "--value", "false"]], "preload_enabled", False),
        ("server-site", "server", [["iis-state", "--kind", "site", "--name", SERVER_SITE, "--to", "Stopped"]],
         "state", True),
        ("zone-b-service", "zone-b", [["service-edit", "--name", SERVICE, "--display-name", "Tampered"]],
         "display_name", False),
        ("zone-b-appsettings-agent", "zone-b", [["file-reencode", "--path",
                                                 f"{ROOT_DIR}\\Runtime\\appsettings.agent.json",
                                                 "--encoding", "utf-16"]], "encoding", False),
    ],
    "pool-modes-site-path-description": [
        ("zone-a-pool", "zone-a", [["iis-pool-set", "--pool", POOL, "--attribute", "startMode",
                                    "--value", "OnDemand"]], "start_mode", False),
        ("server-pool", "server", [["iis-pool-set", "--pool", SERVER_POOL, "--attribute",
                                    "processModel/loadUserProfile", "--value", "false"]], "load_user_profile", False),
        ("zone-a-site", "zone-a", [["iis-site-set", "--site", ZONE_A_SITE, "--attribute",
                                    "virtualDirectory/physicalPath", "--value", "C:\\inetpub\\wwwroot"]],
         "physical_path", True),
        ("zone-b-service", "zone-b", [["service-edit", "--name", SERVICE, "--description", "changed by hand"]],
         "description", False),
        ("server-appsettings", "server", [["file-reencode", "--path", f"{ROOT_DIR}\\Runtime\\appsettings.json",
                                           "--encoding", "utf-8-bom"]], "encoding", False),
    ],
    "recycling-identity-account": [
        ("zone-a-pool", "zone-a", [["iis-pool-set", "--pool", POOL, "--attribute", "recycling/periodicRestart/time",
                                    "--value", "1.05:00:00"]], "periodic_restart_minutes", False),
        ("server-pool", "server", [["iis-pool-set", "--pool", SERVER_POOL, "--attribute",
                                    "processModel/identityType", "--value", "NetworkService"]], "identity_type", True),
        ("zone-b-service", "zone-b", [["service-edit", "--name", SERVICE, "--start-name", "LocalSystem"]],
         "account", False),
    ],
    "service-stopped": [
        ("zone-b-service", "zone-b", [["service-stop", "--name", SERVICE]], "state", True),
    ],
}  # fmt: skip


@pytest.mark.parametrize("round_name", list(ROUNDS))
def test_every_property_changed_by_hand_shows_on_its_resource_alone(deployed: EstateProject, round_name: str) -> None:
    cases = ROUNDS[round_name]
    assert len({case[0] for case in cases}) == len(cases), "one change per resource in a round"
    expected = {resource: prop for resource, _host, _commands, prop, _stops in cases}
    # The agent of a host is named after it: a change that stops it shows on <host>-verify as `answers` too.
    verifications = {f"{host}-verify": "answers" for _resource, host, _commands, _prop, stops in cases if stops}
    for _resource, host, commands, _prop, _stops in cases:
        for command in commands:
            admin(deployed.estate, host, *command)
    with repaired_afterwards(deployed):
        code, check = deployed.run("refresh", "--preview-only", "--diff", "--expect-no-changes")
        assert code == 7, check
        only_these(changes_in(check), {**expected, **verifications}, "update")
        assert "to replace" not in check and "to delete" not in check
        code, preview = deployed.run("preview", "--refresh", "--diff")
        assert code == 0, preview
        only_these([c for c in changes_in(preview) if c.op != "refresh"], {**expected, **verifications}, "update")
        assert "to replace" not in preview


def test_a_data_folder_removed_by_hand_shows_the_folder_and_its_acl(deployed: EstateProject) -> None:
    """`rd C:\\identitymanagerContoso\\Mails`: the folder's entry went with it, so the drift check shows the
    Directory's `subfolders` and its ACL as gone (refresh drops it); `preview --refresh` then creates the ACL
    again. Both are what `up` does: no noise, and nothing else."""
    admin(deployed.estate, "zone-a", "dir-delete", "--path", f"{ROOT_DIR}\\Mails")
    with repaired_afterwards(deployed):
        code, check = deployed.run("refresh", "--preview-only", "--diff", "--expect-no-changes")
        assert code == 7, check
        found = sorted((c.op, c.resource) for c in changes_in(check))
        assert found == [("delete", "zone-a-acl-mails"), ("update", "zone-a-working-directory")], check
        code, preview = deployed.run("preview", "--refresh", "--diff")
        assert code == 0, preview
        proposed = {c.resource: c for c in changes_in(preview) if c.op != "refresh"}
        assert sorted((c.op, r) for r, c in proposed.items()) == [
            ("create", "zone-a-acl-mails"),
            ("update", "zone-a-working-directory"),
        ], preview
        assert proposed["zone-a-working-directory"].properties == {"subfolders"}, preview


def test_a_change_in_the_stack_shows_exactly_the_resources_that_change(deployed: EstateProject) -> None:
    """The data-folder rights of one agent: its three data-folder ACLs, nothing else."""
    config = deployed.config()
    agent = next(a for a in config[AGENTS_KEY] if a["name"] == "zone-a")
    agent["dataFolderRights"] = "FullControl"
    deployed.write(config)
    try:
        code, preview = deployed.run("preview", "--diff")
        assert code == 0, preview
        changes = changes_in(preview)
        assert sorted(c.resource for c in changes) == ["zone-a-acl-mails", "zone-a-acl-temp", "zone-a-acl-work"]
        assert {c.op for c in changes} == {"update"} and all(c.properties == {"rights"} for c in changes), changes
    finally:
        deployed.write(deployed.config())


def test_a_private_key_reader_removed_by_hand_shows_on_that_certificate_alone(deployed: EstateProject) -> None:
    """The certificate MMC's "Manage Private Keys...": the pool's read access on the encryption key revoked."""
    thumbprint = deployed.outputs()["agents"]["zone-a"]["encryptionCertificateThumbprint"]
    admin(
        deployed.estate,
        "zone-a",
        *("cert-key-access", "--thumbprint", thumbprint, "--principal", f"IIS APPPOOL\\{POOL}", "--revoke"),
    )
    with repaired_afterwards(deployed):
        code, check = deployed.run("refresh", "--preview-only", "--diff", "--expect-no-changes")
        assert code == 7, check
        # The agent cannot open its key at start any more: its verification shows it, with the cause.
        only(changes_in(check), "zone-a-encryption-cert", "private_key_readers", "update", "zone-a-verify")
        assert f"the private key of certificate {thumbprint} is not readable by IIS APPPOOL\\{POOL}" in check

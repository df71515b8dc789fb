"""The runtime archive in the local estate (stacks/Pulumi.local.yaml) through the real CLI, on SIMULATED hosts.

zone-a runs its agent in IIS, zone-b as a Windows service; both get `runtimeArchive`, a small zip the test
builds standing in for the vendor's, next to the stack file (a relative path, as a user writes it).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from devhost import iis, scm
from tests.support.estate import AGENTS_KEY, EstateProject
from tests.support.zips import write_zip

pytestmark = pytest.mark.engine

RUNTIME = "C:\\identitymanagerContoso\\Runtime"
POOL = "IdentityManagerAgentContoso"
SERVICE = "IdentityManagerAgentContoso"


def vendor_zip(project: Path, number: int) -> str:
    """Version ``number`` of the stand-in archive, under the project; returns its relative path."""
    files = {
        "identitymanager-Agent.dll": f"MZ agent v{number}".encode(),
        "Usercube-Agent.exe": f"MZ agent executable v{number}".encode(),
        f"runtimes/win/lib/net8.0/v{number}-only.dll": b"MZ only in this version",
        "web.config": b"<configuration>the vendor's sample</configuration>",
        "appsettings.json": b'{"the vendor": "defaults"}',
    }
    relative = f"vendor/IdentityManager-Runtime-{number}.zip"
    path = project / relative
    path.parent.mkdir(exist_ok=True)
    write_zip(path, files, date_time=(2026, 1, number, 0, 0, 0))
    return relative


def sha256(project: Path, relative: str) -> str:
    return hashlib.sha256((project / relative).read_bytes()).hexdigest()


def agent(config: dict[str, Any], name: str) -> dict[str, Any]:
    return next(item for item in config[AGENTS_KEY] if item["name"] == name)


def index_of(config: dict[str, Any], name: str) -> int:
    return [item["name"] for item in config[AGENTS_KEY]].index(name)


def with_archives(local: EstateProject, number: int) -> dict[str, Any]:
    config = local.config()
    relative = vendor_zip(local.project, number)
    for name in ("zone-a", "zone-b"):
        agent(config, name)["runtimeArchive"] = {"path": relative, "sha256": sha256(local.project, relative)}
    local.write(config)
    return config


def agent_events(local: EstateProject, host: str, mark: int) -> list[tuple[str, str, str]]:
    return [
        (e["action"], e["what"], e["name"])
        for e in local.estate.hosts[host].journal_since(mark)
        if e.get("kind") == "agent"
    ]


def test_archives_are_extracted_never_sent_twice_and_upgraded_with_the_agent_stopped(local: EstateProject) -> None:
    first = with_archives(local, 1)
    code, text = local.run("up")
    assert code == 0, text
    assert "51 created" in text, text  # the local estate's 49 and the two archives
    estate = local.estate
    for host in ("zone-a", "zone-b"):
        assert estate.file(host, f"{RUNTIME}\\identitymanager-Agent.dll").read_bytes() == b"MZ agent v1"
        assert estate.file(host, f"{RUNTIME}\\runtimes\\win\\lib\\net8.0\\v1-only.dll").exists()
        assert estate.file(host, f"{RUNTIME}\\appsettings.agent.json").read_text().startswith("{"), "managed settings"
        # A production agent writes no appsettings.json: the vendor's, its base settings, comes from the archive.
        assert estate.file(host, f"{RUNTIME}\\appsettings.json").read_bytes() == b'{"the vendor": "defaults"}'
    web_config = estate.file("zone-a", f"{RUNTIME}\\web.config")
    assert 'hostingModel="inprocess"' in web_config.read_text(), "the stack's web.config, not the vendor's sample"
    service_web_config = estate.file("zone-b", f"{RUNTIME}\\web.config").read_bytes()
    assert service_web_config == b"<configuration>the vendor's sample</configuration>", "a service writes none"
    zone_b = estate.hosts["zone-b"].state_dir
    assert zone_b is not None
    service = scm.get(zone_b, SERVICE)
    assert service is not None and service.state == "Running"
    assert estate.file("zone-b", f"{RUNTIME}\\Usercube-Agent.exe").read_bytes() == b"MZ agent executable v1"

    marks = estate.marks()
    code, again = local.run("up")
    assert code == 0, again
    assert estate.commands_since(marks) == {"server": 0, "zone-a": 0, "zone-b": 0}, "no byte of the archive again"

    settings_before = {
        host: estate.file(host, f"{RUNTIME}\\appsettings.agent.json").read_text() for host in ("zone-a", "zone-b")
    }
    old_sha = agent(first, "zone-a")["runtimeArchive"]["sha256"]
    new_sha = agent(with_archives(local, 2), "zone-a")["runtimeArchive"]["sha256"]
    code, preview = local.run("preview", "--diff")
    assert code == 0, preview
    assert re.search(r'~ archive_name\s*: "IdentityManager-Runtime-1.zip" => "IdentityManager-Runtime-2.zip"', preview)
    assert re.search(rf'~ sha256\s*: "{old_sha}" => "{new_sha}"', preview), preview
    assert "zone-a-runtime" in preview and "zone-b-runtime" in preview and "replace" not in preview

    marks = estate.marks()
    code, text = local.run("up")
    assert code == 0, text
    assert "2 updated" in text, text
    for host in ("zone-a", "zone-b"):
        assert estate.file(host, f"{RUNTIME}\\identitymanager-Agent.dll").read_bytes() == b"MZ agent v2"
        assert estate.file(host, f"{RUNTIME}\\runtimes\\win\\lib\\net8.0\\v2-only.dll").exists()
        assert not estate.file(host, f"{RUNTIME}\\runtimes\\win\\lib\\net8.0\\v1-only.dll").exists(), "old files gone"
        assert estate.file(host, f"{RUNTIME}\\appsettings.agent.json").read_text() == settings_before[host]
    assert agent_events(local, "zone-a", marks["zone-a"]) == [("stop", "pool", POOL), ("start", "pool", POOL)]
    assert agent_events(local, "zone-b", marks["zone-b"]) == [
        ("stop", "service", SERVICE),
        ("start", "service", SERVICE),
    ]
    zone_a = estate.hosts["zone-a"].state_dir
    assert zone_a is not None
    assert iis.ServerManager(zone_a).pool_state(POOL) == "Started"
    service = scm.get(zone_b, SERVICE)
    assert service is not None and service.state == "Running"
    assert estate.commands_since(estate.marks()) == {"server": 0, "zone-a": 0, "zone-b": 0}

    code, text = local.run("destroy")
    assert code == 0, text
    assert not estate.file("zone-a", f"{RUNTIME}\\identitymanager-Agent.dll").exists()


def test_a_wrong_sha256_or_a_missing_archive_is_refused_before_anything_is_sent(local: EstateProject) -> None:
    config = with_archives(local, 1)
    zone_a = index_of(config, "zone-a")
    agent(config, "zone-a")["runtimeArchive"]["sha256"] = "0" * 64
    local.write(config)
    marks = local.estate.marks()
    for verb in ("preview", "up"):
        code, text = local.run(verb)
        assert code != 0, text
        assert (
            f"usercube-agents:agents[{zone_a}].runtimeArchive.sha256: IdentityManager-Runtime-1.zip has SHA-256 "
            in text
        )
        assert "not the " + "0" * 64 + " the stack expects" in text, text
    agent(config, "zone-a")["runtimeArchive"] = {"path": "vendor/not-downloaded.zip"}
    local.write(config)
    code, text = local.run("up")
    assert code != 0, text
    assert f"usercube-agents:agents[{zone_a}].runtimeArchive.path: file '" in text, text
    assert "vendor/not-downloaded.zip' does not exist" in text, text
    assert local.estate.commands_since(marks) == {"server": 0, "zone-a": 0, "zone-b": 0}, "no host was contacted"


def test_the_servers_archive_keeps_the_servers_settings_files_and_gives_it_the_vendors_agent_settings(
    local: EstateProject,
) -> None:
    # The server (integrated agent) writes appsettings.json and web.config; with no agent connections (the local
    # estate's server has none) it writes no appsettings.agent.json, so the vendor's comes from the archive. The
    # production agents get theirs too: the estate is the module's, and a test before this one may have destroyed
    # the runtime its hosts were prepared with.
    config = with_archives(local, 1)
    files = {
        "Usercube-Server-tools.dll": b"MZ a vendor tool",
        "web.config": b"<configuration>the vendor's sample</configuration>",
        "appsettings.json": b'{"the vendor": "defaults"}',
        "appsettings.agent.json": b'{"the vendor": "agent defaults"}',
    }
    relative = "vendor/IdentityManager-Server-Runtime.zip"
    (local.project / "vendor").mkdir(exist_ok=True)
    write_zip(local.project / relative, files)
    agent(config, "server")["runtimeArchive"] = {"path": relative, "sha256": sha256(local.project, relative)}
    local.write(config)
    code, text = local.run("up")
    assert code == 0, text
    estate = local.estate
    runtime = "C:\\identitymanagerContoso\\Runtime"
    assert estate.file("server", f"{runtime}\\Usercube-Server-tools.dll").read_bytes() == b"MZ a vendor tool"
    assert "IdentityServer" in json.loads(estate.file("server", f"{runtime}\\appsettings.json").read_text())
    assert "identitymanager-Server.dll" in estate.file("server", f"{runtime}\\web.config").read_text()
    assert estate.file("server", f"{runtime}\\appsettings.agent.json").read_bytes() == files["appsettings.agent.json"]
    marks = estate.marks()
    code, again = local.run("up")
    assert code == 0, again
    assert estate.commands_since(marks) == {"server": 0, "zone-a": 0, "zone-b": 0}

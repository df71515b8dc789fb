"""RuntimeArchive through the real Pulumi CLI against the host under test (simulated unless configured)."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pytest

from devhost import iis
from devhost.ops import runtime_archive as host_model
from providers.framework.upload import CHUNK_BYTES
from providers.iis_app_pool import IisAppPool
from providers.iis_site import IisSite
from providers.runtime_archive import RuntimeArchive, RuntimeArchiveModel
from providers.runtime_archive.local import inspect_archive
from tests.providers.test_iis_app_pool_engine import Engine, host_state, install_iis, secret_connection, unique
from tests.support.hosts import Target
from tests.support.zips import write_zip

pytestmark = pytest.mark.engine


@pytest.fixture(autouse=True)
def _iis(target: Target) -> None:
    install_iis(target)


def noise(size: int, seed: str) -> bytes:
    """Bytes that do not compress (so the zip is as large as its content)."""
    blocks = (hashlib.sha256(f"{seed}{i}".encode()).digest() for i in range(size // 32 + 1))
    return b"".join(blocks)[:size]


def make_zip(path: Path, files: dict[str, bytes]) -> Path:
    return write_zip(path, files)


def version(folder: Path, number: int, **extra: bytes) -> Path:
    """A small zip standing in for the vendor's runtime archive, version ``number``."""
    files = {
        "identitymanager-Agent.dll": f"MZ agent v{number}".encode(),
        f"runtimes/win/lib/v{number}-only.dll": b"MZ only in this version",
        "web.config": b"<configuration>the vendor's</configuration>",
        **extra,
    }
    return make_zip(folder / f"IdentityManager-Runtime-{number}.zip", files)


def archive_inputs(path: Path) -> dict[str, Any]:
    found = inspect_archive(path)
    return {"source_path": found.path, "archive_name": found.name, "sha256": found.sha256, "size": found.size}


def new_runtime() -> str:
    return f"C:\\UsercubeIacTests\\{uuid.uuid4().hex[:8]}\\Runtime"


# What the tests' stand-in for an agent writes into Runtime itself (the components list theirs, RuntimeFiles).
KEPT = ["web.config"]


def on_host(target: Target, desired: dict[str, Any]) -> dict[str, Any]:
    spec = RuntimeArchiveModel.model_validate(
        {
            "connection": target.connection,
            **archive_inputs(desired["zip"]),
            "runtime_path": desired["runtime"],
            "keep_files": desired.get("keep_files", KEPT),
        }
    )
    return host_state(target, "providers.runtime_archive", spec.script_input())


def archive_program(target: Target, desired: dict[str, Any]) -> Callable[[], None]:
    """One RuntimeArchive; with ``desired["pool"]``, in an application pool with a site on Runtime."""

    def program() -> None:
        conn = secret_connection(target)
        after: list[pulumi.Resource] = []
        pool_name = desired.get("pool", "")
        if pool_name:
            after.append(IisAppPool("pool", connection=conn, name=pool_name))
        archive = RuntimeArchive(
            "runtime",
            connection=conn,
            **archive_inputs(desired["zip"]),
            runtime_path=desired["runtime"],
            keep_files=desired.get("keep_files", KEPT),
            app_pool=pool_name,
            opts=pulumi.ResourceOptions(depends_on=after),
        )
        if pool_name:
            IisSite(
                "site",
                connection=conn,
                name=f"{pool_name} site",
                app_pool=pool_name,
                physical_path=desired["runtime"],
                bindings=[{"protocol": "http", "port": desired["port"]}],
                opts=pulumi.ResourceOptions(depends_on=[archive]),
            )
        pulumi.export("file_count", archive.file_count)

    return program


def free_port() -> int:
    return random.randint(20000, 60000)


def agent_events(target: Target, mark: int) -> list[tuple[str, str]]:
    return [(e["action"], e["name"]) for e in target.journal_since(mark) if e.get("kind") == "agent"]


def chunk_requests(target: Target, mark: int) -> list[dict[str, Any]]:
    """The inputs of the upload chunks the host received since ``mark``."""
    return [
        json.loads(r["input"])
        for r in target.requests_since(mark)
        if r["script"].startswith("# op: runtime_archive/chunk\n")
    ]


def test_first_up_extracts_second_up_sends_nothing_and_destroy_keeps_managed_files(
    simulated: Target, engine: Engine, tmp_path: Path
) -> None:
    desired = {"zip": version(tmp_path, 1), "runtime": new_runtime()}
    web_config = simulated.windows_file(f"{desired['runtime']}\\web.config")
    web_config.parent.mkdir(parents=True)
    web_config.write_text("<configuration>ours</configuration>")
    stack = engine(archive_program(simulated, desired))
    mark = simulated.journal_mark()
    first = stack.up()
    assert first.ok, first.output
    assert simulated.windows_file(f"{desired['runtime']}\\identitymanager-Agent.dll").read_bytes() == b"MZ agent v1"
    assert simulated.windows_file(f"{desired['runtime']}\\runtimes\\win\\lib\\v1-only.dll").exists()
    assert web_config.read_text() == "<configuration>ours</configuration>", "a managed file is never replaced"
    assert stack.outputs()["file_count"] == 2
    state = on_host(simulated, desired)
    assert state["sha256"] == archive_inputs(desired["zip"])["sha256"] and state["missing_files"] == []
    sent = sum(len(base64.b64decode(r["data"])) for r in chunk_requests(simulated, mark))
    assert sent == desired["zip"].stat().st_size, "the archive is sent once"

    mark = simulated.journal_mark()
    again = stack.up()
    assert again.ok and again.summary == {"same": 2}, again.output
    assert simulated.journal_since(mark) == [], "an unchanged archive: not one byte, not one request"
    assert stack.refresh(expect_no_changes=True).ok

    # Moving the local file (another checkout) is no change: the archive is tracked by its hash.
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    desired["zip"] = Path(desired["zip"]).rename(moved / Path(desired["zip"]).name)
    mark = simulated.journal_mark()
    assert stack.up().summary == {"same": 2}
    assert simulated.journal_since(mark) == []

    gone = stack.destroy()
    assert gone.ok, gone.output
    assert not simulated.windows_file(f"{desired['runtime']}\\identitymanager-Agent.dll").exists()
    assert not simulated.windows_file(f"{desired['runtime']}\\runtimes").exists()
    assert web_config.exists(), "destroy removes what the archive put there, nothing else"


def test_a_file_deleted_by_hand_is_drift_that_up_refresh_repairs(
    simulated: Target, engine: Engine, tmp_path: Path
) -> None:
    desired = {"zip": version(tmp_path, 1), "runtime": new_runtime()}
    stack = engine(archive_program(simulated, desired))
    assert stack.up().ok
    simulated.windows_file(f"{desired['runtime']}\\identitymanager-Agent.dll").unlink()
    drift = stack.refresh(expect_no_changes=True)
    assert not drift.ok and "files_present" in drift.output, drift.output
    repaired = stack.up(refresh=True)
    assert repaired.ok, repaired.output
    assert simulated.windows_file(f"{desired['runtime']}\\identitymanager-Agent.dll").read_bytes() == b"MZ agent v1"
    assert stack.refresh(expect_no_changes=True).ok
    stack.destroy()


def test_a_new_archive_previews_as_its_name_and_hash_and_upgrades_with_the_pool_stopped(
    simulated: Target, engine: Engine, tmp_path: Path
) -> None:
    pool = unique("UcRuntimePool")
    desired = {"zip": version(tmp_path, 1), "runtime": new_runtime(), "pool": pool, "port": free_port()}
    stack = engine(archive_program(simulated, desired))
    assert stack.up().ok
    assert simulated.state_dir is not None
    manager = iis.ServerManager(simulated.state_dir)
    assert manager.pool_state(pool) == "Started" and manager.site_state(f"{pool} site") == "Started"

    old, new = archive_inputs(desired["zip"]), archive_inputs(version(tmp_path, 2))
    desired["zip"] = version(tmp_path, 2)
    preview = stack.preview(diff=True)
    assert preview.ok, preview.output
    for key in ("archive_name", "sha256"):  # the update reads as the archive's name and hash
        assert re.search(rf'~ {key}\s*: "{old[key]}" => "{new[key]}"', preview.stdout), preview.stdout
    assert "RuntimeArchive: (update)" in preview.stdout and "replace" not in preview.stdout

    mark = simulated.journal_mark()
    upgraded = stack.up()
    assert upgraded.ok and upgraded.summary.get("update") == 1, upgraded.output
    runtime = desired["runtime"]
    assert simulated.windows_file(f"{runtime}\\identitymanager-Agent.dll").read_bytes() == b"MZ agent v2"
    assert simulated.windows_file(f"{runtime}\\runtimes\\win\\lib\\v2-only.dll").exists()
    assert not simulated.windows_file(f"{runtime}\\runtimes\\win\\lib\\v1-only.dll").exists(), "old files are gone"
    assert agent_events(simulated, mark) == [("stop", pool), ("start", pool)]
    assert iis.ServerManager(simulated.state_dir).pool_state(pool) == "Started"
    assert stack.destroy().ok


def test_a_failed_extraction_leaves_the_previous_version_in_place_and_running(
    simulated: Target, engine: Engine, tmp_path: Path
) -> None:
    pool = unique("UcRuntimePool")
    desired = {"zip": version(tmp_path, 1), "runtime": new_runtime(), "pool": pool, "port": free_port()}
    stack = engine(archive_program(simulated, desired))
    assert stack.up().ok
    broken = bytearray(version(tmp_path, 3, **{"big.dll": b"MZ" * 4000}).read_bytes())
    data = broken.index(b"big.dll") + len("big.dll")
    broken[data] = 0xFF  # the entry's first Deflate block now has block type 3, which does not exist
    desired["zip"] = tmp_path / "IdentityManager-Runtime-3-broken.zip"
    desired["zip"].write_bytes(bytes(broken))

    mark = simulated.journal_mark()
    failed = stack.up()
    assert not failed.ok
    assert "[ExtractionFailed] extracting IdentityManager-Runtime-3-broken.zip failed" in failed.output, failed.output
    assert "was not touched and still runs" in failed.output
    assert simulated.windows_file(f"{desired['runtime']}\\identitymanager-Agent.dll").read_bytes() == b"MZ agent v1"
    assert agent_events(simulated, mark) == [], "the pool was never stopped"
    assert simulated.state_dir is not None
    assert iis.ServerManager(simulated.state_dir).pool_state(pool) == "Started"
    desired["zip"] = version(tmp_path, 1)
    assert stack.destroy().ok


def test_an_interrupted_upload_resumes_from_the_bytes_the_host_holds(
    simulated: Target, engine: Engine, tmp_path: Path
) -> None:
    desired = {"zip": version(tmp_path, 1, **{"big.dll": noise(12 * CHUNK_BYTES, "big")}), "runtime": new_runtime()}
    size = desired["zip"].stat().st_size
    folder = host_model.staging_folder(desired["runtime"])
    partial = simulated.windows_file(host_model.partial_path(folder, archive_inputs(desired["zip"])["sha256"]))

    def cut_the_connection_mid_upload() -> None:
        # Once three chunks are held, every WinRM Send is dropped (the retry included): the `up` fails.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if partial.exists() and partial.stat().st_size >= 3 * CHUNK_BYTES:
                simulated.set_knobs(faults=[{"kind": "drop", "on": "Send"}] * 4)
                return
            time.sleep(0.005)

    stack = engine(archive_program(simulated, desired))
    watcher = threading.Thread(target=cut_the_connection_mid_upload)
    watcher.start()
    try:
        interrupted = stack.up()
    finally:
        watcher.join()
        simulated.set_knobs()
    assert not interrupted.ok, interrupted.output
    held = partial.stat().st_size
    assert 3 * CHUNK_BYTES <= held < size and held % CHUNK_BYTES == 0, held

    mark = simulated.journal_mark()
    resumed = stack.up()
    assert resumed.ok, resumed.output
    chunks = chunk_requests(simulated, mark)
    assert chunks[0]["offset"] == held, "the upload continues where the host's copy ends, not from zero"
    assert sum(len(base64.b64decode(c["data"])) for c in chunks) == size - held
    assert f"resumed the upload of {desired['zip'].name} at byte {held} of {size}" in resumed.output
    assert simulated.windows_file(f"{desired['runtime']}\\big.dll").read_bytes() == noise(12 * CHUNK_BYTES, "big")
    assert stack.destroy().ok


def test_a_local_file_that_no_longer_matches_is_refused_before_anything_is_sent(
    simulated: Target, engine: Engine, tmp_path: Path
) -> None:
    zip_path = version(tmp_path, 1)
    declared = archive_inputs(zip_path)

    def program() -> None:
        RuntimeArchive(
            "runtime",
            connection=secret_connection(simulated),
            **{**declared, "sha256": "0" * 64},
            runtime_path=new_runtime(),
            keep_files=KEPT,
        )

    mark = simulated.journal_mark()
    run = engine(program).up()
    assert not run.ok
    assert f"source_path: {declared['source_path']} has {declared['size']} bytes and SHA-256 {declared['sha256']}" in (
        run.output
    ), run.output
    assert simulated.journal_since(mark) == [], "nothing reached the host"


def test_other_kept_files_extract_the_same_archive_again_and_a_kept_list_changed_on_the_host_is_drift(
    simulated: Target, engine: Engine, tmp_path: Path
) -> None:
    # A production agent deployed when every agent kept the former default list: the vendor's appsettings.json,
    # its base settings, was never extracted, and the host's manifest (an earlier set.ps1's) records no kept files.
    former_default = ["web.config", "appsettings.json", "appsettings.agent.json"]
    vendor = {"appsettings.json": b'{"vendor": "base settings"}'}
    desired = {"zip": version(tmp_path, 1, **vendor), "runtime": new_runtime(), "keep_files": former_default}
    appsettings = simulated.windows_file(f"{desired['runtime']}\\appsettings.json")
    manifest = simulated.windows_file(f"{host_model.staging_folder(desired['runtime'])}\\manifest.json")
    stack = engine(archive_program(simulated, desired))
    first = stack.up()
    assert first.ok, first.output
    assert not appsettings.exists()
    recorded = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({key: value for key, value in recorded.items() if key != "keep_files"}))
    assert stack.refresh(expect_no_changes=True).ok, "a manifest without kept files counts as the former default"

    # The agent now keeps only what it writes (appsettings.agent.json, web.config), with the same archive.
    desired["keep_files"] = ["appsettings.agent.json", "web.config"]
    preview = stack.preview(diff=True)
    assert preview.ok and "RuntimeArchive: (update)" in preview.stdout, preview.stdout
    assert "keep_files" in preview.stdout, preview.stdout
    mark = simulated.journal_mark()
    upgraded = stack.up()
    assert upgraded.ok and upgraded.summary.get("update") == 1, upgraded.output
    assert appsettings.read_bytes() == b'{"vendor": "base settings"}', "extracted from the archive, sent again"
    assert chunk_requests(simulated, mark), "the archive (deleted after the first installation) was sent again"
    assert json.loads(manifest.read_text())["keep_files"] == desired["keep_files"]
    assert stack.refresh(expect_no_changes=True).ok
    mark = simulated.journal_mark()
    assert stack.up().summary == {"same": 2}
    assert simulated.journal_since(mark) == [], "installed with these kept files: nothing to do"

    # Someone (or an older deployment) installed it on the host with other kept files: drift that up repairs.
    recorded = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**recorded, "keep_files": former_default}))
    drift = stack.refresh(expect_no_changes=True)
    assert not drift.ok and "keep_files" in drift.output, drift.output
    assert stack.up(refresh=True).ok
    assert json.loads(manifest.read_text())["keep_files"] == desired["keep_files"]
    assert stack.refresh(expect_no_changes=True).ok
    assert stack.destroy().ok
    assert not appsettings.exists(), "the archive's appsettings.json goes with it"

"""SIMULATOR: the models behind RuntimeArchive follow Windows' and .NET Framework's rules (no WinRM, no Pulumi):
ZipFile.ExtractToDirectory, the images a running agent holds, and the get/chunk/set/remove operations."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from devhost import fileops, iis, ntfs, scm, ziparchive
from devhost.fs import WindowsFs
from devhost.ops import runtime_archive as model
from tests.support.zips import zip_bytes

RUNTIME = "C:\\identitymanagerContoso\\Runtime"
SERVICE = "IdentityManagerAgentContoso"


def make_zip(files: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    return zip_bytes(files, method)


def put(fs: WindowsFs, path: str, data: bytes) -> None:
    target = fs.resolve(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def spec(data: bytes, **overrides: Any) -> dict[str, Any]:
    return {
        "runtime_path": RUNTIME,
        "archive_name": "runtime.zip",
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "keep_files": ["web.config", "appsettings.json", "appsettings.agent.json"],
        "app_pool": "",
        "service_name": "",
        "wait_budget_s": 480,  # what the provider sends for the default command_timeout_s (600 s)
        "command_timeout_s": 600,
        **overrides,
    }


def upload(fs: WindowsFs, data: bytes, chunk: int = 1000) -> None:
    for offset in range(0, len(data), chunk):
        payload = {
            "runtime_path": RUNTIME,
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "offset": offset,
            "data": base64.b64encode(data[offset : offset + chunk]).decode(),
        }
        assert model.chunk(fs, payload).ok


def install(fs: WindowsFs, data: bytes, **overrides: Any) -> dict[str, Any]:
    upload(fs, data)
    envelope = model.set_(fs, spec(data, **overrides))
    assert envelope.ok, envelope.error
    return envelope.state


def running_service(state: Path) -> None:
    scm.create(
        state,
        name=SERVICE,
        display_name=SERVICE,
        image_path=f'"{RUNTIME}\\Usercube-Agent.exe" --service',
        start_mode="Auto",
        start_name="LocalSystem",
        password=None,
    )
    scm.start(state, SERVICE)


def journal(state: Path) -> list[dict[str, Any]]:
    path = state / "_sim" / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def agent_events(fs: WindowsFs) -> list[tuple[str, str]]:
    """What the journal says was done to the agent (its pool or service): (action, what) in order."""
    return [(e["action"], e["what"]) for e in journal(fs.root) if e["kind"] == "agent"]


NOISE = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(200))  # 6400 bytes that do not compress
V1 = {
    "Usercube-Agent.exe": b"MZ v1",
    "lib\\old.dll": b"MZ old",
    "web.config": b"<vendor/>",
    "readme.txt": b"v1",
    "data.bin": NOISE,
}
V2 = {"Usercube-Agent.exe": b"MZ v2", "lib/new.dll": b"MZ new", "readme.txt": b"v2", "data.bin": NOISE[::-1]}


# -- ZipFile.ExtractToDirectory ----------------------------------------------------------------------


def test_extract_refuses_an_existing_destination_and_never_overwrites(fs: WindowsFs) -> None:
    put(fs, "C:\\a.zip", make_zip({"x.txt": b"1"}))
    put(fs, "C:\\out\\x.txt", b"mine")
    with pytest.raises(fileops.DotNetError, match="already exists") as raised:
        ziparchive.extract_to_directory(fs, "C:\\a.zip", "C:\\out")
    assert raised.value.type_name == "System.IO.IOException"
    put(fs, "C:\\b.zip", make_zip({"x.txt": b"1", "X.TXT": b"2"}))
    with pytest.raises(fileops.DotNetError, match="already exists"):  # the same name, as NTFS compares names
        ziparchive.extract_to_directory(fs, "C:\\b.zip", "C:\\fresh")
    assert fs.resolve("C:\\fresh\\x.txt").read_bytes() == b"1", "what was extracted stays (partially extracted)"


def test_extract_refuses_an_entry_outside_the_destination(fs: WindowsFs) -> None:
    put(fs, "C:\\a.zip", make_zip({"../escape.dll": b"MZ"}))
    with pytest.raises(fileops.DotNetError, match="outside the specified destination"):
        ziparchive.extract_to_directory(fs, "C:\\a.zip", "C:\\out")
    assert not fs.resolve("C:\\escape.dll").exists()


def test_extract_decodes_only_stored_and_deflate_and_checks_no_crc(fs: WindowsFs) -> None:
    put(fs, "C:\\bz.zip", make_zip({"x.txt": b"data"}, zipfile.ZIP_BZIP2))
    with pytest.raises(fileops.DotNetError, match="unsupported compression method") as raised:
        ziparchive.extract_to_directory(fs, "C:\\bz.zip", "C:\\out1")
    assert raised.value.type_name == "System.IO.InvalidDataException"
    stored = bytearray(make_zip({"x.txt": b"data"}, zipfile.ZIP_STORED))
    crc_at = stored.index(b"PK\x01\x02") + 16  # the central directory's CRC-32 of the entry
    stored[crc_at : crc_at + 4] = struct.pack("<I", 0xDEADBEEF)
    put(fs, "C:\\crc.zip", bytes(stored))
    ziparchive.extract_to_directory(fs, "C:\\crc.zip", "C:\\out2")  # .NET Framework does not check it
    assert fs.resolve("C:\\out2\\x.txt").read_bytes() == b"data"


def test_open_read_of_a_file_that_is_no_zip_is_invalid_data(fs: WindowsFs) -> None:
    put(fs, "C:\\no.zip", b"this is not a zip archive")
    with pytest.raises(fileops.DotNetError, match="End of Central Directory record could not be found"):
        ziparchive.open_read(fs, "C:\\no.zip")


# -- images a running agent holds ---------------------------------------------------------------------


def test_a_running_services_images_can_be_moved_but_not_deleted(fs: WindowsFs) -> None:
    put(fs, f"{RUNTIME}\\Usercube-Agent.exe", b"MZ v1")
    put(fs, f"{RUNTIME}\\lib\\a.dll", b"MZ a")
    put(fs, f"{RUNTIME}\\notes.txt", b"text")
    running_service(fs.root)
    assert fileops.held_by(fs.root, f"{RUNTIME}\\lib\\a.dll") == f"Usercube-Agent.exe (service {SERVICE})"
    with pytest.raises(fileops.DotNetError, match="is denied") as raised:
        fileops.delete_file(fs, f"{RUNTIME}\\lib\\a.dll")
    assert raised.value.type_name == "System.UnauthorizedAccessException"
    fileops.delete_file(fs, f"{RUNTIME}\\notes.txt")  # not an image: no lock
    fs.resolve(f"{RUNTIME}\\old").mkdir()
    fileops.move_file(fs, f"{RUNTIME}\\lib\\a.dll", f"{RUNTIME}\\old\\a.dll")  # a rename is allowed
    with pytest.raises(fileops.DotNetError):  # and the moved file is still the running program's
        fileops.delete_file(fs, f"{RUNTIME}\\old\\a.dll")
    scm.stop(fs.root, SERVICE)
    fileops.delete_file(fs, f"{RUNTIME}\\old\\a.dll")


def test_a_file_another_program_holds_open_can_be_neither_moved_nor_deleted(fs: WindowsFs) -> None:
    put(fs, f"{RUNTIME}\\readme.txt", b"x")
    (fs.root / "_sim").mkdir()
    (fs.root / "_sim" / "knobs.json").write_text(json.dumps({"files_held_open": [f"{RUNTIME}\\README.txt"]}))
    with pytest.raises(fileops.DotNetError, match="being used by another process"):
        fileops.move_file(fs, f"{RUNTIME}\\readme.txt", f"{RUNTIME}\\moved.txt")
    with pytest.raises(fileops.DotNetError, match="being used by another process"):
        fileops.delete_file(fs, f"{RUNTIME}\\readme.txt")


# -- the operations ------------------------------------------------------------------------------------


def test_chunks_stage_the_archive_in_a_folder_only_system_and_administrators_can_read(fs: WindowsFs) -> None:
    data = make_zip(V1)
    upload(fs, data)
    folder = model.staging_folder(RUNTIME)
    partial = model.partial_path(folder, hashlib.sha256(data).hexdigest())
    assert fs.resolve(partial).read_bytes() == data
    store = ntfs.NtfsStore(fs.root)
    root = folder.rsplit("\\", 1)[0]
    assert store.descriptor(root).protected
    readers = {ace.sid for ace in store.explicit_and_inherited(partial, is_container=False)}
    assert readers == {"S-1-5-18", "S-1-5-32-544"}


def test_a_chunk_sent_again_lands_where_it_did_and_a_gap_is_refused(fs: WindowsFs) -> None:
    data = make_zip(V1)
    upload(fs, data)
    again = {
        "runtime_path": RUNTIME,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "offset": 1000,
        "data": base64.b64encode(data[1000:2000]).decode(),
    }
    assert model.chunk(fs, again).state == {"held_bytes": 2000}  # cut to the offset, then written
    gap = model.chunk(fs, {**again, "offset": 5000})
    assert not gap.ok and gap.error is not None and gap.error["id"] == "UploadOutOfOrder"


def test_install_keeps_managed_files_and_records_what_it_extracted(fs: WindowsFs) -> None:
    put(fs, f"{RUNTIME}\\web.config", b"<ours/>")
    state = install(fs, make_zip(V1))
    assert state["file_count"] == 4 and state["missing_files"] == []
    assert fs.resolve(f"{RUNTIME}\\web.config").read_bytes() == b"<ours/>", "a managed file is never replaced"
    assert fs.resolve(f"{RUNTIME}\\lib\\old.dll").read_bytes() == b"MZ old"
    assert not fs.resolve(f"{RUNTIME}\\.iac-new").exists() and not fs.resolve(f"{RUNTIME}\\.iac-old").exists()
    staged = [entry.name for entry in fs.resolve(model.staging_folder(RUNTIME)).iterdir()]
    assert staged == ["manifest.json"], "the uploaded archive is deleted once extracted"


def test_an_upgrade_stops_the_running_service_and_removes_what_the_new_version_lacks(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    put(fs, f"{RUNTIME}\\agent.log", b"the agent's own file")
    state = install(fs, make_zip(V2), service_name=SERVICE)
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").read_bytes() == b"MZ v2"
    assert fs.resolve(f"{RUNTIME}\\lib\\new.dll").exists()
    assert not fs.resolve(f"{RUNTIME}\\lib\\old.dll").exists(), "a file of the previous version is removed"
    assert fs.resolve(f"{RUNTIME}\\agent.log").exists(), "a file no archive put there is not touched"
    assert state["sha256"] == hashlib.sha256(make_zip(V2)).hexdigest()
    events = [(e["action"], e["name"]) for e in journal(fs.root) if e["kind"] == "agent"]
    assert events == [("stop", SERVICE), ("start", SERVICE)]
    service = scm.get(fs.root, SERVICE)
    assert service is not None and service.state == "Running"


def test_without_stopping_the_agent_the_upgrade_could_not_delete_the_old_images(fs: WindowsFs) -> None:
    install(fs, make_zip(V1))
    running_service(fs.root)
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2)))  # service_name not given: nothing is stopped
    assert envelope.ok, envelope.error
    assert fs.resolve(f"{RUNTIME}\\.iac-old\\Usercube-Agent.exe").exists(), "the running program's image stays"
    assert any(c["property"] == "work_folder" and ".iac-old" in c["after"] for c in envelope.changes)


def test_a_failed_extraction_leaves_the_previous_version_running(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    broken = bytearray(make_zip({"Usercube-Agent.exe": b"MZ v3" * 100, "b.dll": b"MZ b"}))
    data_at = broken.index(b"Usercube-Agent.exe") + len("Usercube-Agent.exe")
    broken[data_at] = 0xFF  # the first Deflate block header: block type 3, which does not exist
    upload(fs, bytes(broken))
    envelope = model.set_(fs, spec(bytes(broken), service_name=SERVICE))
    assert not envelope.ok and envelope.error is not None and envelope.error["id"] == "ExtractionFailed"
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").read_bytes() == b"MZ v1"
    assert not fs.resolve(f"{RUNTIME}\\.iac-new").exists()
    assert [e for e in journal(fs.root) if e["kind"] == "agent"] == [], "the agent was never stopped"


def test_a_failed_swap_puts_every_file_back_and_starts_the_agent_again(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    (fs.root / "_sim" / "knobs.json").write_text(json.dumps({"files_held_open": [f"{RUNTIME}\\readme.txt"]}))
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), service_name=SERVICE))
    assert not envelope.ok and envelope.error is not None and envelope.error["id"] == "SwapFailed"
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").read_bytes() == b"MZ v1"
    assert fs.resolve(f"{RUNTIME}\\lib\\old.dll").exists() and not fs.resolve(f"{RUNTIME}\\lib\\new.dll").exists()
    service = scm.get(fs.root, SERVICE)
    assert service is not None and service.state == "Running"
    assert model.get(fs, spec(make_zip(V1))).state["sha256"] == hashlib.sha256(make_zip(V1)).hexdigest()


def test_remove_deletes_only_what_the_archive_put_there(fs: WindowsFs) -> None:
    put(fs, f"{RUNTIME}\\web.config", b"<ours/>")
    install(fs, make_zip(V1))
    put(fs, f"{RUNTIME}\\agent.log", b"log")
    envelope = model.remove(fs, spec(make_zip(V1)))
    assert envelope.ok and envelope.state["ensure"] == "absent"
    remaining = sorted(p.name for p in fs.resolve(RUNTIME).rglob("*"))
    assert remaining == ["agent.log", "web.config"]
    assert not fs.resolve(model.staging_folder(RUNTIME)).exists()


@pytest.mark.parametrize(
    "name", ["../escape.dll", "lib//twice.dll", ".iac-old/x.dll", "bad|name.dll", "lib./x.dll", "readme.txt "]
)
def test_an_entry_name_that_cannot_be_extracted_safely_is_refused_before_anything_changes(
    fs: WindowsFs, name: str
) -> None:
    data = make_zip({"ok.dll": b"MZ", name: b"MZ"})
    upload(fs, data)
    envelope = model.set_(fs, spec(data))
    assert not envelope.ok and envelope.error is not None and envelope.error["id"] == "ArchiveEntryRefused"
    assert not fs.resolve(RUNTIME).exists(), "nothing was extracted"


def test_a_kept_file_of_the_archive_is_never_extracted_not_even_into_iac_new(fs: WindowsFs) -> None:
    # .iac-new is below Runtime, the site's root: the archive's own web.config there would be read by IIS (a
    # web.config in any folder of a site) until the swap. An antivirus scanning it would keep it there for good.
    pool_site(fs)
    knobs(fs, files_held_open=[f"{RUNTIME}\\.iac-new\\web.config"])
    state = install(fs, make_zip(V1), app_pool=POOL)
    assert state["file_count"] == 4
    assert not fs.resolve(f"{RUNTIME}\\.iac-new").exists(), "nothing of web.config was written"
    assert not fs.resolve(f"{RUNTIME}\\web.config").exists(), "the stack writes it"


def test_an_entry_whose_folder_is_longer_than_net_framework_allows_is_refused(fs: WindowsFs) -> None:
    folder = "f" * 210  # Runtime\\.iac-new\\<folder> is 253 characters, the file's path 259
    data = make_zip({f"{folder}/x.dll": b"MZ"})
    assert len(f"{RUNTIME}\\.iac-new\\{folder}\\x.dll") == 259
    upload(fs, data)
    envelope = model.set_(fs, spec(data))
    assert not envelope.ok and envelope.error is not None and envelope.error["id"] == "ArchivePathTooLong"
    assert "folders of at most 247" in envelope.error["message"]


def test_a_leftover_iac_new_someone_holds_is_work_folder_busy_and_nothing_changes(fs: WindowsFs) -> None:
    install(fs, make_zip(V1))
    put(fs, f"{RUNTIME}\\.iac-new\\readme.txt", b"v2")  # left by a run that broke off; an antivirus scans it
    (fs.root / "_sim" / "knobs.json").write_text(json.dumps({"files_held_open": [f"{RUNTIME}\\.iac-new\\readme.txt"]}))
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2)))
    assert not envelope.ok and envelope.error is not None and envelope.error["id"] == "WorkFolderBusy"
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").read_bytes() == b"MZ v1"


# -- interrupted and failing runs (review fixes) --------------------------------------------------------


POOL = "IdentityManagerContoso"


def pool_site(fs: WindowsFs) -> None:
    """An application pool running a site on Runtime (the IIS hosting)."""
    iis.ensure_installed(fs.root)
    manager = iis.ServerManager(fs.root)
    manager.add_pool(POOL)
    site = manager.add_site("Contoso", RUNTIME)
    for application in site.iter("application"):
        application.set("applicationPool", POOL)
    manager.commit()
    assert manager.pool_state(POOL) == "Started"


def knobs(fs: WindowsFs, **values: Any) -> None:
    (fs.root / "_sim").mkdir(exist_ok=True)
    (fs.root / "_sim" / "knobs.json").write_text(json.dumps(values))


def pool_running_v1(fs: WindowsFs) -> None:
    """A pool whose worker runs V1's images (started after they were extracted)."""
    put(fs, f"{RUNTIME}\\placeholder.txt", b"")
    pool_site(fs)
    install(fs, make_zip(V1), app_pool=POOL)
    manager = iis.ServerManager(fs.root)
    manager.stop_pool(POOL)
    time.sleep(0.01)
    manager.start_pool(POOL)


def test_set_waits_for_the_stopped_pools_worker_to_exit_before_the_swap(fs: WindowsFs) -> None:
    """review-owed A4 (c): the draining worker could still load an assembly from the half-swapped Runtime."""
    pool_running_v1(fs)
    # Once stopped, w3wp.exe would map them for a minute more; WAS ends it at the pool's shutdownTimeLimit.
    knobs(fs, pool_worker_exit_s=60)
    shutdown_time_limit(fs, "00:00:01")
    upload(fs, make_zip(V2))
    began = time.monotonic()
    envelope = model.set_(fs, spec(make_zip(V2), app_pool=POOL))
    assert envelope.ok, envelope.error
    assert time.monotonic() - began >= 0.9, "waited for the worker before the swap"
    assert iis.ServerManager(fs.root).pool_state(POOL) == "Started"
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").read_bytes() == b"MZ v2"
    assert not fs.resolve(f"{RUNTIME}\\.iac-old").exists(), "the worker had let go of the old images"


def test_an_iac_old_still_held_is_left_for_the_next_run_and_the_pool_is_started_again(fs: WindowsFs) -> None:
    put(fs, f"{RUNTIME}\\placeholder.txt", b"")
    pool_site(fs)
    install(fs, make_zip(V1), app_pool=POOL)
    # Another program (an antivirus scan) holds a replaced file open once it is in .iac-old.
    knobs(fs, files_held_open=[f"{RUNTIME}\\.iac-old\\readme.txt"])
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), app_pool=POOL))
    assert envelope.ok, envelope.error
    assert iis.ServerManager(fs.root).pool_state(POOL) == "Started", "started again although .iac-old is held"
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").read_bytes() == b"MZ v2"
    assert fs.resolve(f"{RUNTIME}\\.iac-old").exists(), "the held file is left for the next run"
    knobs(fs)  # let go
    again = model.set_(fs, spec(make_zip(V2), app_pool=POOL))
    assert again.ok and [c["property"] for c in again.changes] == ["work_folder"]
    assert not fs.resolve(f"{RUNTIME}\\.iac-old").exists()


def test_an_agent_left_stopped_by_a_broken_run_is_drift_and_the_next_set_starts_it(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    folder = model.staging_folder(RUNTIME)
    # A run stopped the service, recorded it, and broke off before starting it again (connection lost).
    put(fs, f"{folder}\\agent-stopped.json", json.dumps({"pool": None, "service": SERVICE, "dependents": []}).encode())
    scm.stop(fs.root, SERVICE)
    assert model.get(fs, spec(make_zip(V1), service_name=SERVICE)).state["interrupted"] == [f"agent stopped: {SERVICE}"]
    envelope = model.set_(fs, spec(make_zip(V1), service_name=SERVICE))  # the same archive: the early return
    assert envelope.ok and envelope.changed
    service = scm.get(fs.root, SERVICE)
    assert service is not None and service.state == "Running"
    assert not fs.resolve(f"{folder}\\agent-stopped.json").exists()


def test_an_interrupted_swap_is_undone_from_iac_old_before_anything_is_deleted(fs: WindowsFs) -> None:
    install(fs, make_zip(V1))
    folder = model.staging_folder(RUNTIME)
    # A swap to V2 broke off after moving the old exe aside: .iac-old holds its only copy.
    put(fs, f"{RUNTIME}\\.iac-old\\Usercube-Agent.exe", b"MZ v1")
    fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").unlink()
    moves = [[f"{RUNTIME}\\Usercube-Agent.exe", f"{RUNTIME}\\.iac-old\\Usercube-Agent.exe"]]
    put(fs, f"{folder}\\swap.json", json.dumps({"sha256": "0" * 64, "moves": moves}).encode())
    assert "swap not finished" in model.get(fs, spec(make_zip(V1))).state["interrupted"]
    broken = make_zip({"x.dll": b"MZ"}, zipfile.ZIP_BZIP2)  # a run that then fails to extract
    upload(fs, broken)
    envelope = model.set_(fs, spec(broken))
    assert not envelope.ok and envelope.error is not None and envelope.error["id"] == "ExtractionFailed"
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").read_bytes() == b"MZ v1", "the previous version is whole"
    assert not fs.resolve(f"{folder}\\swap.json").exists()


def interrupted_swap_to_v2(fs: WindowsFs) -> None:
    """A swap from V1 to V2 broke off (connection lost) after four of its moves (the replaced files aside first,
    then the new ones in): the new exe and a new dll are in, the new readme is not."""
    folder = model.staging_folder(RUNTIME)
    for name, data in (("Usercube-Agent.exe", b"MZ v2"), ("lib\\new.dll", b"MZ new"), ("readme.txt", b"v2")):
        put(fs, f"{RUNTIME}\\.iac-new\\{name}", data)
    moves = [
        [f"{RUNTIME}\\Usercube-Agent.exe", f"{RUNTIME}\\.iac-old\\Usercube-Agent.exe"],
        [f"{RUNTIME}\\readme.txt", f"{RUNTIME}\\.iac-old\\readme.txt"],
        [f"{RUNTIME}\\.iac-new\\Usercube-Agent.exe", f"{RUNTIME}\\Usercube-Agent.exe"],
        [f"{RUNTIME}\\.iac-new\\lib\\new.dll", f"{RUNTIME}\\lib\\new.dll"],
        [f"{RUNTIME}\\.iac-new\\readme.txt", f"{RUNTIME}\\readme.txt"],  # not reached
    ]
    put(fs, f"{folder}\\swap.json", json.dumps({"sha256": "0" * 64, "moves": moves}).encode())
    for origin, target in moves[:4]:
        fs.resolve(target).parent.mkdir(parents=True, exist_ok=True)
        fs.resolve(origin).rename(fs.resolve(target))


def test_an_interrupted_swap_is_undone_with_the_agent_stopped_that_a_reboot_started_on_the_mix(
    fs: WindowsFs,
) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    interrupted_swap_to_v2(fs)
    running_service(fs.root)  # the host rebooted: the Automatic service started on the mix (V2's exe, V1's dlls)
    envelope = model.set_(fs, spec(make_zip(V1), service_name=SERVICE))
    assert envelope.ok, envelope.error
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").read_bytes() == b"MZ v1"
    assert not fs.resolve(f"{RUNTIME}\\lib\\new.dll").exists()
    events = [(e["action"], e["name"]) for e in journal(fs.root) if e["kind"] == "agent"]
    assert events == [("stop", SERVICE), ("start", SERVICE)], "stopped before the undo, started once it was whole"
    service = scm.get(fs.root, SERVICE)
    assert service is not None and service.state == "Running"
    assert service.started_at > fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").stat().st_ctime, "runs V1's images"


def test_remove_undoes_an_interrupted_swap_first_so_the_new_files_it_moved_in_go_too(fs: WindowsFs) -> None:
    install(fs, make_zip(V1))
    interrupted_swap_to_v2(fs)
    envelope = model.remove(fs, spec(make_zip(V1)))
    assert envelope.ok, envelope.error
    assert not fs.resolve(f"{RUNTIME}\\lib\\new.dll").exists(), "only swap.json listed it"
    assert list(fs.resolve(RUNTIME).iterdir()) == [], "nothing of either version is left"


def test_remove_stops_the_agent_a_reboot_started_on_an_interrupted_swap_and_leaves_it_stopped(
    fs: WindowsFs,
) -> None:
    pool_site(fs)
    install(fs, make_zip(V1), app_pool=POOL)
    interrupted_swap_to_v2(fs)
    iis.ServerManager(fs.root).stop_pool(POOL)
    time.sleep(0.01)
    iis.ServerManager(fs.root).start_pool(POOL)  # WAS started it again (AutoStart) on the mix
    knobs(fs, pool_worker_exit_s=0.5)  # its worker exits half a second after the stop
    envelope = model.remove(fs, spec(make_zip(V1), app_pool=POOL))
    assert envelope.ok, envelope.error  # the wait for the worker covers the restore's stop too
    assert list(fs.resolve(RUNTIME).iterdir()) == []
    assert iis.ServerManager(fs.root).pool_state(POOL) == "Stopped"
    assert [e["action"] for e in journal(fs.root) if e["kind"] == "agent"][-1:] == ["stop"]


def test_a_work_folder_left_behind_is_drift_and_the_next_set_deletes_it(fs: WindowsFs) -> None:
    install(fs, make_zip(V1))
    put(fs, f"{RUNTIME}\\.iac-old\\lib\\old.dll", b"MZ old")  # a run could not delete it, then broke off
    state = model.get(fs, spec(make_zip(V1))).state
    assert state["interrupted"] == [f"work folder left: {RUNTIME}\\.iac-old"]
    envelope = model.set_(fs, spec(make_zip(V1)))
    assert envelope.ok and [c["property"] for c in envelope.changes] == ["work_folder"]
    assert envelope.state["interrupted"] == []


def test_an_undo_that_fails_keeps_iac_old_and_the_agent_stopped_until_the_next_run_puts_it_back(
    fs: WindowsFs,
) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    # data.bin cannot be moved aside (the swap fails); readme.txt, moved aside, cannot be moved back (the undo).
    knobs(fs, files_held_open=[f"{RUNTIME}\\data.bin", f"{RUNTIME}\\.iac-old\\readme.txt"])
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), service_name=SERVICE))
    assert not envelope.ok and envelope.error is not None and envelope.error["id"] == "SwapRollbackIncomplete"
    message = envelope.error["message"]
    assert "being used by another process" in message.split("Putting the previous version back")[0], "first error"
    assert ".iac-old\\readme.txt" in message and f"service '{SERVICE}') was left stopped" in message
    assert fs.resolve(f"{RUNTIME}\\.iac-old\\readme.txt").read_bytes() == b"v1", "kept"
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").read_bytes() == b"MZ v1", "the other undos were done"
    service = scm.get(fs.root, SERVICE)
    assert service is not None and service.state == "Stopped", "not started on a mix of both versions"
    knobs(fs)  # the other program let go of the files
    again = model.set_(fs, spec(make_zip(V2), service_name=SERVICE))
    assert again.ok, again.error
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").read_bytes() == b"MZ v2"
    service = scm.get(fs.root, SERVICE)
    assert service is not None and service.state == "Running"
    events = [(e["action"], e["name"]) for e in journal(fs.root) if e["kind"] == "agent"]
    assert events == [("stop", SERVICE), ("start", SERVICE), ("stop", SERVICE), ("start", SERVICE)], (
        "started only once the previous version was whole again"
    )


def test_remove_does_not_start_the_agent_whose_files_it_deleted(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    envelope = model.remove(fs, spec(make_zip(V1), service_name=SERVICE))
    assert envelope.ok, envelope.error
    service = scm.get(fs.root, SERVICE)
    assert service is not None and service.state == "Stopped"
    assert [e["action"] for e in journal(fs.root) if e["kind"] == "agent"] == ["stop"]


def test_remove_names_the_dependent_services_it_stopped_with_the_agent(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    running_dependent(fs.root)
    envelope = model.remove(fs, spec(make_zip(V1), service_name=SERVICE))
    assert envelope.ok, envelope.error
    named = [c for c in envelope.changes if c["property"] == "dependent_service"]
    assert [c["before"] for c in named] == [f"{DEPENDENT}: running"]
    assert f"stopped with service '{SERVICE}'" in named[0]["after"]
    dependent = scm.get(fs.root, DEPENDENT)
    assert dependent is not None and dependent.state == "Stopped"
    with pytest.raises(scm.ScmError) as raised:  # why it is not started again: it would start the agent first
        scm.start(fs.root, DEPENDENT)
    assert raised.value.code == 1068


def test_a_staging_folder_someone_else_made_first_is_refused(fs: WindowsFs) -> None:
    fs.resolve(f"{model.PROGRAM_DATA}\\UsercubeIac").mkdir(parents=True)
    user = "S-1-5-21-1-2-3-1001"  # Users may create folders in %ProgramData%: this one is theirs
    ntfs.NtfsStore(fs.root).set_descriptor(f"{model.PROGRAM_DATA}\\UsercubeIac", ntfs.Descriptor(user, False, []))
    data = make_zip(V1)
    payload = {"runtime_path": RUNTIME, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    envelope = model.chunk(fs, {**payload, "offset": 0, "data": base64.b64encode(data).decode()})
    assert not envelope.ok and envelope.error is not None and envelope.error["id"] == "StagingFolderUntrusted"
    assert user in envelope.error["message"]
    refused = model.get(fs, spec(data))
    assert not refused.ok and refused.error is not None and refused.error["id"] == "StagingFolderUntrusted"


# -- a record left by a broken run (agent-stopped.json) never blocks a later set --------------------------


def left_stopped(fs: WindowsFs, record: dict[str, Any]) -> str:
    """A run wrote agent-stopped.json, stopped the agent and broke off (connection lost)."""
    folder = model.staging_folder(RUNTIME)
    put(fs, f"{folder}\\agent-stopped.json", json.dumps(record).encode())
    return f"{folder}\\agent-stopped.json"


def agent_changes(envelope: Any) -> dict[str, str]:
    return {c["property"]: c["after"] for c in envelope.changes if c["property"].startswith("agent_")}


def test_a_record_for_a_service_deleted_since_is_dropped_and_set_goes_on(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    record = left_stopped(fs, {"pool": None, "auto_start": None, "service": SERVICE, "dependents": []})
    scm.admin_delete_service(fs.root, SERVICE)  # the user removed the agent's service meanwhile
    for _ in range(2):  # not once: every later run would have failed
        envelope = model.set_(fs, spec(make_zip(V1), service_name=SERVICE))
        assert envelope.ok, envelope.error
    assert not fs.resolve(record).exists()
    assert model.get(fs, spec(make_zip(V1))).state["interrupted"] == []


def test_a_record_for_a_pool_deleted_since_is_dropped_and_set_goes_on(fs: WindowsFs) -> None:
    pool_site(fs)
    install(fs, make_zip(V1), app_pool=POOL)
    record = left_stopped(fs, {"pool": POOL, "auto_start": True, "service": None, "dependents": []})
    manager = iis.ServerManager(fs.root)
    manager.remove_pool(POOL)
    manager.commit()
    envelope = model.set_(fs, spec(make_zip(V1), app_pool=POOL))
    assert envelope.ok, envelope.error
    assert agent_changes(envelope) == {"agent_pool": "gone (nothing to start)"}
    assert not fs.resolve(record).exists()


def test_a_pool_whose_autostart_was_cleared_since_is_left_stopped(fs: WindowsFs) -> None:
    pool_site(fs)
    install(fs, make_zip(V1), app_pool=POOL)
    record = left_stopped(fs, {"pool": POOL, "auto_start": True, "service": None, "dependents": []})
    manager = iis.ServerManager(fs.root)
    manager.stop_pool(POOL)
    pool = manager.find_pool(POOL)
    assert pool is not None
    manager.set_pool_value(pool, "autoStart", "false")  # IisAppPool state='Stopped': kept stopped on purpose
    manager.commit()
    envelope = model.set_(fs, spec(make_zip(V1), app_pool=POOL))
    assert envelope.ok, envelope.error
    assert iis.ServerManager(fs.root).pool_state(POOL) == "Stopped"
    assert "stopped on purpose" in agent_changes(envelope)["agent_pool"]
    assert not fs.resolve(record).exists()
    assert [e for e in journal(fs.root) if e["kind"] == "agent" and e["action"] == "start"] == []


def test_a_pool_stopped_by_the_broken_run_is_started_whatever_its_autostart(fs: WindowsFs) -> None:
    pool_site(fs)
    install(fs, make_zip(V1), app_pool=POOL)
    manager = iis.ServerManager(fs.root)
    pool = manager.find_pool(POOL)
    assert pool is not None
    manager.set_pool_value(pool, "autoStart", "false")  # started by hand although it does not start with IIS
    manager.commit()
    left_stopped(fs, {"pool": POOL, "auto_start": False, "service": None, "dependents": []})
    manager.stop_pool(POOL)
    envelope = model.set_(fs, spec(make_zip(V1), app_pool=POOL))
    assert envelope.ok, envelope.error
    assert agent_changes(envelope) == {"agent_pool": "Started"}
    assert iis.ServerManager(fs.root).pool_state(POOL) == "Started"


def test_an_upgrade_starts_again_a_started_pool_whose_autostart_is_false(fs: WindowsFs) -> None:
    pool_site(fs)
    install(fs, make_zip(V1), app_pool=POOL)
    manager = iis.ServerManager(fs.root)
    pool = manager.find_pool(POOL)
    assert pool is not None
    manager.set_pool_value(pool, "autoStart", "false")
    manager.commit()
    assert manager.pool_state(POOL) == "Started"
    install(fs, make_zip(V2), app_pool=POOL)
    assert iis.ServerManager(fs.root).pool_state(POOL) == "Started", "what this run stopped, it starts"


def test_a_service_disabled_since_is_left_stopped_and_set_goes_on(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    record = left_stopped(fs, {"pool": None, "auto_start": None, "service": SERVICE, "dependents": []})
    scm.stop(fs.root, SERVICE)
    scm.admin_edit_service(fs.root, SERVICE, start_mode="Disabled")
    envelope = model.set_(fs, spec(make_zip(V1), service_name=SERVICE))
    assert envelope.ok, envelope.error
    assert agent_changes(envelope) == {"agent_service": "left stopped (its start mode is Disabled)"}
    service = scm.get(fs.root, SERVICE)
    assert service is not None and service.state == "Stopped"
    assert not fs.resolve(record).exists()


def test_a_record_older_than_auto_start_still_starts_a_stopped_pool(fs: WindowsFs) -> None:
    pool_site(fs)
    install(fs, make_zip(V1), app_pool=POOL)
    left_stopped(fs, {"pool": POOL, "service": None, "dependents": []})  # written before auto_start existed
    manager = iis.ServerManager(fs.root)
    manager.stop_pool(POOL)
    envelope = model.set_(fs, spec(make_zip(V1), app_pool=POOL))
    assert envelope.ok and agent_changes(envelope) == {"agent_pool": "Started"}


def test_a_service_that_fails_to_start_keeps_the_record_and_says_how_to_keep_it_stopped(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    record = left_stopped(fs, {"pool": None, "auto_start": None, "service": SERVICE, "dependents": []})
    scm.stop(fs.root, SERVICE)
    fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").write_bytes(b"not a program")
    for _ in range(2):  # never blocks a run: reported each time, the record kept for the next one
        envelope = model.set_(fs, spec(make_zip(V1), service_name=SERVICE))
        assert envelope.ok and envelope.changed, envelope.error
        outcome = agent_changes(envelope)["agent_service"]
        assert "not a valid Win32 application" in outcome and "disable it" in outcome
        assert fs.resolve(record).exists(), "the next run tries again"
        assert envelope.state["interrupted"] == [f"agent stopped: {SERVICE}"], "drift until it runs"


def test_a_service_whose_old_version_no_longer_starts_is_upgraded_then_started(fs: WindowsFs) -> None:
    # The broken run left the service stopped, and the version in place no longer starts: the upgrade is what
    # repairs it, so the failed start before it must not stop the run (every later up would fail the same way).
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    record = left_stopped(fs, {"pool": None, "auto_start": None, "service": SERVICE, "dependents": []})
    scm.stop(fs.root, SERVICE)
    fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").write_bytes(b"not a program")
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), service_name=SERVICE))
    assert envelope.ok, envelope.error
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").read_bytes() == b"MZ v2"
    service = scm.get(fs.root, SERVICE)
    assert service is not None and service.state == "Running", "the swap's own start, from the record"
    starts = [c for c in envelope.changes if c["property"] == "agent_service"]
    assert "not a valid Win32 application" in starts[0]["after"] and starts[-1]["after"] == "Started"
    assert not fs.resolve(record).exists()


DEPENDENT = "IdentityManagerAgentContosoWatcher"


def running_dependent(state: Path) -> None:
    """A second service that needs the agent's (lpDependencies), running."""
    scm.create(
        state,
        name=DEPENDENT,
        display_name=DEPENDENT,
        image_path='"C:\\watcher\\watcher.exe"',
        start_mode="Auto",
        start_name="LocalSystem",
        password=None,
    )
    put(WindowsFs(state), "C:\\watcher\\watcher.exe", b"MZ watcher")
    scm.change(state, DEPENDENT, dependencies=[SERVICE])
    scm.start(state, DEPENDENT)


def test_an_upgrade_stops_the_dependent_services_first_and_starts_them_after(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    running_dependent(fs.root)
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), service_name=SERVICE))
    assert envelope.ok, envelope.error
    assert [(c["before"], c["after"]) for c in envelope.changes if c["property"] == "agent_service"] == [
        (f"{SERVICE}: stopped for the upgrade", "Started"),
        (f"{DEPENDENT}: stopped for the upgrade", "Started"),
    ]
    events = [(e["action"], e["name"]) for e in journal(fs.root) if e["kind"] == "agent"]
    assert events == [("stop", DEPENDENT), ("stop", SERVICE), ("start", SERVICE), ("start", DEPENDENT)]
    for name in (SERVICE, DEPENDENT):
        service = scm.get(fs.root, name)
        assert service is not None and service.state == "Running"


def test_the_dependents_of_a_service_disabled_since_are_not_started_either(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    running_dependent(fs.root)
    record = left_stopped(fs, {"pool": None, "service": SERVICE, "start_type": "Automatic", "dependents": [DEPENDENT]})
    scm.stop(fs.root, DEPENDENT)
    scm.stop(fs.root, SERVICE)
    scm.admin_edit_service(fs.root, SERVICE, start_mode="Disabled")  # kept stopped on purpose
    envelope = model.set_(fs, spec(make_zip(V1), service_name=SERVICE))
    # (Starting the dependent would start the agent's service first: 1068, learn.microsoft.com StartService.)
    assert envelope.ok, envelope.error
    outcomes = [c["after"] for c in envelope.changes if c["property"] == "agent_service"]
    assert outcomes[0] == "left stopped (its start mode is Disabled)"
    assert outcomes[1].startswith(f"not started: it depends on service '{SERVICE}', which left stopped")
    assert not fs.resolve(record).exists()
    assert [e for e in journal(fs.root) if e["kind"] == "agent" and e["action"] == "start"] == []


def test_a_dependent_of_a_service_that_fails_to_start_is_not_started_and_the_record_stays(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    running_dependent(fs.root)
    record = left_stopped(fs, {"pool": None, "service": SERVICE, "start_type": "Automatic", "dependents": [DEPENDENT]})
    scm.stop(fs.root, DEPENDENT)
    scm.stop(fs.root, SERVICE)
    fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").write_bytes(b"not a program")
    envelope = model.set_(fs, spec(make_zip(V1), service_name=SERVICE))
    assert envelope.ok, envelope.error
    outcomes = [c["after"] for c in envelope.changes if c["property"] == "agent_service"]
    assert outcomes[0].startswith("did not start again") and outcomes[1].startswith("not started: it depends")
    assert fs.resolve(record).exists()
    assert model.get(fs, spec(make_zip(V1))).state["interrupted"] == [
        f"agent stopped: {SERVICE}",
        f"agent stopped: {DEPENDENT}",
    ]


def test_a_service_that_ran_although_disabled_is_reported_not_started_after_the_upgrade(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    scm.admin_edit_service(fs.root, SERVICE, start_mode="Disabled")  # disabled while it runs: it goes on running
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), service_name=SERVICE))
    assert envelope.ok, envelope.error
    outcome = agent_changes(envelope)["agent_service"]
    # Disabled now says nothing about a stop on purpose: it was Disabled when this run stopped it.
    assert outcome.startswith("did not start again (The service cannot be started") and "Disabled already" in outcome
    record = _record(fs)
    assert record is not None and record["start_type"] == "Disabled"


def _record(fs: WindowsFs) -> dict[str, Any] | None:
    path = fs.resolve(f"{model.staging_folder(RUNTIME)}\\agent-stopped.json")
    return json.loads(path.read_text()) if path.is_file() else None


def test_a_service_that_does_not_stop_is_agent_stop_failed_in_set(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    knobs(fs, services_not_stopping=[SERVICE])  # it accepts the stop and never finishes it
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), service_name=SERVICE))
    assert not envelope.ok and envelope.error is not None
    assert (envelope.error["id"], envelope.error["property"]) == ("AgentStopFailed", "service_name")
    assert "did not stop within 120 s" in envelope.error["message"]
    assert "Nothing in Runtime was changed" in envelope.error["message"]
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").read_bytes() == b"MZ v1"
    # Still stopping: StartService refuses it (1056), which is added to the message; the record stays.
    assert "starting the agent again failed" in envelope.error["message"] and _record(fs) is not None
    again = model.set_(fs, spec(make_zip(V2), service_name=SERVICE))  # still stopping: never swapped under it
    assert not again.ok and again.error is not None and again.error["id"] == "AgentStopFailed"
    assert "still stopping" in again.error["message"]
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").read_bytes() == b"MZ v1"
    knobs(fs)  # its process ended
    done = model.set_(fs, spec(make_zip(V2), service_name=SERVICE))
    assert done.ok, done.error
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").read_bytes() == b"MZ v2"
    service = scm.get(fs.root, SERVICE)
    assert service is not None and service.state == "Running", "started from the first run's record"


def test_a_service_that_does_not_stop_is_agent_stop_failed_in_remove(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    knobs(fs, services_not_stopping=[SERVICE])
    removed = model.remove(fs, spec(make_zip(V1), service_name=SERVICE))
    assert not removed.ok and removed.error is not None
    assert (removed.error["id"], removed.error["property"]) == ("AgentStopFailed", "service_name")
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").is_file(), "nothing deleted"


# -- the swap's first error is what the user sees (no finally replacing it) -------------------------------


def test_a_failed_swap_whose_agent_then_fails_to_start_reports_the_swap_error_first(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    knobs(fs, files_held_open=[f"{RUNTIME}\\data.bin"])  # the swap fails
    scm.admin_edit_service(fs.root, SERVICE, image_path='"C:\\gone\\Usercube-Agent.exe" --service')  # the start too
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), service_name=SERVICE))
    assert not envelope.ok and envelope.error is not None and envelope.error["id"] == "SwapFailed"
    message = envelope.error["message"]
    assert message.index("being used by another process") < message.index("starting the agent again failed")
    assert "The system cannot find the file specified" in message
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").read_bytes() == b"MZ v1", "every file was put back"
    assert "agent stopped: " + SERVICE in model.get(fs, spec(make_zip(V1))).state["interrupted"], "the next run"


def test_a_cleanup_error_after_a_failed_swap_is_added_to_the_swap_error(fs: WindowsFs) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    # data.bin cannot be moved aside (the swap fails); the extracted readme.txt cannot be deleted (the cleanup).
    knobs(fs, files_held_open=[f"{RUNTIME}\\data.bin", f"{RUNTIME}\\.iac-new\\readme.txt"])
    upload(fs, make_zip(V2))
    envelope = model.set_(fs, spec(make_zip(V2), service_name=SERVICE))
    assert not envelope.ok and envelope.error is not None and envelope.error["id"] == "SwapFailed"
    message = envelope.error["message"]
    assert "the previous version runs again" in message and "Cleaning up failed too" in message
    service = scm.get(fs.root, SERVICE)
    assert service is not None and service.state == "Running"


def test_an_agent_that_fails_to_start_after_the_commit_is_a_change_with_the_new_version_in_place(
    fs: WindowsFs,
) -> None:
    install(fs, make_zip(V1), service_name=SERVICE)
    running_service(fs.root)
    upload(fs, make_zip({**V2, "Usercube-Agent.exe": b"not a program"}))
    envelope = model.set_(fs, spec(make_zip({**V2, "Usercube-Agent.exe": b"not a program"}), service_name=SERVICE))
    # Not the resource's failure: the settings files and the service after it must still be written (the new
    # version may need them to start); the failed start is a change, and the record makes it drift.
    assert envelope.ok, envelope.error
    assert (
        envelope.state["sha256"] == hashlib.sha256(make_zip({**V2, "Usercube-Agent.exe": b"not a program"})).hexdigest()
    )
    assert "not a valid Win32 application" in agent_changes(envelope)["agent_service"]
    assert envelope.state["interrupted"] == [f"agent stopped: {SERVICE}"]


def test_a_cleanup_error_after_the_commit_does_not_fail_the_installation(fs: WindowsFs) -> None:
    install(fs, make_zip(V1))
    data = make_zip(V2)
    upload(fs, data)
    partial = model.partial_path(model.staging_folder(RUNTIME), hashlib.sha256(data).hexdigest())
    knobs(fs, files_held_open=[partial])  # an antivirus scan holds the uploaded archive
    envelope = model.set_(fs, spec(data))
    assert envelope.ok, envelope.error
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").read_bytes() == b"MZ v2"
    cleanup = [c["after"] for c in envelope.changes if c["property"] == "cleanup"]
    assert len(cleanup) == 1 and "being used by another process" in cleanup[0]


# -- remove and the images a running agent maps ----------------------------------------------------------


def shutdown_time_limit(fs: WindowsFs, value: str) -> None:
    manager = iis.ServerManager(fs.root)
    pool = manager.find_pool(POOL)
    assert pool is not None
    manager.set_pool_value(pool, "processModel/shutdownTimeLimit", value)
    manager.commit()


def test_remove_waits_for_the_stopped_pools_worker_to_exit_before_deleting_the_images(fs: WindowsFs) -> None:
    pool_running_v1(fs)
    # Once stopped, w3wp.exe would map them for a minute more; WAS ends it at the pool's shutdownTimeLimit.
    knobs(fs, pool_worker_exit_s=60)
    shutdown_time_limit(fs, "00:00:01")
    began = time.monotonic()
    envelope = model.remove(fs, spec(make_zip(V1), app_pool=POOL))
    assert envelope.ok, envelope.error
    assert time.monotonic() - began >= 0.9, "waited for the worker"
    assert sorted(p.name for p in fs.resolve(RUNTIME).rglob("*")) == ["placeholder.txt"]
    assert iis.ServerManager(fs.root).pool_state(POOL) == "Stopped"
    assert model.get(fs, spec(make_zip(V1), app_pool=POOL)).state["interrupted"] == [], "no stop recorded"


def test_remove_of_files_an_agent_it_was_not_told_about_runs_says_what_to_do(fs: WindowsFs) -> None:
    install(fs, make_zip(V1))
    running_service(fs.root)  # runs from Runtime, but the resource names no service
    envelope = model.remove(fs, spec(make_zip(V1)))
    assert not envelope.ok and envelope.error is not None and envelope.error["id"] == "RuntimeFilesInUse"
    message = envelope.error["message"]
    assert "Access to the path" in message and "give its app_pool or service_name" in message
    assert fs.resolve(f"{RUNTIME}\\lib\\old.dll").exists(), "a mapped image is never deleted"
    assert model.get(fs, spec(make_zip(V1))).state["ensure"] == "present"


def test_remove_after_an_upgrade_whose_old_images_are_still_mapped_reports_the_work_folder(fs: WindowsFs) -> None:
    pool_running_v1(fs)
    shutdown_time_limit(fs, "00:00:01")  # (the waits for the exiting workers stay short)
    # An antivirus scan holds one of the old files: the work folder cannot be deleted yet.
    knobs(fs, pool_worker_exit_s=60, files_held_open=[f"{RUNTIME}\\.iac-old\\lib\\old.dll"])
    install(fs, make_zip(V2), app_pool=POOL)  # .iac-old is left with V1's files
    time.sleep(0.01)
    iis.ServerManager(fs.root).stop_pool(POOL)
    iis.ServerManager(fs.root).start_pool(POOL)  # V2's worker
    envelope = model.remove(fs, spec(make_zip(V2), app_pool=POOL))
    assert not envelope.ok and envelope.error is not None and envelope.error["id"] == "RuntimeFilesInUse"
    assert ".iac-old, left by an upgrade" in envelope.error["message"]


# -- the staging file: hashed and extracted through one handle ---------------------------------------------


def test_the_archive_extracted_is_the_one_hashed_even_if_the_file_is_swapped_in_between(
    fs: WindowsFs, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make_zip(V1)
    upload(fs, data)
    partial = fs.resolve(model.partial_path(model.staging_folder(RUNTIME), hashlib.sha256(data).hexdigest()))
    evil = make_zip({**V1, "Usercube-Agent.exe": b"MZ not the vendor's"})  # the same names, other content
    checked = model._file_list

    def then_swapped(*args: Any) -> list[str]:
        names = checked(*args)
        partial.write_bytes(evil)  # what a writer could do between the hash check and the extraction
        return names

    monkeypatch.setattr(model, "_file_list", then_swapped)
    envelope = model.set_(fs, spec(data))
    assert envelope.ok, envelope.error
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").read_bytes() == b"MZ v1", "only what was hashed"


def test_a_staging_file_that_changed_after_get_is_refused_by_the_hash_of_the_held_handle(
    fs: WindowsFs, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make_zip(V1)
    upload(fs, data)
    partial = fs.resolve(model.partial_path(model.staging_folder(RUNTIME), hashlib.sha256(data).hexdigest()))
    state = model._state

    def then_changed(*args: Any) -> dict[str, Any]:
        found = state(*args)
        if partial.exists():
            partial.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # the same size, other bytes
        return found

    monkeypatch.setattr(model, "_state", then_changed)
    envelope = model.set_(fs, spec(data))
    assert not envelope.ok and envelope.error is not None and envelope.error["id"] == "ArchiveHashMismatch"
    assert not partial.exists() and not fs.resolve(RUNTIME).exists()


def test_a_cleanup_error_after_a_failed_extraction_is_added_to_the_extraction_error(fs: WindowsFs) -> None:
    install(fs, make_zip(V1))
    broken = bytearray(make_zip({"a.txt": b"first", "b.dll": b"MZ b" * 100}))
    data_at = broken.index(b"b.dll") + len("b.dll")  # the second entry's data: a Deflate block type 3
    broken[data_at] = 0xFF
    upload(fs, bytes(broken))
    knobs(fs, files_held_open=[f"{RUNTIME}\\.iac-new\\a.txt"])  # extracted, then held by an antivirus scan
    envelope = model.set_(fs, spec(bytes(broken)))
    assert not envelope.ok and envelope.error is not None and envelope.error["id"] == "ExtractionFailed"
    message = envelope.error["message"]
    assert message.index("invalid data") < message.index("Deleting what was extracted failed too")
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").read_bytes() == b"MZ v1"


# -- a staging level set would repair is drift for get, not a refusal -----------------------------------------


def inheriting(fs: WindowsFs, path: str) -> None:
    """A level an earlier version made (the pre-ad7c09c hosting bundle's UsercubeIac): owned by Administrators, its
    DACL inherited from %ProgramData% (Users may create folders and files in it)."""
    fs.resolve(path).mkdir(parents=True, exist_ok=True)
    ntfs.NtfsStore(fs.root).set_descriptor(path, ntfs.Descriptor("S-1-5-32-544", False, []))


def test_get_reports_a_staging_folder_set_would_repair_as_drift_and_set_repairs_it(fs: WindowsFs) -> None:
    top = f"{model.PROGRAM_DATA}\\UsercubeIac"
    inheriting(fs, top)
    data = make_zip(V1)
    before = model.get(fs, spec(data))
    assert before.ok, before.error
    assert before.state["interrupted"] == [f"staging folder to repair: {top} grants S-1-5-32-545 access"]
    assert ntfs.NtfsStore(fs.root).descriptor(top) == ntfs.Descriptor("S-1-5-32-544", False, []), "get changed it"
    install(fs, data)
    assert model.get(fs, spec(data)).state["interrupted"] == []


def test_records_an_administrator_wrote_survive_the_repair_of_the_levels_above(fs: WindowsFs) -> None:
    data = make_zip(V1)
    install(fs, data)
    folder = model.staging_folder(RUNTIME)
    # The three levels reset to inherit (as an earlier version left them): Users could create entries, but the
    # files in them, an administrator's, only read.
    for level in (f"{model.PROGRAM_DATA}\\UsercubeIac", folder.rsplit("\\", 1)[0], folder):
        inheriting(fs, level)
    partial = model.partial_path(folder, hashlib.sha256(data).hexdigest())
    put(fs, partial, data[:100])
    drift = model.get(fs, spec(data)).state
    assert drift["interrupted"] and drift["interrupted"][0].startswith("staging folder to repair:")
    assert drift["ensure"] == "present" and drift["held_bytes"] == 0, "held bytes of an unsafe folder do not count"
    assert model.set_(fs, spec(data)).ok
    after = model.get(fs, spec(data)).state
    assert after["interrupted"] == [] and after["ensure"] == "present", "the manifest was kept"
    assert after["held_bytes"] == 100


def test_get_still_refuses_a_level_set_would_refuse(fs: WindowsFs) -> None:
    top = f"{model.PROGRAM_DATA}\\UsercubeIac"
    fs.resolve(top).mkdir(parents=True)
    ntfs.NtfsStore(fs.root).set_descriptor(top, ntfs.Descriptor("S-1-5-21-1-2-3-1001", False, []))
    refused = model.get(fs, spec(make_zip(V1)))
    assert not refused.ok and refused.error is not None and refused.error["id"] == "StagingFolderUntrusted"


# -- keep_files recorded in the manifest (issue 10 §1: a production agent writes no appsettings.json) -------------

FORMER_DEFAULT = ["web.config", "appsettings.json", "appsettings.agent.json"]
PRODUCTION_IIS = ["appsettings.agent.json", "web.config"]
VENDOR = {**V1, "appsettings.json": b'{"vendor": "base"}', "appsettings.agent.json": b'{"vendor": "agent"}'}


def manifest_of(fs: WindowsFs) -> dict[str, Any]:
    return json.loads(fs.resolve(f"{model.staging_folder(RUNTIME)}\\manifest.json").read_text(encoding="utf-8"))


def as_written_before_keep_files_were_recorded(fs: WindowsFs) -> None:
    """The manifest an earlier version of set.ps1 wrote: sha256, archive_name and files, no keep_files."""
    manifest = manifest_of(fs)
    manifest.pop("keep_files", None)
    put(fs, f"{model.staging_folder(RUNTIME)}\\manifest.json", json.dumps(manifest).encode())


def test_the_manifest_records_the_kept_files_and_get_reports_them(fs: WindowsFs) -> None:
    state = install(fs, make_zip(VENDOR), keep_files=PRODUCTION_IIS)
    assert manifest_of(fs)["keep_files"] == PRODUCTION_IIS
    assert state["kept_files"] == PRODUCTION_IIS
    assert fs.resolve(f"{RUNTIME}\\appsettings.json").read_bytes() == b'{"vendor": "base"}', "not kept: extracted"
    assert not fs.resolve(f"{RUNTIME}\\appsettings.agent.json").exists(), "kept: the stack writes it"
    assert "appsettings.json" in manifest_of(fs)["files"]


def test_a_manifest_without_kept_files_counts_as_the_former_default(fs: WindowsFs) -> None:
    data = make_zip(VENDOR)
    install(fs, data, keep_files=FORMER_DEFAULT)
    as_written_before_keep_files_were_recorded(fs)
    assert model.get(fs, spec(data)).state["kept_files"] == FORMER_DEFAULT
    again = model.set_(fs, spec(data, keep_files=list(reversed(FORMER_DEFAULT))))  # the same files: nothing to do
    assert again.ok and not again.changed, again.changes


def test_the_same_archive_with_other_kept_files_is_installed_again(fs: WindowsFs) -> None:
    # A production agent deployed with the former default: its vendor appsettings.json was never extracted.
    data = make_zip(VENDOR)
    put(fs, f"{RUNTIME}\\web.config", b"<ours/>")
    put(fs, f"{RUNTIME}\\appsettings.agent.json", b'{"ours": true}')
    install(fs, data, keep_files=FORMER_DEFAULT)
    as_written_before_keep_files_were_recorded(fs)
    assert not fs.resolve(f"{RUNTIME}\\appsettings.json").exists()
    # set alone refuses to go on without the archive, deleted after the first installation: it is sent again.
    refused = model.set_(fs, spec(data, keep_files=PRODUCTION_IIS))
    assert refused.error is not None and refused.error["id"] == "ArchiveNotUploaded"
    state = install(fs, data, keep_files=PRODUCTION_IIS)
    assert fs.resolve(f"{RUNTIME}\\appsettings.json").read_bytes() == b'{"vendor": "base"}'
    assert fs.resolve(f"{RUNTIME}\\web.config").read_bytes() == b"<ours/>", "still kept"
    assert fs.resolve(f"{RUNTIME}\\appsettings.agent.json").read_bytes() == b'{"ours": true}', "still kept"
    assert state["kept_files"] == PRODUCTION_IIS and state["missing_files"] == []
    assert manifest_of(fs)["keep_files"] == PRODUCTION_IIS
    assert not fs.resolve(f"{RUNTIME}\\.iac-new").exists() and not fs.resolve(f"{RUNTIME}\\.iac-old").exists()


def test_a_file_kept_from_now_on_stays_in_place_and_leaves_the_manifest(fs: WindowsFs) -> None:
    # A server gains agent connections: appsettings.agent.json, the vendor's until now, becomes the stack's.
    data = make_zip(VENDOR)
    install(fs, data, keep_files=["appsettings.json", "web.config"])
    assert "appsettings.agent.json" in manifest_of(fs)["files"]
    upload(fs, data)
    envelope = model.set_(fs, spec(data, keep_files=FORMER_DEFAULT))
    assert envelope.ok and envelope.changed, envelope.error
    assert {"property": "keep_files", "before": "appsettings.json, web.config", "after": ", ".join(FORMER_DEFAULT)} in [
        dict(c) for c in envelope.changes
    ]
    assert fs.resolve(f"{RUNTIME}\\appsettings.agent.json").exists(), "left for the SettingsFile to overwrite"
    assert "appsettings.agent.json" not in manifest_of(fs)["files"]
    assert model.remove(fs, spec(data, keep_files=FORMER_DEFAULT)).ok
    assert fs.resolve(f"{RUNTIME}\\appsettings.agent.json").exists(), "removal takes only the manifest's files"


def test_an_interrupted_reinstall_with_other_kept_files_is_undone_not_taken_for_committed(fs: WindowsFs) -> None:
    # The same archive, installed again with other kept files, broke off after moving the old exe aside: the
    # manifest has the journal's sha256 (the installation before), yet this swap was not committed.
    data = make_zip(VENDOR)
    install(fs, data, keep_files=FORMER_DEFAULT)
    folder = model.staging_folder(RUNTIME)
    put(fs, f"{RUNTIME}\\.iac-old\\Usercube-Agent.exe", b"MZ v1")
    fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").unlink()
    moves = [[f"{RUNTIME}\\Usercube-Agent.exe", f"{RUNTIME}\\.iac-old\\Usercube-Agent.exe"]]
    journal_of_swap = {"sha256": hashlib.sha256(data).hexdigest(), "keep_files": PRODUCTION_IIS, "moves": moves}
    put(fs, f"{folder}\\swap.json", json.dumps(journal_of_swap).encode())
    # The next set undoes it first (then stops: the archive, deleted after the first installation, is not sent).
    envelope = model.set_(fs, spec(data, keep_files=PRODUCTION_IIS))
    assert envelope.error is not None and envelope.error["id"] == "ArchiveNotUploaded", envelope.error
    assert fs.resolve(f"{RUNTIME}\\Usercube-Agent.exe").read_bytes() == b"MZ v1", "put back from .iac-old"
    assert not fs.resolve(f"{folder}\\swap.json").exists()

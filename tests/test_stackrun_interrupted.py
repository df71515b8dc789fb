"""What stackrun does about an interrupted run and a failed host, without the engine (issue 11, §3).

The engine tests (tests/stacks/test_interrupted_runs_engine.py, test_host_faults_engine.py) show the whole path;
these pin the decisions: which lock is stale, which pending operations are cleared, which failures are named by
which host, and when `up` goes on past a failed resource.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from stackrun import failures, interrupted
from stackrun.cli import build_parser, cli_args

PROJECT = "usercube-agents"


def write_lock(root: Path, pid: int, hostname: str) -> Path:
    folder = root / ".pulumi" / "locks" / "organization" / PROJECT / "local"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{pid}-{hostname}.json"
    path.write_text(json.dumps({"pid": pid, "username": "root", "hostname": hostname, "timestamp": "x"}))
    return path


def ended_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_a_lock_is_stale_only_when_taken_here_by_a_process_that_ended(tmp_path: Path) -> None:
    here = socket.gethostname()
    write_lock(tmp_path, ended_pid(), here)
    assert [lock.stale for lock in interrupted.locks(tmp_path, PROJECT, "local")] == [True]
    write_lock(tmp_path, ended_pid(), "another-machine")  # that machine's process may well still run
    write_lock(tmp_path, 1, here)  # running
    stale = {lock.hostname: lock.stale for lock in interrupted.locks(tmp_path, PROJECT, "local") if lock.pid == 1}
    assert stale == {here: False}
    assert [lock.stale for lock in interrupted.locks(tmp_path, PROJECT, "local") if lock.hostname != here] == [False]
    assert interrupted.locks(tmp_path, PROJECT, "other-stack") == []


def test_only_pending_creates_are_cleared(tmp_path: Path) -> None:
    stacks = tmp_path / ".pulumi" / "stacks" / PROJECT
    stacks.mkdir(parents=True)
    operations = [
        {"resource": {"urn": "urn:pulumi:local::p::t::zone-a-site"}, "type": "creating"},
        {"resource": {"urn": "urn:pulumi:local::p::t::zone-a-pool"}, "type": "updating"},
        {"resource": {"urn": "urn:pulumi:local::p::t::zone-b-acl"}, "type": "deleting"},
    ]
    (stacks / "local.json").write_text(json.dumps({"checkpoint": {"latest": {"pending_operations": operations}}}))
    assert interrupted.pending_creates(tmp_path, PROJECT, "local") == ["urn:pulumi:local::p::t::zone-a-site"]
    assert interrupted.pending_creates(tmp_path, PROJECT, "none") == []


def test_only_an_absolute_file_backend_is_read() -> None:
    assert interrupted.backend_root("file:///var/state") == Path("/var/state")
    for url in ("file://relative", "file:///var/state?no_tmp_dir=true", "https://api.pulumi.com", "s3://b"):
        assert interrupted.backend_root(url) is None, url


def test_failed_resources_are_grouped_by_the_stack_name_of_their_host(tmp_path: Path) -> None:
    stack_file = tmp_path / "Pulumi.local.yaml"
    stack_file.write_text(
        "config:\n  usercube-agents:hosts:\n    zone-b:\n      address: 10.0.0.5\n"
        "      port: 5985\n      password:\n        secure: v1:abc\n    server:\n      address: srv.example\n"
    )
    names = failures.host_names(stack_file, PROJECT)
    assert names == {"10.0.0.5": "zone-b", "10.0.0.5:5985": "zone-b", "srv.example": "server"}

    def error(resource: str, message: str) -> str:
        urn = f"urn:pulumi:local::usercube-agents::pulumi-python:dynamic/windows:X::{resource}"
        return json.dumps({"diagnosticEvent": {"urn": urn, "message": message, "severity": "error"}})

    unreachable = (
        "Exception calling application: [HostUnreachable] host 10.0.0.5:5985: no connection (connection refused). "
        "Fix: start WinRM\n"
    )
    log = tmp_path / "events.jsonl"
    log.write_text(
        "\n".join(
            [
                error("zone-b-pool", unreachable),
                error("zone-b-site", unreachable),
                json.dumps({"diagnosticEvent": {"urn": "", "message": "update failed", "severity": "error"}}),
                error("other", "[HostOperationFailed] host 192.0.2.9: the script failed"),
                json.dumps(
                    {"diagnosticEvent": {"urn": "urn:x::warned", "message": unreachable, "severity": "warning"}}
                ),
                "not json",
            ]
        )
    )
    found = failures.host_failures(log, names)
    assert [failure.line() for failure in found] == [
        "stackrun: failed on host zone-b (10.0.0.5:5985): 2 resource(s) (zone-b-pool, zone-b-site): [HostUnreachable] "
        "no connection (connection refused). Fix: start WinRM",
        "stackrun: failed on host 192.0.2.9: 1 resource(s) (other): [HostOperationFailed] the script failed",
    ]


@pytest.mark.parametrize(
    ("argv", "hosts", "environ", "continues"),
    [
        (["up"], 3, {}, True),
        (["destroy"], 2, {}, True),
        (["up"], 1, {}, False),  # one host: nothing independent to go on with
        (["up", "--fail-fast"], 3, {}, False),
        (["destroy", "--fail-fast"], 3, {}, False),
        (["up"], 3, {"PULUMI_CONTINUE_ON_ERROR": "false"}, False),  # the CLI reads it itself
        (["preview"], 3, {}, False),
        (["refresh"], 3, {}, False),
    ],
)
def test_up_goes_on_past_a_failed_resource_on_an_estate_of_several_hosts(
    argv: list[str], hosts: int, environ: dict[str, str], continues: bool
) -> None:
    args = cli_args(build_parser().parse_args(argv), terminal=False, environ=environ, hosts=hosts)
    assert ("--continue-on-error" in args) is continues
    assert args[-2:] == ["--color", "never"]

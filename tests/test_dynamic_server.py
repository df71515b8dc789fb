"""The dynamic-provider plugin: the SDK's server with more worker threads, as the engine starts it.

The plugin script is run exactly as the engine runs it for a plain `pulumi up` in the repository: from
the project directory, with the virtualenv of Pulumi.yaml's runtime options (relative), and the engine's
address as its argument. Its gRPC server is then called as the engine calls it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import grpc  # type: ignore[import-untyped]
import pytest
import yaml
from google.protobuf import struct_pb2
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from providers.dynamic_server import DEFAULT_WORKERS, PLUGIN_DIR, WORKERS_SETTING, worker_count
from providers.framework.adoption import pulumi_import_refusal
from stackrun.cli import main as stackrun_main
from tests.support.barrier_provider import BarrierProvider
from tests.support.echo_read_provider import EchoReadProvider

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = PLUGIN_DIR / "pulumi-resource-pulumi-python"
# The SDK's server: ThreadPoolExecutor(max_workers=4) in pulumi/dynamic/__main__.py (pulumi 3.259.0).
SDK_WORKERS = 4


@contextmanager
def plugin(workers: str | None) -> Iterator[provider_pb2_grpc.ResourceProviderStub]:
    env = {k: v for k, v in os.environ.items() if k not in (WORKERS_SETTING, "PULUMI_PYTHON_CMD")}
    env["PULUMI_RUNTIME_VIRTUALENV"] = ".venv"  # what the engine passes from Pulumi.yaml, relative
    if workers is not None:
        env[WORKERS_SETTING] = workers
    process = subprocess.Popen(
        [str(PLUGIN), "127.0.0.1:1"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        port = process.stdout.readline().decode().strip()
        assert port.isdigit(), process.stderr.read().decode() if process.stderr else port
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield provider_pb2_grpc.ResourceProviderStub(channel)
    finally:
        process.kill()
        process.wait()


def checks_at_once(stub: provider_pb2_grpc.ResourceProviderStub, parties: int, timeout: float) -> list[str]:
    """Run ``parties`` Check calls at once, each waiting for all the others; the failures they report."""
    news = struct_pb2.Struct()
    news.update(
        {
            "__provider": serialize_provider(BarrierProvider()),
            "group": uuid.uuid4().hex,
            "parties": parties,
            "timeout": timeout,
        }
    )
    request = provider_pb2.CheckRequest(urn="urn:pulumi:t::p::pulumi-python:dynamic:Resource::r", news=news)
    with ThreadPoolExecutor(max_workers=parties) as callers:
        answers = list(callers.map(lambda _: stub.Check(request, timeout=timeout * 3), range(parties)))
    return [failure.reason for answer in answers for failure in answer.failures]


def test_repository_pulumi_yaml_runs_python_dynamic_providers_under_this_plugin() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text(encoding="utf-8"))
    declared = {p["name"]: ROOT / p["path"] for p in project["plugins"]["providers"]}
    # `pulumi-python` is the package of every Python dynamic resource; the engine looks for the
    # executable pulumi-resource-pulumi-python in the declared folder before PATH and the CLI's own.
    assert declared["pulumi-python"].resolve() == PLUGIN_DIR
    assert os.access(PLUGIN, os.X_OK)


@pytest.mark.parametrize("workers", [None, "8"])
def test_more_than_four_operations_run_at_once(workers: str | None) -> None:
    parties = 2 * SDK_WORKERS
    with plugin(workers) as stub:
        assert checks_at_once(stub, parties, timeout=10) == []


def test_with_four_workers_the_fifth_operation_waits() -> None:
    """The control: the same calls with the SDK's worker count never meet (so the test above can fail)."""
    with plugin(str(SDK_WORKERS)) as stub:
        failures = checks_at_once(stub, SDK_WORKERS + 1, timeout=1.5)
    assert failures and all("fewer than 5 checks ran at once" in reason for reason in failures), failures


DIRECTORY_URN = "urn:pulumi:t::p::pulumi-python:dynamic/windows:Directory::adopted"


def read_request(properties: dict[str, object]) -> provider_pb2.ReadRequest:
    """A Read as the engine sends it (provider_plugin.go's Read, pulumi v3.259.0): the state as properties, no
    inputs given when there are none. For `pulumi import` the state is empty (ImportStep.Apply in step.go)."""
    state = struct_pb2.Struct()
    state.update(properties)
    return provider_pb2.ReadRequest(
        id="C:\\identitymanagerContoso",
        urn=DIRECTORY_URN,
        name="adopted",
        type="pulumi-python:dynamic/windows:Directory",
        properties=state,
    )


def test_pulumi_import_gets_what_to_do_instead_not_the_sdk_key_error() -> None:
    """Issue 8 §3: the SDK's Read looked up `__provider` in an import's empty properties and failed raw."""
    with plugin(None) as stub, pytest.raises(grpc.RpcError) as refused:
        stub.Read(read_request({}), timeout=30)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION, refused.value
    details = refused.value.details()
    assert details == pulumi_import_refusal("Directory", "adopted", "C:\\identitymanagerContoso")
    assert "preview --diff" in details and "'__provider'" not in details and "Exception calling" not in details


def test_a_read_with_the_provider_in_its_state_still_reaches_the_provider() -> None:
    """A refresh's Read (the state holds `__provider`) passes through the import check to the provider's read."""
    with plugin(None) as stub:
        answer = stub.Read(read_request({"__provider": serialize_provider(EchoReadProvider()), "path": "C:\\im"}))
    assert answer.id == "C:\\identitymanagerContoso"
    assert answer.properties["read_id"] == "C:\\identitymanagerContoso"
    assert list(answer.properties["got"]) == ["__provider", "path"]


def test_worker_count_default_and_bounds() -> None:
    assert worker_count({}) == DEFAULT_WORKERS >= 16
    assert worker_count({WORKERS_SETTING: " 12 "}) == 12
    for bad in ("0", "-3", "many", "2000"):
        with pytest.raises(ValueError, match=f"{WORKERS_SETTING} must be a whole number from 1 to 1024"):
            worker_count({WORKERS_SETTING: bad})


def test_a_bad_worker_count_stops_the_plugin_with_the_setting_named() -> None:
    env = {**os.environ, WORKERS_SETTING: "lots", "PULUMI_RUNTIME_VIRTUALENV": ".venv"}
    done = subprocess.run([str(PLUGIN), "127.0.0.1:1"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"{WORKERS_SETTING} must be a whole number" in done.stderr and done.stdout == ""


def test_stackrun_refuses_a_bad_worker_count_before_the_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(WORKERS_SETTING, "0")
    assert stackrun_main(["preview", "--stack", "local"]) == 2
    assert f"error: environment variable {WORKERS_SETTING} must be a whole number" in capsys.readouterr().err


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def test_the_plugin_ends_when_the_engine_that_started_it_is_gone() -> None:
    """A CLI killed outright stops nothing: the plugin sees its parent change and ends by itself (issue 11 §3)."""
    env = {k: v for k, v in os.environ.items() if k != "PULUMI_PYTHON_CMD"}
    env["PULUMI_RUNTIME_VIRTUALENV"] = ".venv"
    # The stand-in engine: a shell that starts the plugin as the CLI does and is then killed with SIGKILL.
    engine = subprocess.Popen(
        ["sh", "-c", f'"{PLUGIN}" 127.0.0.1:1 & echo "$!"; wait'], cwd=ROOT, env=env, stdout=subprocess.PIPE
    )
    assert engine.stdout is not None
    pid = int(engine.stdout.readline())
    try:
        assert engine.stdout.readline().decode().strip().isdigit()  # the plugin serves (it printed its port)
        assert not _gone(pid)
        engine.kill()
        engine.wait()
        deadline = time.monotonic() + 15
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _gone(pid), "the plugin outlived its engine"
    finally:
        if not _gone(pid):
            os.kill(pid, signal.SIGKILL)

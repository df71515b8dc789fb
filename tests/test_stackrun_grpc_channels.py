"""An inline program's gRPC channel to a new CLI that has the port of an exited one (stackrun/workspace.py)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager

import grpc
import pytest
from google.protobuf import empty_pb2
from pulumi.runtime import _grpc_settings
from pulumi.runtime.proto import engine_pb2, engine_pb2_grpc
from pulumi.runtime.settings import Settings

import stackrun.workspace  # noqa: F401  (importing it sets the channel option under test)


class _Engine(engine_pb2_grpc.EngineServicer):
    def Log(self, request: engine_pb2.LogRequest, context: grpc.ServicerContext) -> empty_pb2.Empty:
        return empty_pb2.Empty()


@contextmanager
def _cli_engine(address: str) -> Iterator[None]:
    """What a CLI run offers the program: an engine service on a loopback port, gone when the run ends."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    engine_pb2_grpc.add_EngineServicer_to_server(_Engine(), server)
    server.add_insecure_port(address)
    server.start()
    try:
        yield
    finally:
        server.stop(0).wait()


def _free_loopback_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def _log(engine: engine_pb2_grpc.EngineStub) -> None:
    engine.Log(engine_pb2.LogRequest(message="probe", severity=engine_pb2.DEBUG))


def _second_run_logs(options: list[tuple[str, object]]) -> bool:
    """Two runs whose CLIs got the same port; the SDK leaks the first run's channel, as it does."""
    address = _free_loopback_address()
    with _cli_engine(address):
        first = engine_pb2_grpc.EngineStub(grpc.insecure_channel(address, options=options))
        _log(first)
    time.sleep(0.3)
    with pytest.raises(grpc.RpcError):
        _log(first)  # the first run's channel, left open, now sits in reconnect back-off
    with _cli_engine(address):
        second = engine_pb2_grpc.EngineStub(grpc.insecure_channel(address, options=options))
        try:
            _log(second)
        except grpc.RpcError:
            return False
        return True


def test_without_a_local_subchannel_pool_the_second_run_inherits_the_first_runs_refusal() -> None:
    """The hazard itself: if this starts passing, gRPC no longer shares the connection and the option can go."""
    shared = [
        option for option in _grpc_settings._GRPC_CHANNEL_OPTIONS if option[0] != "grpc.use_local_subchannel_pool"
    ]
    assert not _second_run_logs(shared)


def test_the_sdks_channels_to_a_reused_port_reach_the_new_cli() -> None:
    address = _free_loopback_address()
    with _cli_engine(address):
        first = Settings(project="p", stack="s", engine=address)
        assert first.engine is not None
        _log(first.engine)
    time.sleep(0.3)
    with pytest.raises(grpc.RpcError):
        _log(first.engine)  # a last call after the CLI has gone (a log line at shut-down) starts the back-off
    with _cli_engine(address):
        second = Settings(project="p", stack="s", engine=address)  # what reset_options builds for the next run
        assert second.engine is not None
        _log(second.engine)

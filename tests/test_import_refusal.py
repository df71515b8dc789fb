"""`pulumi import` of one of our resources: the provider plugin's Read answers with what to do instead.

Driven here without the CLI: `pulumi import` cannot run with the CLI tools/ensure-pulumi.sh provides. The
engine loads the project's language plugin for every import (installPlugins in pkg/engine/deployment.go, pulumi
v3.259.0, whatever the exec kind), and that build has no `pulumi-language-python`; the Automation API's inline
programs (`--client`, used by up/preview/refresh/destroy) have no counterpart for import. The real plugin
process is driven over gRPC the same way in tests/test_dynamic_server.py; the CLI test, run where the language
plugin is found, is tests/providers/test_pulumi_import_engine.py.
"""

from __future__ import annotations

from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest
from google.protobuf import struct_pb2
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from providers import dynamic_server
from providers.dynamic_server import refusing_import
from providers.framework.adoption import pulumi_import_refusal

OBJECT_ID = "C:\\identitymanagerContoso"


class Aborted(Exception):
    pass


class FakeContext:
    """What the servicer uses of grpc.ServicerContext: abort, which raises as grpc's does."""

    def __init__(self, *, raises: bool = True) -> None:
        self.raises = raises
        self.aborted: tuple[Any, str] | None = None

    def abort(self, code: Any, details: str) -> None:
        self.aborted = (code, details)
        if self.raises:
            raise Aborted(details)


class RecordingRead:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any]] = []
        self.answer = provider_pb2.ReadResponse(id=OBJECT_ID)

    def __call__(self, request: Any, context: Any) -> Any:
        self.calls.append((request, context))
        return self.answer


def read_request(properties: dict[str, Any]) -> provider_pb2.ReadRequest:
    state = struct_pb2.Struct()
    state.update(properties)
    return provider_pb2.ReadRequest(
        id=OBJECT_ID,
        urn="urn:pulumi:t::p::pulumi-python:dynamic/windows:Directory::adopted",
        name="adopted",
        type="pulumi-python:dynamic/windows:Directory",
        properties=state,
    )


def test_an_import_read_is_refused_with_what_to_do_and_never_reaches_the_sdk() -> None:
    sdk_read, context = RecordingRead(), FakeContext()
    with pytest.raises(Aborted):
        refusing_import(sdk_read)(read_request({}), context)
    assert sdk_read.calls == []
    assert context.aborted is not None
    code, details = context.aborted
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert details == pulumi_import_refusal("Directory", "adopted", OBJECT_ID)
    assert details.startswith(f"Directory 'adopted' (id '{OBJECT_ID}'): `pulumi import` cannot adopt")
    assert "declare the resource with the object's current settings" in details and "preview --diff" in details


def test_a_read_whose_state_holds_the_provider_passes_through_unchanged() -> None:
    sdk_read, context = RecordingRead(), FakeContext()
    request = read_request({"__provider": "serialized provider", "path": OBJECT_ID})
    assert refusing_import(sdk_read)(request, context) is sdk_read.answer
    assert sdk_read.calls == [(request, context)] and context.aborted is None


def test_a_context_whose_abort_returns_still_gives_no_answer() -> None:
    with pytest.raises(RuntimeError, match=r"context\.abort returned"):
        refusing_import(RecordingRead())(read_request({}), FakeContext(raises=False))


def test_the_server_gets_the_sdk_servicer_with_its_read_wrapped(monkeypatch: pytest.MonkeyPatch) -> None:
    given: list[Any] = []

    def sdk_add(servicer: provider_pb2_grpc.ResourceProviderServicer, server: Any) -> None:
        given.append((servicer, server))

    # What main() installs before the SDK's main() adds its servicer.
    wrapped_add = dynamic_server._adding_servicer_refusing_import(sdk_add)
    monkeypatch.setattr(provider_pb2_grpc, "add_ResourceProviderServicer_to_server", wrapped_add)
    servicer = provider_pb2_grpc.ResourceProviderServicer()
    sdk_read = RecordingRead()
    servicer.Read = sdk_read  # type: ignore[method-assign]
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(servicer, "server")

    assert given == [(servicer, "server")], "the SDK's own servicer object goes to the server"
    with pytest.raises(Aborted):
        servicer.Read(read_request({}), FakeContext())
    assert servicer.Read(read_request({"__provider": "p"}), FakeContext()) is sdk_read.answer
    assert sdk_read.calls and len(sdk_read.calls) == 1
    assert provider_pb2_grpc.add_ResourceProviderServicer_to_server is sdk_add, "the SDK's function is back"

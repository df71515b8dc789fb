"""The Pulumi SDK's dynamic-provider server, run with more worker threads than its four.

The engine runs every Python dynamic provider in one plugin process, ``pulumi-resource-pulumi-python``.
The SDK's script of that name runs ``python -m pulumi.dynamic``, whose ``main()`` serves the provider
over gRPC with ``ThreadPoolExecutor(max_workers=4)`` (pulumi/dynamic/__main__.py, pulumi 3.259.0).
Every Check, Diff, Create, Read, Update and Delete holds one of those threads for as long as its WinRM
round trips take, so no more than four operations were ever in flight, across all hosts, whatever the
engine's ``--parallel`` said.

Our plugin script (``providers/plugin/pulumi-resource-pulumi-python``, declared in Pulumi.yaml under
``plugins.providers``) runs this module instead. It runs the SDK's own module, unchanged and not copied;
the only difference is the thread pool ``grpc.server`` receives: ``USERCUBE_PROVIDER_WORKERS`` threads
(default 64). Threads only wait on the network here; the bound per host stays the connection's
``max_parallel_operations``.

It also answers ``pulumi import`` itself (``refusing_import``): the SDK's Read cannot, see there.
"""

from __future__ import annotations

import os
import runpy
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent import futures
from pathlib import Path
from typing import Any, Protocol

import grpc  # type: ignore[import-untyped]  # no stubs in the pinned dev dependencies
from pulumi.dynamic.dynamic import PROVIDER_KEY
from pulumi.runtime.proto import provider_pb2_grpc

from providers.framework.adoption import pulumi_import_refusal

WORKERS_SETTING = "USERCUBE_PROVIDER_WORKERS"
DEFAULT_WORKERS = 64
MAX_WORKERS = 1024
# The directory Pulumi.yaml names as the `pulumi-python` plugin: it holds our pulumi-resource-pulumi-python.
PLUGIN_DIR = Path(__file__).resolve().parent / "plugin"
SDK_SERVER_MODULE = "pulumi.dynamic"
# How often the plugin looks whether the engine that started it is still there, and how long the operations in
# flight then get to finish on their hosts before the plugin ends (a script cut off half-way on a real host is
# what the scripts' own atomic writes guard against; letting it end is kinder still).
PARENT_POLL_S = 0.5
ORPHAN_GRACE_S = 30.0


class WorkersSettingError(ValueError):
    pass


def worker_count(environ: Mapping[str, str]) -> int:
    """The provider's worker threads from ``USERCUBE_PROVIDER_WORKERS``; raises with the fix when invalid."""
    raw = environ.get(WORKERS_SETTING, "").strip()
    if not raw:
        return DEFAULT_WORKERS
    try:
        workers = int(raw)
    except ValueError:
        workers = 0
    if not 1 <= workers <= MAX_WORKERS:
        raise WorkersSettingError(
            f"environment variable {WORKERS_SETTING} must be a whole number from 1 to {MAX_WORKERS} "
            f"(the dynamic provider's worker threads, default {DEFAULT_WORKERS}); unset it or set e.g. "
            f"{WORKERS_SETTING}={DEFAULT_WORKERS}"
        )
    return workers


def _server_with_workers(
    original: Callable[..., Any], workers: int, started: Callable[[Any], object] = lambda _server: None
) -> Callable[..., Any]:
    """``grpc.server`` that swaps the thread pool it is given for one of ``workers`` threads; ``started`` gets the
    server it made."""

    def server(thread_pool: futures.Executor | None = None, *args: Any, **kwargs: Any) -> Any:
        grpc.server = original  # the provider process starts one server: only the SDK's is changed
        if thread_pool is not None:
            thread_pool.shutdown(wait=False)  # never used: a ThreadPoolExecutor starts threads on first submit
        pool = futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dynamic-provider")
        made = original(pool, *args, **kwargs)
        started(made)
        return made

    return server


class AddServicer(Protocol):
    """The shape of ``provider_pb2_grpc.add_ResourceProviderServicer_to_server``."""

    def __call__(self, servicer: provider_pb2_grpc.ResourceProviderServicer, server: Any) -> None: ...


class ReadMethod(Protocol):
    """The shape of a servicer's bound ``Read``."""

    def __call__(self, request: Any, context: Any) -> Any: ...


def refusing_import(read: ReadMethod) -> ReadMethod:
    """The servicer's Read, answering an import's read (no ``__provider`` among the properties) with what to do.

    ``pulumi import`` makes the engine call Read with the object's id and empty properties (ImportStep.Apply in
    pkg/resource/deploy/step.go, pulumi v3.259.0: no Inputs, no State). The SDK's Read
    (``DynamicResourceProviderServicer.Read`` in pulumi/dynamic/__main__.py) first looks up the serialized
    provider with ``props["__provider"]`` (``get_provider``), so the KeyError reached the user as the raw
    "Exception calling application: '__provider'". Every other Read (refresh, a program's ``get``) carries the
    provider the resource was created with and passes through unchanged.

    FAILED_PRECONDITION, not the UNKNOWN an exception gives: the engine takes any code but Internal, DataLoss and
    Unknown as "well-understood and recoverable" (resourceStateAndError in sdk/go/common/resource/plugin/
    provider_plugin.go), so nothing is taken as possibly changed on the host.
    """

    def read_unless_import(request: Any, context: Any) -> Any:
        if PROVIDER_KEY in request.properties.fields:
            return read(request, context)
        type_name = request.type.rsplit(":", 1)[-1] or "resource"
        context.abort(
            grpc.StatusCode.FAILED_PRECONDITION,
            pulumi_import_refusal(type_name, request.name or request.urn, request.id),
        )
        # grpc's ServicerContext.abort raises; never fall through to an empty answer if a context did not.
        raise RuntimeError("context.abort returned")

    return read_unless_import


def _adding_servicer_refusing_import(original: AddServicer) -> AddServicer:
    """``add_ResourceProviderServicer_to_server`` that gives the server the SDK's servicer with its Read wrapped
    (the SDK's own object and methods, not a copy; only the bound Read the server calls is replaced)."""

    def add(servicer: provider_pb2_grpc.ResourceProviderServicer, server: Any) -> None:
        provider_pb2_grpc.add_ResourceProviderServicer_to_server = original  # one servicer per process
        servicer.Read = refusing_import(servicer.Read)  # type: ignore[method-assign]  # this instance's only
        original(servicer, server)

    return add


def watch_engine(server: Any, *, poll_s: float = PARENT_POLL_S, grace_s: float = ORPHAN_GRACE_S) -> threading.Thread:
    """End this plugin when the engine that started it is gone (its parent process changed).

    The engine stops its plugins with SIGINT when it ends normally (sdk/go/common/resource/plugin/plugin.go). A
    CLI killed outright (SIGKILL, an out-of-memory kill, a closed CI job) sends nothing, and the SDK's server
    then waits for ever: an orphan holding a shell open on every host it used. Here the server stops taking
    calls, lets the operations in flight end (at most ``grace_s``), deletes the shells and ends the process.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        # (No message: the engine read this process's stderr, and a write to that closed pipe would fail.)
        server.stop(grace_s).wait()
        # Not a SIGINT to the main thread: a process started in the background of a non-interactive shell
        # ignores SIGINT, and the SDK's server would wait on. The shells are deleted here, then the process ends.
        close_sessions()
        os._exit(0)

    thread = threading.Thread(target=watch, name="engine-watch", daemon=True)
    thread.start()
    return thread


def main() -> None:
    try:
        workers = worker_count(os.environ)
    except WorkersSettingError as error:
        # The engine shows a plugin's stderr when it fails to start.
        print(f"error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    grpc.server = _server_with_workers(grpc.server, workers, started=watch_engine)
    provider_pb2_grpc.add_ResourceProviderServicer_to_server = _adding_servicer_refusing_import(
        provider_pb2_grpc.add_ResourceProviderServicer_to_server
    )
    # What `python -m pulumi.dynamic` does; its main() prints the port and serves until the engine stops it.
    runpy.run_module(SDK_SERVER_MODULE, run_name="__main__", alter_sys=True)
    # The engine stops the plugin with SIGINT and kills it 5 seconds later (sdk/go/common/resource/plugin/
    # plugin.go, newPlugin's kill). Delete the hosts' shells now, before the interpreter's own teardown
    # (thread joins, module cleanup) eats into that time; the atexit hook stays as the backstop.
    close_sessions()


def close_sessions() -> None:
    """Delete every shell this process opened on a host (nothing when no provider ever connected)."""
    session = sys.modules.get("providers.transport.session")
    if session is not None:
        session.close_all_sessions()


if __name__ == "__main__":
    main()

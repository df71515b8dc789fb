"""Command line of the SIMULATED Windows host (devhost) — not Windows.

    python -m devhost serve --state DIR --port N [--https-port M] [--bind 127.0.0.1] [--ready-file PATH]
    python -m devhost add-user --state DIR --user NAME --password-stdin
    python -m devhost admin <file-write|file-delete|file-show|add-account|journal|...> --state DIR ...

``serve`` runs a WinRM endpoint backed by simulated processes until SIGTERM or
Ctrl-C. It binds to loopback unless told otherwise, and refuses to start
without a users file (so nobody runs an endpoint that accepts anything).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from devhost import admin, auth
from devhost.server import BANNER, DevhostServer, users_file


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devhost", description=f"{BANNER}: a simulated WinRM endpoint.")
    sub = parser.add_subparsers(dest="cmd", required=True)

    serve = sub.add_parser("serve", help="run the simulated WinRM endpoint")
    serve.add_argument("--state", type=Path, required=True, help="the simulated host's state directory")
    serve.add_argument("--port", type=int, required=True, help="HTTP port (0 = pick a free one)")
    serve.add_argument("--https-port", type=int, default=None, help="HTTPS port (0 = pick a free one)")
    serve.add_argument("--bind", default="127.0.0.1", help="address to listen on (default: loopback only)")
    serve.add_argument("--ready-file", type=Path, default=None, help="write ports/pid/CA path here once listening")
    serve.add_argument("--verbose", action="store_true", help="log every request")

    add = sub.add_parser("add-user", help="add or replace a user of the simulated host")
    add.add_argument("--state", type=Path, required=True)
    add.add_argument("--user", required=True, help="NAME or DOMAIN\\NAME")
    add.add_argument("--password-stdin", action="store_true", required=True, help="read the password from stdin")
    _ADMIN_HANDLERS.update(admin.register(sub))
    return parser


_ADMIN_HANDLERS: dict[str, admin.Handler] = {}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cmd == "admin":
        return _ADMIN_HANDLERS[args.admin_cmd](args)
    if args.cmd == "add-user":
        return _add_user(args.state, args.user)
    return _serve(args)


def _add_user(state: Path, user: str) -> int:
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("devhost: empty password on stdin", file=sys.stderr)
        return 2
    try:
        auth.write_user(users_file(state), user, password)
    except ValueError as exc:
        print(f"devhost: {exc}", file=sys.stderr)
        return 2
    print(f"devhost (simulator): user {user!r} written to {users_file(state)}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    state: Path = args.state
    if not users_file(state).exists():
        print(
            f"devhost: refusing to start: no users file at {users_file(state)}.\n"
            f"Create one with:  python -m devhost add-user --state {state} --user NAME --password-stdin",
            file=sys.stderr,
        )
        return 2
    if args.bind not in ("127.0.0.1", "::1", "localhost"):
        print(f"devhost: WARNING: listening on {args.bind}, not only loopback", file=sys.stderr)
    try:
        server = DevhostServer(state, http_port=args.port, https_port=args.https_port, bind=args.bind)
        server.start()
    except OSError as error:
        ports = ", ".join(str(p) for p in (args.port, args.https_port) if p)
        print(
            f"devhost (simulator): cannot listen on {args.bind} port {ports}: {error.strerror}. Another simulated "
            "host may still run (`make down` in its checkout) or another program uses the port.",
            file=sys.stderr,
        )
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"*** {BANNER} ***", flush=True)
    print(
        f"devhost: WinRM on http://{args.bind}:{server.http_port}/wsman"
        + (f" and https://{args.bind}:{server.https_port}/wsman (CA: {server.ca_cert})" if server.https_port else ""),
        flush=True,
    )
    if args.ready_file is not None:
        server.write_ready_file(args.ready_file)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        print("devhost (simulator): stopped", flush=True)
    return 0

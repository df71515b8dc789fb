"""The HTTP(S) listener of the SIMULATED Windows host (devhost) — not Windows.

SIMULATOR: a WinRM-compatible endpoint (``POST /wsman``) that real clients
(pywinrm) reach over real TCP, HTTP/1.1 keep-alive and TLS, with real NTLM
(+ message encryption) or Basic-over-HTTPS authentication. The WS-Man
semantics live in ``devhost.wsman``; what commands do lives in the host
(``devhost.host.SimulatedHost``, or only the builtin command models when that
module is absent).

Test hooks, all under ``<state>/_sim/``:

* ``journal.jsonl`` — one JSON line per event: ``request`` (every HTTP
  request), ``create``, ``command`` (with the command line), ``stdin`` (base64
  data), ``signal``, ``delete``, ``fault`` (an injected fault fired).
* ``knobs.json`` — re-read on every request: ``latency_ms``,
  ``process_start_ms`` and ``faults`` (one-shot, consumed in order; the first
  whose ``on`` matches the request's action fires). A fault is
  ``{"kind": "drop"|"http500"|"timeout", "on": "any"|"Create"|..., "seconds": 60,
  "when": "before"|"after"}``; ``when`` (default ``before``) says whether the
  operation runs before its answer is lost.
  Read by the models: ``files_held_open`` (Windows paths another program holds
  open: moving or deleting them fails, devhost.fileops), ``pool_worker_exit_s``
  (a stopped pool's worker keeps its images mapped that long, at most the pool's
  shutdownTimeLimit, devhost.fileops), ``services_not_stopping`` (service names
  that accept a stop and never finish it, devhost.ops.runtime_archive),
  ``iis_was_pickup_ms``, ``iis_was_pool_pickup_ms`` (devhost.iis), ``lsa_add_rights_error``
  (the Win32 error LsaAddAccountRights fails with,
  devhost.lsa), ``installer_faults`` (one-shot hosting-bundle exit codes or
  ``times_out``, devhost.installers), ``cim_faults`` (one-shot: a Get-CimInstance of the
  class named by ``on`` fails, or with ``"fails": false`` lists; read for Win32_Process by devhost.installers, for
  Win32_ComputerSystemProduct by devhost.ops.machine_identity),
  ``staging_create_races`` (one-shot: another account makes a staging folder between Exists
  and CreateDirectory, devhost.ops.staging), ``service_create_races`` (one-shot: the named service is installed
  by hand, with the create's own values, just before a create's CreateService, devhost.scm),
  ``service_set_lock_waits`` (one-shot: another set of the named service, of the same owner or of ``owner``, holds
  the owners lock and runs to its end while this set waits for it, devhost.ops.windows_service).
  ``winrs_idle_timeout_ms`` is the host's winrm/config/winrs IdleTimeout (default 7200000): a shell nobody used
  that long is deleted (devhost.wsman).
* ``tls/`` — the generated CA and server certificate.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import importlib
import io
import ipaddress
import json
import logging
import os
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from spnego.channel_bindings import GssChannelBindings

from devhost import auth, machine, power, wsman
from devhost.builtin_commands import start_builtin
from devhost.hooks import Journal, Knobs, sim_dir
from devhost.processes import CommandRequest, SimulatedHostApi, SimulatedProcess

log = logging.getLogger("devhost.server")

BANNER = "SIMULATED Windows host (devhost) — not Windows"
SERVER_HEADER = "devhost-simulator (SIMULATED Windows host, not Windows)"

HostFactory = Callable[[Path], SimulatedHostApi]


class BuiltinHost:
    """Fallback host: only the builtin command models (used until devhost.host exists)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def start(self, request: CommandRequest) -> SimulatedProcess:
        return start_builtin(request)


def default_host_factory(state_dir: Path) -> SimulatedHostApi:
    try:
        module = importlib.import_module("devhost.host")
    except ModuleNotFoundError as exc:
        if exc.name != "devhost.host":
            raise  # devhost.host exists but is broken: say so
        log.warning("[devhost SIMULATOR] devhost.host not found; only builtin commands are modelled")
        return BuiltinHost(state_dir)
    host: SimulatedHostApi = module.SimulatedHost(state_dir)
    return host


def users_file(state_dir: Path) -> Path:
    return sim_dir(state_dir) / "users"


# --- TLS -------------------------------------------------------------------


def ensure_certificate(state_dir: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for localhost/127.0.0.1 (reused if present).

    Two levels rather than one self-signed leaf because strict verifiers reject
    a CA certificate presented as a server certificate. Returns (ca, cert, key).
    """
    tls_dir = sim_dir(state_dir) / "tls"
    ca_path, cert_path, key_path = tls_dir / "ca.pem", tls_dir / "server.pem", tls_dir / "server.key"
    if ca_path.exists() and cert_path.exists() and key_path.exists():
        return ca_path, cert_path, key_path
    tls_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=3650)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "devhost SIMULATOR test CA (not Windows)")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName(
        [
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key_bytes)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return ca_path, cert_path, key_path


# --- HTTP ------------------------------------------------------------------


class _Listener(ThreadingHTTPServer):
    """One listening socket (HTTP or HTTPS) feeding the shared WinRS service."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: DevhostServer, tls: ssl.SSLContext | None) -> None:
        self.app = app
        self.tls = tls
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        # Without TCP_NODELAY every small response waits ~40 ms for a delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            # Handshake later, in the connection's own thread (see _Handler.setup).
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self.connections_lock:
            self.connections.add(sock)
        return sock, addr

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up (or a failed TLS handshake) are routine; anything else is a simulator bug.
        level = logging.DEBUG if isinstance(sys.exc_info()[1], (OSError, ssl.SSLError)) else logging.ERROR
        log.log(level, "[devhost SIMULATOR] connection from %s ended with an error", client_address, exc_info=True)

    def close_connections(self) -> None:
        with self.connections_lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: NTLM authenticates the connection
    timeout = 300  # idle keep-alive connections are closed after this
    server: _Listener

    def setup(self) -> None:
        super().setup()
        self.ntlm: auth.NtlmConnection | None = None
        # SPNEGO's last acceptor token (accept-completed with its mechListMIC, RFC 4178 section 5) goes back on the
        # response that follows the successful leg, in WWW-Authenticate, as IIS/HTTP.sys send it.
        self.final_token: bytes | None = None
        self.encrypted = False
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()

    def version_string(self) -> str:
        return SERVER_HEADER

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("[devhost SIMULATOR] %s %s", self.address_string(), format % args)

    # Anything but POST /wsman gets a plain refusal.
    def do_GET(self) -> None:
        self._send_plain(405, "devhost (SIMULATED Windows host): only POST /wsman is served\n")

    def do_POST(self) -> None:
        event: dict[str, object] = {"kind": "request", "action": None, "status": None}
        # The reply is held until the request is in the journal: a client that has its answer (a test
        # reading the journal next) must find the request there, not race the handler thread for it.
        socket_writer, held = self.wfile, io.BytesIO()
        self.wfile = held
        try:
            self._post(event)
        finally:
            self.server.app.journal(event)
            self.wfile = socket_writer
            if held.getvalue():
                self.wfile.write(held.getvalue())

    def _post(self, event: dict[str, object]) -> None:
        app = self.server.app
        if app.restarting():
            # The machine is down (devhost.power): nothing answers; the connection just ends.
            event["status"] = None
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.request.shutdown(socket.SHUT_RDWR)
            return
        if self.path.split("?")[0].rstrip("/").lower() != "/wsman":
            self._send_plain(404, "devhost (SIMULATED Windows host): only POST /wsman is served\n")
            event["status"] = 404
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        knobs = app.knobs.read()
        latency = float(knobs.get("latency_ms", 0) or 0)
        if latency > 0:
            time.sleep(latency / 1000)

        user = self._authenticate(event)
        if user is None:
            return
        try:
            message = self._open_body(body)
        except auth.AuthFailed as exc:
            self._unauthorized(str(exc))
            event["status"] = 401
            return
        except ValueError as exc:
            self._send_plain(400, f"devhost (SIMULATED Windows host): {exc}\n")
            event["status"] = 400
            return
        if not message:
            # pywinrm's setup_encryption posts an empty body just to authenticate.
            self._send_body(200, b"", encrypt=False)
            event["status"] = 200
            return

        action = wsman.peek_action(message) or "unknown"
        event["action"] = action
        fault = app.knobs.take_fault(action)
        if fault is not None:
            app.journal({"kind": "fault", "action": action, "fault": fault})
        if fault is not None and fault.get("when", "before") == "before" and self._inject(fault, message):
            event["status"] = 500 if fault.get("kind") == "http500" else None
            return
        if action == "Command":
            start_ms = float(knobs.get("process_start_ms", 0) or 0)
            if start_ms > 0:
                time.sleep(start_ms / 1000)
        host = (self.headers.get("Host") or f"{app.bind}").rsplit(":", 1)[0].strip("[]")
        scheme = "https" if self.server.tls is not None else "http"
        caller = wsman.Caller(
            user=user,
            client_ip=self.client_address[0],
            address=f"{scheme}://{self.headers.get('Host') or app.bind}/wsman",
            machine=host,
        )
        # The host's winrm/config/winrs IdleTimeout (Windows' default 7200000 ms), for the shells created from now on.
        idle_ms = float(knobs.get("winrs_idle_timeout_ms") or wsman.DEFAULT_IDLE_TIMEOUT_S * 1000)
        app.service.idle_timeout_s = idle_ms / 1000
        status, reply = app.service.handle(message, caller)
        if fault is not None and self._inject(fault, message):
            event["status"] = 500 if fault.get("kind") == "http500" else None
            return
        self._send_body(status, reply, encrypt=self.encrypted and bool(reply))
        event["status"] = status

    # -- auth --

    def _authenticate(self, event: dict[str, object]) -> str | None:
        """Return the authenticated user, or answer 401 (and return None)."""
        app = self.server.app
        scheme, value = auth.parse_authorization(self.headers.get("Authorization"))
        tls = self.server.tls is not None
        if scheme == "basic":
            event["auth"] = "basic"
            if not tls:
                self._unauthorized("Basic authentication is refused over plain HTTP (AllowUnencrypted=false)")
                event["status"] = 401
                return None
            try:
                return auth.check_basic(value, app.users_file)
            except auth.AuthFailed as exc:
                self._unauthorized(str(exc))
                event["status"] = 401
                return None
        if scheme in ("negotiate", "ntlm"):
            event["auth"] = "ntlm"
            if self.ntlm is None:
                self.ntlm = auth.NtlmConnection(app.users_file, app.channel_bindings if tls else None)
            try:
                token = self.ntlm.step(value)
            except auth.AuthFailed as exc:
                self._unauthorized(str(exc))
                event["status"] = 401
                return None
            if not self.ntlm.complete:
                challenge = "Negotiate " + (base64_text(token) if token else "")
                self._unauthorized("NTLM challenge", challenge=challenge)
                event["status"] = 401
                return None
            self.final_token = token
            return self.ntlm.user
        if self.ntlm is not None and self.ntlm.complete and self.ntlm.user is not None:
            event["auth"] = "ntlm"
            return self.ntlm.user  # NTLM authenticated this connection earlier
        self._unauthorized("authentication required")
        event["status"] = 401
        return None

    def _open_body(self, body: bytes) -> bytes:
        content_type = self.headers.get("Content-Type") or ""
        self.encrypted = auth.ENCRYPTED_PROTOCOL.lower() in content_type.lower()
        if self.encrypted:
            if self.ntlm is None:
                raise auth.AuthFailed("encrypted message without NTLM authentication")
            return self.ntlm.unwrap(body)
        if body and self.server.tls is None:
            raise auth.AuthFailed("unencrypted WinRM traffic over plain HTTP is refused (AllowUnencrypted=false)")
        return body

    def _unauthorized(self, why: str, challenge: str | None = None) -> None:
        log.info("[devhost SIMULATOR] 401 for %s: %s", self.client_address[0], why)
        headers = [challenge or "Negotiate"]
        if self.server.tls is not None and challenge is None:
            headers.append('Basic realm="WSMAN"')
        text = f"devhost (SIMULATED Windows host): {why}\n".encode()
        self.send_response(401)
        for value in headers:
            self.send_header("WWW-Authenticate", value)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    # -- replies --

    def _send_plain(self, status: int, text: str) -> None:
        data = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_body(self, status: int, body: bytes, encrypt: bool) -> None:
        if encrypt and self.ntlm is not None:
            data, content_type = self.ntlm.wrap(body), auth.ENCRYPTED_CONTENT_TYPE
        else:
            data, content_type = body, "application/soap+xml;charset=UTF-8"
        self.send_response(status)
        if self.final_token:
            self.send_header("WWW-Authenticate", "Negotiate " + base64_text(self.final_token))
            self.final_token = None
        if data:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _inject(self, fault: dict[str, Any], message: bytes) -> bool:
        """Carry out an injected fault; True if the request has been answered (or abandoned)."""
        kind = fault.get("kind")
        log.info("[devhost SIMULATOR] injecting fault %s", fault)
        if kind == "http500":
            relates_to = ""
            with contextlib.suppress(wsman.WsmanFault):
                relates_to = wsman.parse_request(message).message_id
            injected = wsman.WsmanFault(
                "s:Receiver", "w:InternalError", "devhost (simulator) injected HTTP 500 fault. ", wsman.E_FAIL
            )
            self._send_body(500, wsman.build_fault(injected, relates_to, "devhost"), encrypt=self.encrypted)
            return True
        if kind == "timeout":
            time.sleep(float(fault.get("seconds", 60)))
        if kind in ("drop", "timeout"):
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.request.shutdown(socket.SHUT_RDWR)
            return True
        log.warning("[devhost SIMULATOR] unknown fault kind %r ignored", kind)
        return False


def base64_text(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- the server ------------------------------------------------------------


class DevhostServer:
    """The simulated host's WinRM listeners (HTTP and optionally HTTPS)."""

    def __init__(
        self,
        state_dir: Path,
        *,
        http_port: int = 0,
        https_port: int | None = None,
        bind: str = "127.0.0.1",
        host_factory: HostFactory | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.bind = bind
        self.users_file = users_file(state_dir)
        if not self.users_file.exists():
            raise FileNotFoundError(
                f"no users file at {self.users_file}; create one with: "
                f"python -m devhost add-user --state {state_dir} --user NAME --password-stdin"
            )
        machine.install_identity(state_dir)  # (what setup and the board left: MachineGuid, computer name, SMBIOS UUID)
        self.journal = Journal(sim_dir(state_dir) / "journal.jsonl")
        self.knobs = Knobs(sim_dir(state_dir) / "knobs.json")
        self.service = wsman.WinRSService((host_factory or default_host_factory)(state_dir), self.journal)
        self._http = _Listener((bind, http_port), self, None)
        self._https: _Listener | None = None
        self.ca_cert: Path | None = None
        self.channel_bindings: GssChannelBindings | None = None
        if https_port is not None:
            ca, cert, key = ensure_certificate(state_dir)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
            self.ca_cert = ca
            der = x509.load_pem_x509_certificate(cert.read_bytes()).public_bytes(serialization.Encoding.DER)
            self.channel_bindings = auth.tls_channel_bindings(der)
            self._https = _Listener((bind, https_port), self, context)
        self._threads: list[threading.Thread] = []
        self._power_lock = threading.Lock()
        self._restarts_seen = power.status(state_dir)[0]

    def restarting(self) -> bool:
        """Whether the simulated machine is down for a restart; the first request that finds it so ends every shell
        and process (the WinRM service went down with them)."""
        restarts, down = power.status(self.state_dir)
        with self._power_lock:
            if restarts != self._restarts_seen and (down or power.started_again(self.state_dir)):
                self._restarts_seen = restarts
                self.service.close_all()
                self.journal({"kind": "restart", "restart": restarts})
        return down

    @property
    def http_port(self) -> int:
        return int(self._http.server_address[1])

    @property
    def https_port(self) -> int | None:
        return None if self._https is None else int(self._https.server_address[1])

    def start(self) -> None:
        for listener in (self._http, self._https):
            if listener is not None:
                # A short poll interval keeps stop() quick (tests start and stop many servers).
                thread = threading.Thread(
                    target=listener.serve_forever, kwargs={"poll_interval": 0.05}, name="devhost-listener", daemon=True
                )
                thread.start()
                self._threads.append(thread)
        log.info("[devhost SIMULATOR] %s listening on http %s https %s", BANNER, self.http_port, self.https_port)

    def stop(self) -> None:
        for listener in (self._http, self._https):
            if listener is not None:
                listener.shutdown()
                listener.close_connections()
                listener.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self.service.close_all()

    def ready_info(self) -> dict[str, object]:
        return {
            "http_port": self.http_port,
            "https_port": self.https_port,
            "pid": os.getpid(),
            "ca_cert": str(self.ca_cert) if self.ca_cert else None,
            "simulator": BANNER,
        }

    def write_ready_file(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.ready_info()), encoding="utf-8")
        os.replace(tmp, path)  # readers never see a half-written file

"""WS-Management (WinRS cmd shell) envelopes for the SIMULATED Windows host.

SIMULATOR: nothing here is Windows. This module parses the SOAP requests a
WinRM client (pywinrm, pypsrp) sends and builds the responses a real Windows
Server sends back, element for element, as held in the recordings under
``tests/devhost/recordings``: Create/Command/Send/Receive/Signal/Delete on the
``windows/shell/cmd`` resource, Get/Put of the ``wsman/1/config`` resource, and
the SOAP faults (``w:TimedOut`` 2150858793, ``w:InvalidSelectors`` 2150858843,
...). Responses are written as text templates rather than through an XML
library because Windows declares a specific set of namespace prefixes on each
kind of envelope, and the recordings-comparison test holds us to that.

It knows nothing about HTTP or authentication (``devhost.server``,
``devhost.auth``) nor about what a command line does (``SimulatedHostApi``).
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from devhost.processes import CommandRejected, CommandRequest, SimulatedHostApi, SimulatedProcess

log = logging.getLogger("devhost.wsman")

NS_S = "http://www.w3.org/2003/05/soap-envelope"
NS_A = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
NS_X = "http://schemas.xmlsoap.org/ws/2004/09/transfer"
NS_E = "http://schemas.xmlsoap.org/ws/2004/08/eventing"
NS_N = "http://schemas.xmlsoap.org/ws/2004/09/enumeration"
NS_W = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
NS_P = "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd"
NS_RSP = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
NS_F = "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault"
NS_CFG = "http://schemas.microsoft.com/wbem/wsman/1/config"

RESOURCE_CMD = NS_RSP + "/cmd"
RESOURCE_CONFIG = NS_CFG
ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"

ACTION_CREATE = NS_X + "/Create"
ACTION_DELETE = NS_X + "/Delete"
ACTION_GET = NS_X + "/Get"
ACTION_PUT = NS_X + "/Put"
ACTION_COMMAND = NS_RSP + "/Command"
ACTION_SEND = NS_RSP + "/Send"
ACTION_RECEIVE = NS_RSP + "/Receive"
ACTION_SIGNAL = NS_RSP + "/Signal"
ACTION_FAULT = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"

STATE_DONE = NS_RSP + "/CommandState/Done"
STATE_RUNNING = NS_RSP + "/CommandState/Running"
SIGNAL_TERMINATE = NS_RSP + "/signal/terminate"

# Short names of the actions, used by the journal and the fault-injection knobs.
ACTION_NAMES = {
    ACTION_CREATE: "Create",
    ACTION_DELETE: "Delete",
    ACTION_GET: "Get",
    ACTION_PUT: "Put",
    ACTION_COMMAND: "Command",
    ACTION_SEND: "Send",
    ACTION_RECEIVE: "Receive",
    ACTION_SIGNAL: "Signal",
}

# Which prefixes Windows declares on the root of each kind of response.
_PREFIXES = {"s": NS_S, "a": NS_A, "x": NS_X, "e": NS_E, "n": NS_N, "w": NS_W, "rsp": NS_RSP, "p": NS_P}
_DECLARED = {
    "shell": ("s", "a", "x", "w", "rsp", "p"),
    "receive": ("s", "a", "w", "rsp", "p"),
    "delete": ("s", "a", "w", "p"),
    "config": ("s", "a", "x", "w", "p"),
    "fault": ("s", "a", "x", "e", "n", "w", "p"),
}

# HRESULT E_FAIL, for failures Windows would not have (simulator bugs, injected faults).
E_FAIL = 0x80004005
# Windows' default winrm/config MaxEnvelopeSizekb.
DEFAULT_MAX_ENVELOPE_KB = 500
# Windows' default winrm/config/winrs MaxShellsPerUser (learn.microsoft.com, "Installation and configuration
# for Windows Remote Management": MaxShellsPerUser default 30), and IdleTimeout (7200000 ms): a shell nobody
# deletes holds one of the 30 for two hours.
DEFAULT_MAX_SHELLS_PER_USER = 30
DEFAULT_IDLE_TIMEOUT_S = 7200.0
# MaxProcessesPerShell: 25 (learn.microsoft.com, "Quotas for remote shells" and "Installation and configuration
# for Windows Remote Management"; MS-WSMV 2.2.4.42 WinrsType, default="25"; `winrm get winrm/config/winrs` on a
# Server 2016+ host in ansible/ansible#66846 shows 25 next to MaxShellsPerUser 30). The recordings' 2147483647
# comes from pypsrp's test host, whose quotas were raised (tests/devhost/test_wsman_recordings.py).
DEFAULT_MAX_PROCESSES_PER_SHELL = 25
# learn.microsoft.com, "Quotas for remote shells" (windows/win32/winrm/quotas): IdleTimeout "The minimum time
# is 1000 milliseconds".
MIN_IDLE_TIMEOUT_S = 1.0
# A Receive never waits longer than this, whatever OperationTimeout says.
MAX_OPERATION_TIMEOUT = 60.0

_INVALID_SELECTORS = (
    "The WS-Management service cannot process the request because the request contained invalid selectors "
    "for the resource. "
)
_PROVIDER_FAULT = (
    '<f:ProviderFault provider="Shell cmd plugin" path="%systemroot%\\system32\\winrscmd.dll">',
    "</f:ProviderFault>",
)


def _esc(text: str) -> str:
    # Windows escapes double quotes in text as well as in attributes.
    return escape(text, {'"': "&quot;"})


class WsmanFault(Exception):
    """A SOAP fault, laid out as Windows lays them out."""

    def __init__(
        self,
        code: str,
        subcode: str,
        reason: str,
        wsman_code: int,
        message: str | None = None,
        detail: str | None = None,
        provider: bool = False,
    ) -> None:
        super().__init__(reason)
        self.code = code  # "s:Sender" | "s:Receiver"
        self.subcode = subcode  # e.g. "w:TimedOut"
        self.reason = reason
        self.wsman_code = wsman_code
        self.message = reason if message is None else message
        self.detail = detail  # a w:FaultDetail URI, when Windows sends one
        self.provider = provider  # message wrapped in the WinRS plugin's f:ProviderFault


def timed_out_fault() -> WsmanFault:
    text = "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.  "
    return WsmanFault("s:Receiver", "w:TimedOut", text, 2150858793)


def unknown_command_fault() -> WsmanFault:
    return WsmanFault(
        "s:Sender",
        "w:InvalidSelectors",
        _INVALID_SELECTORS,
        2150858843,
        message="The Windows Remote Shell received a request to perform an operation on a command identifier that does "
        "not exist. Either the command has completed execution or the client specified an invalid command identifier. ",
        detail="http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/UnexpectedSelectors",
    )


def unknown_shell_fault(shell_id: str) -> WsmanFault:
    return WsmanFault(
        "s:Sender",
        "w:InvalidSelectors",
        _INVALID_SELECTORS,
        2150858843,
        message=f"The request for the Windows Remote Shell with ShellId {shell_id} failed because the shell was not "
        "found on the server. Possible causes are: the specified ShellId is incorrect or the shell no longer exists "
        "on the server. Provide the correct ShellId or create a new shell and retry the operation. ",
        detail="http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/UnexpectedSelectors",
    )


def invalid_parameter_fault() -> WsmanFault:
    return WsmanFault(
        "s:Sender",
        "w:InvalidParameter",
        "The parameter is incorrect. ",
        87,
        detail="http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/InvalidValue",
        provider=True,
    )


def action_not_supported_fault(action: str) -> WsmanFault:
    return WsmanFault(
        "s:Sender",
        "a:ActionNotSupported",
        "The WS-Management service does not support the action specified in the request. ",
        2150858771,
        message=f"The WS-Management service does not support the action specified in the request: {action} "
        "(devhost simulator models the WinRS cmd shell and the wsman config resource only). ",
    )


def invalid_body_fault(why: str) -> WsmanFault:
    return WsmanFault(
        "s:Sender",
        "w:InvalidBody",
        "The WS-Management service cannot process the request because the request packet does not have a valid "
        "SOAP body. ",
        2150858791,
        message=f"The WS-Management service cannot process the request: {why} ",
    )


def envelope_too_large_fault() -> WsmanFault:
    return WsmanFault(
        "s:Sender",
        "w:EncodingLimit",
        "The WS-Management service cannot process the response because it is larger than the maximum size allowed. ",
        2150858790,
        detail="http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/MaxEnvelopeSize",
    )


def shell_quota_fault(limit: int) -> WsmanFault:
    """ERROR_WSMAN_QUOTA_MAX_SHELLS (0x803381A5, 2150859173): the user already holds MaxShellsPerUser shells.
    Code and text as a real host answered them (hashicorp/vagrant#7489: "[WSMAN ERROR CODE: 2150859173] ... This
    user is allowed a maximum number of 5 concurrent shells"); 0x803381A6 is the concurrent-operations quota."""
    return WsmanFault(
        "s:Receiver",
        "w:InternalError",
        "The WS-Management service cannot process the request. This user is allowed a maximum number of "
        f"{limit} concurrent shells, which has been exceeded. Close existing shells or raise the quota for this "
        "user. ",
        0x803381A5,
    )


def process_quota_fault() -> WsmanFault:
    """A Command over MaxProcessesPerShell. WinRS runs a shell's processes in one job object whose active-process
    limit is MaxProcessesPerShell ("including the shell's child processes", learn.microsoft.com "Quotas for remote
    shells"); CreateProcess in a full job fails with ERROR_NOT_ENOUGH_QUOTA (1816, learn.microsoft.com
    JOBOBJECT_BASIC_LIMIT_INFORMATION: "If you try to associate a process with a job, and this causes the active
    process count to exceed this limit, the process is terminated"), which the cmd plugin returns as its fault.
    The code and text are inferred from those documents, not captured from a real host (README, "What the
    simulator still cannot check")."""
    return WsmanFault(
        "s:Receiver",
        "w:InternalError",
        "Not enough quota is available to process this command. ",
        0x80070718,
        provider=True,
    )


def file_not_found_fault() -> WsmanFault:
    return WsmanFault(
        "s:Receiver", "w:InternalError", "The system cannot find the file specified. ", 2147942402, provider=True
    )


# --- requests --------------------------------------------------------------


@dataclass
class WsmanRequest:
    action: str
    message_id: str
    resource_uri: str
    selectors: dict[str, str]
    options: dict[str, str]
    operation_timeout: float
    max_envelope_size: int
    body: ET.Element

    @property
    def action_name(self) -> str:
        return ACTION_NAMES.get(self.action, self.action.rsplit("/", 1)[-1])

    def option_true(self, name: str) -> bool:
        return self.options.get(name, "").strip().lower() == "true"


_DURATION = re.compile(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?\Z")


def parse_duration(text: str) -> float:
    """xs:duration (``PT20S``, ``PT60.000S``, ``P0DT0H0M0S``) → seconds."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or text.strip() in ("P", "PT"):
        raise ValueError(f"not an xs:duration: {text!r}")
    days, hours, minutes, seconds = match.groups()
    return int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)


def format_idle_timeout(seconds: float) -> str:
    return f"PT{seconds:.3f}S"


def peek_action(data: bytes) -> str | None:
    """The short action name of a request (for the knobs), or None when unparseable."""
    try:
        return parse_request(data).action_name
    except WsmanFault:
        return None


def parse_request(data: bytes) -> WsmanRequest:
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise invalid_body_fault(f"the XML is not well formed ({exc})") from exc
    header = root.find(f"{{{NS_S}}}Header")
    body = root.find(f"{{{NS_S}}}Body")
    if root.tag != f"{{{NS_S}}}Envelope" or header is None or body is None:
        raise invalid_body_fault("expected a SOAP 1.2 s:Envelope with s:Header and s:Body")

    def text(ns: str, name: str) -> str:
        node = header.find(f"{{{ns}}}{name}")
        return (node.text or "").strip() if node is not None else ""

    selectors = {
        node.get("Name", ""): (node.text or "").strip()
        for node in header.iterfind(f"{{{NS_W}}}SelectorSet/{{{NS_W}}}Selector")
    }
    options = {
        node.get("Name", ""): (node.text or "") for node in header.iterfind(f"{{{NS_W}}}OptionSet/{{{NS_W}}}Option")
    }
    try:
        timeout = parse_duration(text(NS_W, "OperationTimeout") or "PT60S")
        max_size = int(text(NS_W, "MaxEnvelopeSize") or DEFAULT_MAX_ENVELOPE_KB * 1024)
    except ValueError as exc:
        raise invalid_body_fault(str(exc)) from exc
    return WsmanRequest(
        action=text(NS_A, "Action"),
        message_id=text(NS_A, "MessageID"),
        resource_uri=text(NS_W, "ResourceURI"),
        selectors=selectors,
        options=options,
        operation_timeout=min(timeout, MAX_OPERATION_TIMEOUT),
        max_envelope_size=max_size,
        body=body,
    )


# --- responses -------------------------------------------------------------


def build_envelope(kind: str, action: str, relates_to: str, body: str) -> bytes:
    declared = " ".join(f'xmlns:{p}="{_PREFIXES[p]}"' for p in _DECLARED[kind])
    return (
        f'<s:Envelope xml:lang="en-US" {declared}><s:Header>'
        f"<a:Action>{_esc(action)}</a:Action>"
        f"<a:MessageID>uuid:{str(uuid.uuid4()).upper()}</a:MessageID>"
        f"<a:To>{ANONYMOUS}</a:To>"
        f"<a:RelatesTo>{_esc(relates_to)}</a:RelatesTo>"
        f"</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def build_fault(fault: WsmanFault, relates_to: str, machine: str) -> bytes:
    detail = f"<w:FaultDetail>{fault.detail}</w:FaultDetail>" if fault.detail else ""
    message = _esc(fault.message)
    if fault.provider:
        message = _PROVIDER_FAULT[0] + message + _PROVIDER_FAULT[1]
    body = (
        f"<s:Fault><s:Code><s:Value>{fault.code}</s:Value><s:Subcode><s:Value>{fault.subcode}</s:Value></s:Subcode>"
        f'</s:Code><s:Reason><s:Text xml:lang="en-US">{_esc(fault.reason)}</s:Text></s:Reason><s:Detail>{detail}'
        f'<f:WSManFault xmlns:f="{NS_F}" Code="{fault.wsman_code}" Machine="{_esc(machine)}">'
        f"<f:Message>{message}</f:Message></f:WSManFault></s:Detail></s:Fault>"
    )
    return build_envelope("fault", ACTION_FAULT, relates_to, body)


def config_body(
    max_envelope_kb: int,
    max_shells_per_user: int = DEFAULT_MAX_SHELLS_PER_USER,
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
    max_processes_per_shell: int = DEFAULT_MAX_PROCESSES_PER_SHELL,
) -> str:
    """winrm/config as Windows Server answers a Get (values from the recordings)."""
    client = (
        "<cfg:Client><cfg:NetworkDelayms>5000</cfg:NetworkDelayms><cfg:URLPrefix>wsman</cfg:URLPrefix>"
        "<cfg:AllowUnencrypted>false</cfg:AllowUnencrypted><cfg:Auth><cfg:Basic>true</cfg:Basic>"
        "<cfg:Digest>true</cfg:Digest><cfg:Kerberos>true</cfg:Kerberos><cfg:Negotiate>true</cfg:Negotiate>"
        "<cfg:Certificate>true</cfg:Certificate><cfg:CredSSP>false</cfg:CredSSP></cfg:Auth><cfg:DefaultPorts>"
        "<cfg:HTTP>5985</cfg:HTTP><cfg:HTTPS>5986</cfg:HTTPS></cfg:DefaultPorts><cfg:TrustedHosts></cfg:TrustedHosts>"
        "</cfg:Client>"
    )
    service = (
        "<cfg:Service><cfg:RootSDDL>O:NSG:BAD:P(A;;GA;;;BA)(A;;GR;;;IU)S:P(AU;FA;GA;;;WD)(AU;SA;GXGW;;;WD)"
        "</cfg:RootSDDL><cfg:MaxConcurrentOperations>4294967295</cfg:MaxConcurrentOperations>"
        "<cfg:MaxConcurrentOperationsPerUser>1500</cfg:MaxConcurrentOperationsPerUser>"
        "<cfg:EnumerationTimeoutms>240000</cfg:EnumerationTimeoutms><cfg:MaxConnections>300</cfg:MaxConnections>"
        "<cfg:MaxPacketRetrievalTimeSeconds>120</cfg:MaxPacketRetrievalTimeSeconds>"
        "<cfg:AllowUnencrypted>false</cfg:AllowUnencrypted><cfg:Auth><cfg:Basic>true</cfg:Basic>"
        "<cfg:Kerberos>true</cfg:Kerberos><cfg:Negotiate>true</cfg:Negotiate><cfg:Certificate>false</cfg:Certificate>"
        "<cfg:CredSSP>true</cfg:CredSSP><cfg:CbtHardeningLevel>Relaxed</cfg:CbtHardeningLevel></cfg:Auth>"
        "<cfg:DefaultPorts><cfg:HTTP>5985</cfg:HTTP><cfg:HTTPS>5986</cfg:HTTPS></cfg:DefaultPorts>"
        "<cfg:IPv4Filter>*</cfg:IPv4Filter><cfg:IPv6Filter>*</cfg:IPv6Filter>"
        "<cfg:EnableCompatibilityHttpListener>false</cfg:EnableCompatibilityHttpListener>"
        "<cfg:EnableCompatibilityHttpsListener>false</cfg:EnableCompatibilityHttpsListener>"
        "<cfg:CertificateThumbprint></cfg:CertificateThumbprint><cfg:AllowRemoteAccess>true</cfg:AllowRemoteAccess>"
        "</cfg:Service>"
    )
    winrs = (
        "<cfg:Winrs><cfg:AllowRemoteShellAccess>true</cfg:AllowRemoteShellAccess>"
        f"<cfg:IdleTimeout>{round(idle_timeout_s * 1000)}"
        "</cfg:IdleTimeout><cfg:MaxConcurrentUsers>2147483647</cfg:MaxConcurrentUsers><cfg:MaxShellRunTime>2147483647"
        f"</cfg:MaxShellRunTime><cfg:MaxProcessesPerShell>{max_processes_per_shell}</cfg:MaxProcessesPerShell>"
        f"<cfg:MaxMemoryPerShellMB>2147483647</cfg:MaxMemoryPerShellMB><cfg:MaxShellsPerUser>{max_shells_per_user}"
        "</cfg:MaxShellsPerUser></cfg:Winrs>"
    )
    return (
        f'<cfg:Config xmlns:cfg="{NS_CFG}"><cfg:MaxEnvelopeSizekb>{max_envelope_kb}</cfg:MaxEnvelopeSizekb>'
        "<cfg:MaxTimeoutms>60000</cfg:MaxTimeoutms><cfg:MaxBatchItems>32000</cfg:MaxBatchItems>"
        f"<cfg:MaxProviderRequests>4294967295</cfg:MaxProviderRequests>{client}{service}{winrs}</cfg:Config>"
    )


# --- shells and commands ---------------------------------------------------


@dataclass
class Command:
    command_id: str
    process: SimulatedProcess
    stdout: bytearray = field(default_factory=bytearray)  # read from the process, not yet sent
    stderr: bytearray = field(default_factory=bytearray)
    done: bool = False
    exit_code: int = 0
    # Receives for one command are answered one at a time, in order.
    receive_lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Shell:
    shell_id: str
    owner: str
    client_ip: str
    input_streams: str
    output_streams: str
    idle_timeout: float
    working_directory: str | None
    environment: dict[str, str]
    commands: dict[str, Command] = field(default_factory=dict)
    last_used: float = field(default_factory=time.monotonic)


Journal = Callable[[dict[str, object]], None]


@dataclass
class Caller:
    """Who sent a request and how they reached us (from the HTTP layer)."""

    user: str
    client_ip: str
    address: str  # the listener's URL, e.g. http://127.0.0.1:5985/wsman
    machine: str  # host name the client used, as Windows puts it in WSManFault/@Machine


class WinRSService:
    """The state of the simulated WinRM service: open shells and their commands."""

    def __init__(self, host: SimulatedHostApi, journal: Journal | None = None) -> None:
        self.host = host
        self.journal: Journal = journal or (lambda event: None)
        self.max_envelope_kb = DEFAULT_MAX_ENVELOPE_KB
        self.max_shells_per_user = DEFAULT_MAX_SHELLS_PER_USER
        self.max_processes_per_shell = DEFAULT_MAX_PROCESSES_PER_SHELL
        # winrm/config/winrs IdleTimeout: a shell whose Create names no IdleTimeOut gets it (devhost.server sets it
        # from the knob winrs_idle_timeout_ms before each request).
        self.idle_timeout_s = DEFAULT_IDLE_TIMEOUT_S
        self._lock = threading.Lock()
        self._shells: dict[str, Shell] = {}

    def handle(self, data: bytes, caller: Caller) -> tuple[int, bytes]:
        """Answer one request envelope: (HTTP status, response envelope)."""
        relates_to = ""
        if len(data) > self.max_envelope_kb * 1024:
            # Windows refuses a request envelope over MaxEnvelopeSizekb with HTTP 413 and no body (seen by
            # pywinrm as "Bad HTTP response returned from server. Code 413", ansible.windows#620 and #391):
            # stdin larger than that must go in several Sends.
            return 413, b""
        try:
            request = parse_request(data)
            relates_to = request.message_id
            return 200, self._dispatch(request, caller)
        except WsmanFault as fault:
            # Windows answers every SOAP fault with HTTP 500.
            return 500, build_fault(fault, relates_to, caller.machine)
        except Exception as exc:
            # A bug in the simulator (or the host's models) must reach the client as a loud fault,
            # not as a dropped connection. log.exception keeps the traceback (BLE accepts that).
            log.exception("[devhost SIMULATOR] internal error while handling a request")
            internal = WsmanFault(
                "s:Receiver",
                "w:InternalError",
                f"devhost (simulator) internal error: {exc!r} ",
                E_FAIL,
            )
            return 500, build_fault(internal, relates_to, caller.machine)

    def close_all(self) -> None:
        with self._lock:
            shells = list(self._shells.values())
            self._shells.clear()
        for shell in shells:
            for command in shell.commands.values():
                command.process.signal(SIGNAL_TERMINATE)

    def _dispatch(self, request: WsmanRequest, caller: Caller) -> bytes:
        if request.resource_uri == RESOURCE_CONFIG and request.action in (ACTION_GET, ACTION_PUT):
            return self._config(request)
        handlers: dict[str, Callable[[WsmanRequest, Caller], bytes]] = {
            ACTION_CREATE: self._create,
            ACTION_DELETE: self._delete,
            ACTION_COMMAND: self._command,
            ACTION_SEND: self._send,
            ACTION_RECEIVE: self._receive,
            ACTION_SIGNAL: self._signal,
        }
        handler = handlers.get(request.action)
        if handler is None or request.resource_uri != RESOURCE_CMD:
            raise action_not_supported_fault(f"{request.action} on {request.resource_uri}")
        return handler(request, caller)

    # -- config --

    def _config(self, request: WsmanRequest) -> bytes:
        if request.action == ACTION_PUT:
            node = request.body.find(f"{{{NS_CFG}}}Config/{{{NS_CFG}}}MaxEnvelopeSizekb")
            if node is None or not (node.text or "").strip().isdigit():
                raise invalid_body_fault("devhost models a Put of cfg:Config/cfg:MaxEnvelopeSizekb only")
            self.max_envelope_kb = int((node.text or "").strip())
        action = NS_X + ("/PutResponse" if request.action == ACTION_PUT else "/GetResponse")
        body = config_body(
            self.max_envelope_kb, self.max_shells_per_user, self.idle_timeout_s, self.max_processes_per_shell
        )
        return build_envelope("config", action, request.message_id, body)

    # -- shells --

    def _shell(self, request: WsmanRequest) -> Shell:
        shell_id = request.selectors.get("ShellId", "")
        with self._lock:
            self._expire_idle()
            shell = self._shells.get(shell_id.upper())
            if shell is not None:
                shell.last_used = time.monotonic()
        if shell is None:
            raise unknown_shell_fault(shell_id)
        return shell

    def _expire_idle(self) -> None:
        """WinRM deletes a shell nobody used for its IdleTimeOut (default 2 hours). Call with the lock held."""
        now = time.monotonic()
        for shell_id, shell in list(self._shells.items()):
            if now - shell.last_used > shell.idle_timeout:
                self._shells.pop(shell_id)
                for command in shell.commands.values():
                    command.process.signal(SIGNAL_TERMINATE)
                self.journal({"kind": "expire", "shell_id": shell_id})

    def open_shells(self) -> list[tuple[str, str]]:
        """(shell id, owner) of every shell the service holds (tests: no shell may leak)."""
        with self._lock:
            self._expire_idle()
            return [(shell.shell_id, shell.owner) for shell in self._shells.values()]

    def _create(self, request: WsmanRequest, caller: Caller) -> bytes:
        spec = request.body.find(f"{{{NS_RSP}}}Shell")
        if spec is None:
            raise invalid_body_fault("Create needs an rsp:Shell body")

        def child(name: str) -> str | None:
            node = spec.find(f"{{{NS_RSP}}}{name}")
            return None if node is None else (node.text or "")

        # Windows drops backslashes from variable names (see test_winrs_environment.yml).
        env = {
            node.get("Name", "").replace("\\", ""): node.text or ""
            for node in spec.iterfind(f"{{{NS_RSP}}}Environment/{{{NS_RSP}}}Variable")
        }
        try:
            requested = child("IdleTimeOut")
            idle = parse_duration(requested) if requested else self.idle_timeout_s
        except ValueError as exc:
            raise invalid_parameter_fault() from exc
        # The configured IdleTimeout is "the maximum time ... before an inactive remote shell is deleted", at least
        # 1000 ms (learn.microsoft.com, "Quotas for remote shells"): a client may ask for less, not for more.
        idle = max(min(idle, self.idle_timeout_s), MIN_IDLE_TIMEOUT_S)
        shell = Shell(
            shell_id=str(uuid.uuid4()).upper(),
            owner=caller.user.split("\\")[-1],
            client_ip=caller.client_ip,
            input_streams=child("InputStreams") or "stdin",
            output_streams=child("OutputStreams") or "stdout stderr",
            idle_timeout=idle,
            working_directory=child("WorkingDirectory"),
            environment=env,
        )
        with self._lock:
            self._expire_idle()
            held = sum(1 for s in self._shells.values() if s.owner.lower() == shell.owner.lower())
            if held >= self.max_shells_per_user:
                raise shell_quota_fault(self.max_shells_per_user)
            self._shells[shell.shell_id] = shell
        self.journal({"kind": "create", "shell_id": shell.shell_id, "user": caller.user})
        return build_envelope("shell", NS_X + "/CreateResponse", request.message_id, self._created_body(shell, caller))

    @staticmethod
    def _created_body(shell: Shell, caller: Caller) -> str:
        env = ""
        if shell.environment:
            variables = "".join(
                f'<rsp:Variable Name="{_esc(k)}">{_esc(v)}</rsp:Variable>' for k, v in shell.environment.items()
            )
            env = f"<rsp:Environment>{variables}</rsp:Environment>"
        cwd = (
            f"<rsp:WorkingDirectory>{_esc(shell.working_directory)}</rsp:WorkingDirectory>"
            if shell.working_directory
            else ""
        )
        return (
            f"<x:ResourceCreated><a:Address>{_esc(caller.address)}</a:Address><a:ReferenceParameters>"
            f'<w:ResourceURI>{RESOURCE_CMD}</w:ResourceURI><w:SelectorSet><w:Selector Name="ShellId">{shell.shell_id}'
            f"</w:Selector></w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>"
            f'<rsp:Shell xmlns:rsp="{NS_RSP}"><rsp:ShellId>{shell.shell_id}</rsp:ShellId>'
            f"<rsp:ResourceUri>{RESOURCE_CMD}</rsp:ResourceUri><rsp:Owner>{_esc(shell.owner)}</rsp:Owner>"
            f"<rsp:ClientIP>{_esc(shell.client_ip)}</rsp:ClientIP>{env}{cwd}"
            f"<rsp:IdleTimeOut>{format_idle_timeout(shell.idle_timeout)}</rsp:IdleTimeOut>"
            f"<rsp:InputStreams>{_esc(shell.input_streams)}</rsp:InputStreams>"
            f"<rsp:OutputStreams>{_esc(shell.output_streams)}</rsp:OutputStreams>"
            "<rsp:ShellRunTime>P0DT0H0M0S</rsp:ShellRunTime><rsp:ShellInactivity>P0DT0H0M0S</rsp:ShellInactivity>"
            "</rsp:Shell>"
        )

    def _delete(self, request: WsmanRequest, caller: Caller) -> bytes:
        shell = self._shell(request)
        with self._lock:
            self._shells.pop(shell.shell_id, None)
            commands = list(shell.commands.values())
            shell.commands.clear()
        for command in commands:
            command.process.signal(SIGNAL_TERMINATE)
        self.journal({"kind": "delete", "shell_id": shell.shell_id})
        return build_envelope("delete", NS_X + "/DeleteResponse", request.message_id, "")

    # -- commands --

    def _find_command(self, shell: Shell, command_id: str | None) -> Command:
        if not command_id:
            raise invalid_parameter_fault()
        with self._lock:
            command = shell.commands.get(command_id.upper())
        if command is None:
            raise unknown_command_fault()
        return command

    def _command(self, request: WsmanRequest, caller: Caller) -> bytes:
        shell = self._shell(request)
        line = request.body.find(f"{{{NS_RSP}}}CommandLine")
        if line is None:
            raise invalid_body_fault("Command needs an rsp:CommandLine body")
        executable = (line.findtext(f"{{{NS_RSP}}}Command") or "").strip()
        arguments = [node.text or "" for node in line.iterfind(f"{{{NS_RSP}}}Arguments")]
        command_request = CommandRequest(
            command=executable,
            arguments=arguments,
            working_directory=shell.working_directory,
            environment=dict(shell.environment),
            shell_id=shell.shell_id,
            user=caller.user,
        )
        command_id = (line.get("CommandId") or str(uuid.uuid4())).upper()
        self.journal(
            {
                "kind": "command",
                "shell_id": shell.shell_id,
                "command_id": command_id,
                "command_line": command_request.command_line,
            }
        )
        if request.option_true("WINRS_SKIP_CMD_SHELL") and not re.search(r"[\\/]", executable):
            # Without cmd.exe nothing searches PATH: Windows wants a full path
            # (test_winrs_no_cmd_shell.yml).
            raise file_not_found_fault()
        with self._lock:
            # A command counts until its end was received or it was terminated. (Windows counts every process in
            # the shell's job, the children a command starts too; the simulator counts one per command.)
            running = sum(1 for held in shell.commands.values() if not held.done)
        if running >= self.max_processes_per_shell:
            raise process_quota_fault()
        try:
            process = self.host.start(command_request)
        except CommandRejected as exc:
            raise WsmanFault("s:Receiver", "w:InternalError", f"{exc} ", exc.code, provider=True) from exc
        with self._lock:
            shell.commands[command_id] = Command(command_id=command_id, process=process)
        body = f"<rsp:CommandResponse><rsp:CommandId>{command_id}</rsp:CommandId></rsp:CommandResponse>"
        return build_envelope("shell", NS_RSP + "/CommandResponse", request.message_id, body)

    def _send(self, request: WsmanRequest, caller: Caller) -> bytes:
        shell = self._shell(request)
        streams = list(request.body.iterfind(f"{{{NS_RSP}}}Send/{{{NS_RSP}}}Stream"))
        if not streams:
            raise invalid_body_fault("Send needs rsp:Send/rsp:Stream")
        for stream in streams:
            command = self._find_command(shell, stream.get("CommandId"))
            try:
                data = base64.b64decode((stream.text or "").strip(), validate=True)
            except binascii.Error as exc:
                raise invalid_parameter_fault() from exc
            end = (stream.get("End") or "false").strip().lower() == "true"
            self.journal(
                {
                    "kind": "stdin",
                    "shell_id": shell.shell_id,
                    "command_id": command.command_id,
                    "data": base64.b64encode(data).decode("ascii"),
                    "end": end,
                }
            )
            command.process.write_stdin(data, end)
        return build_envelope("shell", NS_RSP + "/SendResponse", request.message_id, "<rsp:SendResponse/>")

    def _signal(self, request: WsmanRequest, caller: Caller) -> bytes:
        shell = self._shell(request)
        node = request.body.find(f"{{{NS_RSP}}}Signal")
        if node is None:
            raise invalid_body_fault("Signal needs an rsp:Signal body")
        command = self._find_command(shell, node.get("CommandId"))
        code = (node.findtext(f"{{{NS_RSP}}}Code") or "").strip()
        self.journal({"kind": "signal", "shell_id": shell.shell_id, "command_id": command.command_id, "code": code})
        command.process.signal(code)
        if code == SIGNAL_TERMINATE:
            # After terminate the command id is gone, as on Windows.
            with self._lock:
                shell.commands.pop(command.command_id, None)
        return build_envelope("shell", NS_RSP + "/SignalResponse", request.message_id, "<rsp:SignalResponse/>")

    def _receive(self, request: WsmanRequest, caller: Caller) -> bytes:
        shell = self._shell(request)
        desired = request.body.find(f"{{{NS_RSP}}}Receive/{{{NS_RSP}}}DesiredStream")
        if desired is None:
            raise invalid_body_fault("Receive needs rsp:Receive/rsp:DesiredStream")
        command = self._find_command(shell, desired.get("CommandId"))
        names = (desired.text or "stdout stderr").split()
        with command.receive_lock:
            if not command.done:
                # Wait for output only if we have nothing buffered to hand out.
                waiting = not (command.stdout or command.stderr)
                result = command.process.read(request.operation_timeout if waiting else 0.0)
                command.stdout += result.stdout
                command.stderr += result.stderr
                if result.done:
                    command.done = True
                    command.exit_code = result.exit_code if result.exit_code is not None else 0
            if not (command.stdout or command.stderr or command.done):
                raise timed_out_fault()
            return self._receive_response(request, command, names)

    def _receive_response(self, request: WsmanRequest, command: Command, names: list[str]) -> bytes:
        cid = command.command_id
        wanted = {"stdout": "stdout" in names, "stderr": "stderr" in names}

        def render(out_n: int, err_n: int) -> bytes:
            parts: list[str] = []
            for name, buf, n in (("stdout", command.stdout, out_n), ("stderr", command.stderr, err_n)):
                if n:
                    encoded = base64.b64encode(bytes(buf[:n])).decode("ascii")
                    parts.append(f'<rsp:Stream Name="{name}" CommandId="{cid}">{encoded}</rsp:Stream>')
            finished = command.done and out_n == len(command.stdout) and err_n == len(command.stderr)
            if finished:
                for name in ("stdout", "stderr"):
                    if wanted[name]:
                        parts.append(f'<rsp:Stream Name="{name}" CommandId="{cid}" End="true"></rsp:Stream>')
                parts.append(
                    f'<rsp:CommandState CommandId="{cid}" State="{STATE_DONE}">'
                    f"<rsp:ExitCode>{command.exit_code}</rsp:ExitCode></rsp:CommandState>"
                )
            else:
                parts.append(f'<rsp:CommandState CommandId="{cid}" State="{STATE_RUNNING}"></rsp:CommandState>')
            body = f"<rsp:ReceiveResponse>{''.join(parts)}</rsp:ReceiveResponse>"
            return build_envelope("receive", NS_RSP + "/ReceiveResponse", request.message_id, body)

        if not wanted["stdout"]:
            command.stdout.clear()
        if not wanted["stderr"]:
            command.stderr.clear()
        out_n, err_n = len(command.stdout), len(command.stderr)
        reply = render(out_n, err_n)
        limit = request.max_envelope_size
        if len(reply) > limit:
            # Too big: send what fits (stdout first) and keep the rest for the next Receive.
            # The skeleton with one byte per stream bounds the fixed part of the envelope.
            skeleton = len(render(min(out_n, 1), min(err_n, 1)))
            room = (limit - skeleton) // 4 * 3
            if room <= 0:
                raise envelope_too_large_fault()
            out_n = min(out_n, room)
            err_n = min(err_n, room - out_n)
            reply = render(out_n, err_n)
        del command.stdout[:out_n]
        del command.stderr[:err_n]
        return reply

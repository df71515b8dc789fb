"""Replay real Windows WinRM exchanges against the SIMULATED host (devhost).

The recordings in ``tests/devhost/recordings`` (pypsrp's test data, MIT licence in
``LICENSE-pypsrp`` there, recorded against Windows Server) are the reference: every request is sent to the
simulator, with the recorded shell and command ids swapped for the ones the
simulator handed out, and the *structure* of each response must match the
recorded one: namespace declarations, element names and namespaces, attributes,
CommandState values, exit codes, fault codes, reasons and messages, and the
bytes of each output stream. Ignored: message ids and shell/command ids (only
their shape is checked), ``a:Address``, ``rsp:Owner``, ``rsp:ClientIP``,
``WSManFault/@Machine``, Windows' ``p:ActivityId`` header, how an output stream
is cut into ``rsp:Stream`` chunks, and the contents of ``set`` (the host's
environment; only the shell's own variables are checked there).

Each recording is replayed twice: straight into ``devhost.wsman`` and over
HTTPS with Basic auth through the real listener.
"""

from __future__ import annotations

import base64
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from devhost import wsman
from devhost.builtin_commands import start_builtin
from devhost.server import BuiltinHost
from tests.devhost.conftest import PASSWORD, USER, SimServer

RECORDINGS = Path(__file__).resolve().parent / "recordings"
FILES = sorted(RECORDINGS.glob("*.yml"))

# The recordings of test_winrs_operation_timeout wait 10 s per Receive for a 30 s sleep; replay
# them ten times faster (same ratios, so the same Running/TimedOut/Done sequence).
TIME_SCALE = {"PT10S": "PT1S", "Start-Sleep 30": "Start-Sleep 3"}

ID_TEXT = {"ShellId", "CommandId", "Selector"}
MASKED_TEXT = {"Address", "Owner", "ClientIP", "MessageID", "RelatesTo"}
UUID_RE = re.compile(r"^(uuid:)?[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$")


def load(path: Path) -> list[dict[str, str]]:
    data: dict[str, list[dict[str, str]]] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data["messages"]


def declared_namespaces(xml: bytes) -> list[str]:
    root_tag = re.match(rb"<[^>]*>", xml.lstrip())
    assert root_tag is not None
    return sorted(m.decode() for m in re.findall(rb'xmlns:\w+="[^"]*"', root_tag.group(0)))


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def merge_streams(receive: ET.Element) -> None:
    """Join consecutive data chunks of one stream: Windows cuts them arbitrarily."""
    merged: list[ET.Element] = []
    for child in list(receive):
        receive.remove(child)
        previous = merged[-1] if merged else None
        is_data = local(child.tag) == "Stream" and child.get("End") is None
        if (
            is_data
            and previous is not None
            and local(previous.tag) == "Stream"
            and previous.get("End") is None
            and previous.get("Name") == child.get("Name")
        ):
            data = base64.b64decode(previous.text or "") + base64.b64decode(child.text or "")
            previous.text = base64.b64encode(data).decode()
            continue
        merged.append(child)
    receive.extend(merged)


def flatten(xml: bytes, host_specific_streams: bool) -> list[str]:
    """One line per element: path, attributes (ids masked) and text (masked where host-specific)."""
    root = ET.fromstring(xml)
    for node in root.iter():
        if local(node.tag) == "ReceiveResponse":
            merge_streams(node)
    lines: list[str] = []

    def walk(node: ET.Element, path: str) -> None:
        name = local(node.tag)
        if name == "ActivityId":
            return  # Windows-internal tracing id, present in some faults only
        attrs = {k: ("<id>" if k == "CommandId" else v) for k, v in node.attrib.items()}
        if name == "WSManFault":
            attrs["Machine"] = "<machine>"
        text = (node.text or "").strip()
        if name in ID_TEXT or name in MASKED_TEXT:
            text = "<masked>" if text else ""
        elif name == "Stream" and text:
            decoded = base64.b64decode(text)
            text = "<host-specific>" if host_specific_streams else repr(decoded)
        here = f"{path}/{node.tag}"
        lines.append(f"{here} {sorted(attrs.items())} {text!r}")
        for child in node:
            walk(child, here)

    walk(root, "")
    return lines


def stdout_of(xml: bytes) -> bytes:
    root = ET.fromstring(xml)
    return b"".join(
        base64.b64decode(n.text or "") for n in root.iter(f"{{{wsman.NS_RSP}}}Stream") if n.get("Name") == "stdout"
    )


def ids_in(xml: bytes) -> list[str]:
    """Shell and command ids a response hands out, in document order."""
    root = ET.fromstring(xml)
    found: list[str] = []
    for node in root.iter():
        if local(node.tag) in ("ShellId", "CommandId") and node.text:
            found.append(node.text.strip())
    return found


Send = Callable[[bytes], bytes]


def direct_sender() -> Send:
    service = wsman.WinRSService(BuiltinHost(Path(".")))
    caller = wsman.Caller(
        user=USER, client_ip="192.168.56.1", address="http://192.168.56.11:5985/wsman", machine="192.168.56.11"
    )

    def send(request: bytes) -> bytes:
        status, reply = service.handle(request, caller)
        assert (status == 500) == (b"<s:Fault>" in reply), "faults, and only faults, are HTTP 500"
        return reply

    send.service = service  # type: ignore[attr-defined]
    return send


def https_sender(sim: SimServer) -> Send:
    session = requests.Session()
    session.auth = (USER, PASSWORD)

    def send(request: bytes) -> bytes:
        # verify= per request: a session-level one loses to REQUESTS_CA_BUNDLE from the environment.
        response = session.post(
            sim.https_url,
            data=request,
            headers={"Content-Type": "application/soap+xml;charset=UTF-8"},
            timeout=30,
            verify=sim.ca_cert,
        )
        assert response.status_code in (200, 500), response.text
        assert (response.status_code == 500) == (b"<s:Fault>" in response.content)
        assert "SIMULATED" in response.headers["Server"]
        return response.content

    send.service = sim.server.service  # type: ignore[attr-defined]
    return send


def replay(path: Path, send: Send) -> None:
    messages = load(path)
    recorded_kb = re.search(r"envelope_size_(\d+)", path.name)
    if recorded_kb:
        # Replay against a host configured like the recorded one.
        send.service.max_envelope_kb = int(recorded_kb.group(1))  # type: ignore[attr-defined]
        # The recorded server (pypsrp's test host) had raised MaxShellsPerUser and MaxProcessesPerShell from
        # Windows' defaults of 30 and 25.
        send.service.max_shells_per_user = 2147483647  # type: ignore[attr-defined]
        send.service.max_processes_per_shell = 2147483647  # type: ignore[attr-defined]
    id_map: dict[str, str] = {}
    set_env: dict[str, str] = {}
    for index, message in enumerate(messages):
        request_text = message["request"]
        for old, new in TIME_SCALE.items():
            request_text = request_text.replace(old, new)
        for recorded_id, sim_id in id_map.items():
            request_text = request_text.replace(recorded_id, sim_id)
        request = request_text.encode("utf-8")
        recorded = message["response"].encode("utf-8")
        got = send(request)
        where = f"{path.name} message {index}"

        # Ids: fresh, well-formed, and RelatesTo names the request.
        got_root, req_root = ET.fromstring(got), ET.fromstring(request)
        relates = got_root.findtext(f".//{{{wsman.NS_A}}}RelatesTo")
        assert relates == req_root.findtext(f".//{{{wsman.NS_A}}}MessageID"), where
        message_id = got_root.findtext(f".//{{{wsman.NS_A}}}MessageID") or ""
        assert UUID_RE.match(message_id), where
        assert message_id != relates, where
        for recorded_id, sim_id in zip(ids_in(recorded), ids_in(got), strict=True):
            assert UUID_RE.match(sim_id), where
            id_map[recorded_id] = sim_id

        if "<rsp:Environment>" in request_text:
            set_env = {
                (n.get("Name") or "").replace("\\", ""): n.text or ""
                for n in req_root.iter(f"{{{wsman.NS_RSP}}}Variable")
            }
        host_specific = b"ReceiveResponse" in recorded and messages_run_set(messages, index)
        assert declared_namespaces(got) == declared_namespaces(recorded), where
        assert flatten(got, host_specific) == flatten(recorded, host_specific), where
        if host_specific:
            listing = stdout_of(got).decode("utf-8")
            for name, value in set_env.items():
                assert f"{name}={value}\r\n" in listing, where


def messages_run_set(messages: list[dict[str, str]], index: int) -> bool:
    """Whether the command this Receive reads is ``cmd.exe /c set`` (host-specific output)."""
    return any("<rsp:Arguments>set</rsp:Arguments>" in m["request"] for m in messages[:index])


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_recording_direct(path: Path) -> None:
    replay(path, direct_sender())


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_recording_over_https(path: Path, sim: SimServer) -> None:
    replay(path, https_sender(sim))


def test_recordings_are_present() -> None:
    assert len(FILES) >= 15, f"expected the WinRM recordings in {RECORDINGS}"


# --- envelope behaviour the recordings do not show -------------------------


def envelope(
    action: str, body: str, shell_id: str | None = None, max_size: int = 153600, timeout: str = "PT5S"
) -> bytes:
    selector = f'<w:SelectorSet><w:Selector Name="ShellId">{shell_id}</w:Selector></w:SelectorSet>' if shell_id else ""
    return (
        f'<s:Envelope xmlns:s="{wsman.NS_S}" xmlns:a="{wsman.NS_A}" xmlns:w="{wsman.NS_W}" xmlns:rsp="{wsman.NS_RSP}">'
        f"<s:Header><a:Action>{action}</a:Action><a:MessageID>uuid:{uuid.uuid4()}</a:MessageID>"
        f"<w:MaxEnvelopeSize>{max_size}</w:MaxEnvelopeSize><w:OperationTimeout>{timeout}</w:OperationTimeout>"
        f"<w:ResourceURI>{wsman.RESOURCE_CMD}</w:ResourceURI>{selector}</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


class BigOutputHost:
    def __init__(self, size: int) -> None:
        self.size = size

    def start(self, request: Any) -> Any:
        from devhost.builtin_commands import ScriptedProcess, exit_with, out

        if request.command == "big":
            return ScriptedProcess([out("".join(chr(65 + i % 26) for i in range(self.size))), exit_with(7)])
        return start_builtin(request)


def test_receive_never_exceeds_max_envelope_size() -> None:
    service = wsman.WinRSService(BigOutputHost(20000))
    caller = wsman.Caller("vagrant", "127.0.0.1", "http://127.0.0.1/wsman", "127.0.0.1")
    _, created = service.handle(envelope(wsman.ACTION_CREATE, "<rsp:Shell/>"), caller)
    shell_id = ids_in(created)[0]
    _, started = service.handle(
        envelope(wsman.ACTION_COMMAND, "<rsp:CommandLine><rsp:Command>big</rsp:Command></rsp:CommandLine>", shell_id),
        caller,
    )
    command_id = ids_in(started)[0]
    receive = (
        f'<rsp:Receive><rsp:DesiredStream CommandId="{command_id}">stdout stderr</rsp:DesiredStream></rsp:Receive>'
    )
    collected, replies, state = b"", 0, ""
    while not state.endswith("Done"):
        status, reply = service.handle(envelope(wsman.ACTION_RECEIVE, receive, shell_id, max_size=4000), caller)
        assert status == 200
        assert len(reply) <= 4000
        collected += stdout_of(reply)
        replies += 1
        node = ET.fromstring(reply).find(f".//{{{wsman.NS_RSP}}}CommandState")
        assert node is not None
        state = node.get("State", "")
    assert collected == "".join(chr(65 + i % 26) for i in range(20000)).encode()
    assert replies > 5
    assert ET.fromstring(reply).findtext(f".//{{{wsman.NS_RSP}}}ExitCode") == "7"


def test_envelope_too_small_for_any_output_is_a_fault() -> None:
    service = wsman.WinRSService(BigOutputHost(100))
    caller = wsman.Caller("vagrant", "127.0.0.1", "http://127.0.0.1/wsman", "127.0.0.1")
    _, created = service.handle(envelope(wsman.ACTION_CREATE, "<rsp:Shell/>"), caller)
    shell_id = ids_in(created)[0]
    _, started = service.handle(
        envelope(wsman.ACTION_COMMAND, "<rsp:CommandLine><rsp:Command>big</rsp:Command></rsp:CommandLine>", shell_id),
        caller,
    )
    receive = (
        f'<rsp:Receive><rsp:DesiredStream CommandId="{ids_in(started)[0]}">stdout</rsp:DesiredStream></rsp:Receive>'
    )
    status, reply = service.handle(envelope(wsman.ACTION_RECEIVE, receive, shell_id, max_size=600), caller)
    assert status == 500
    assert b'Code="2150858790"' in reply


@pytest.mark.parametrize(
    ("action", "body", "code"),
    [
        (wsman.NS_X + "/Enumerate", "", b'Code="2150858771"'),
        (
            wsman.ACTION_RECEIVE,
            '<rsp:Receive><rsp:DesiredStream CommandId="X">stdout</rsp:DesiredStream></rsp:Receive>',
            b'Code="2150858843"',
        ),
        (wsman.ACTION_DELETE, "", b'Code="2150858843"'),
    ],
)
def test_bad_requests_are_faults(action: str, body: str, code: bytes) -> None:
    service = wsman.WinRSService(BuiltinHost(Path(".")))
    caller = wsman.Caller("vagrant", "127.0.0.1", "http://127.0.0.1/wsman", "127.0.0.1")
    status, reply = service.handle(envelope(action, body, shell_id="0000-UNKNOWN"), caller)
    assert status == 500
    assert code in reply
    assert b"<a:Action>http://schemas.dmtf.org/wbem/wsman/1/wsman/fault</a:Action>" in reply


def test_unknown_shell_fault_names_the_shell() -> None:
    service = wsman.WinRSService(BuiltinHost(Path(".")))
    caller = wsman.Caller("vagrant", "127.0.0.1", "http://127.0.0.1/wsman", "127.0.0.1")
    status, reply = service.handle(envelope(wsman.ACTION_DELETE, "", shell_id="ABC-123"), caller)
    assert status == 500
    assert b"ShellId ABC-123" in reply
    assert b"w:InvalidSelectors" in reply


def test_malformed_xml_is_a_fault() -> None:
    service = wsman.WinRSService(BuiltinHost(Path(".")))
    caller = wsman.Caller("vagrant", "127.0.0.1", "http://127.0.0.1/wsman", "127.0.0.1")
    status, reply = service.handle(b"<not-xml", caller)
    assert status == 500
    assert b"w:InvalidBody" in reply


def test_put_max_envelope_size_then_get() -> None:
    service = wsman.WinRSService(BuiltinHost(Path(".")))
    caller = wsman.Caller("vagrant", "127.0.0.1", "http://127.0.0.1/wsman", "127.0.0.1")

    def config(action: str, body: str) -> bytes:
        text = envelope(action, body).decode().replace(wsman.RESOURCE_CMD, wsman.RESOURCE_CONFIG)
        status, reply = service.handle(text.encode(), caller)
        assert status == 200, reply
        return reply

    put = f'<cfg:Config xmlns:cfg="{wsman.NS_CFG}"><cfg:MaxEnvelopeSizekb>8192</cfg:MaxEnvelopeSizekb></cfg:Config>'
    assert b"PutResponse" in config(wsman.ACTION_PUT, put)
    assert b"<cfg:MaxEnvelopeSizekb>8192</cfg:MaxEnvelopeSizekb>" in config(wsman.ACTION_GET, "")

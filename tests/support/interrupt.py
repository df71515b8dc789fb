"""Interrupting a run of the real CLI at a point chosen by what the simulated hosts saw (issue 11, §3).

A point is "after the N-th WinRM request the estate's hosts journaled" (every HTTP request to any of them,
devhost/server.py), not a time: the same N falls at the same stage of the same run on any machine, so a list
of N spread over a whole run covers it from start to end whatever the machine's speed.

The run is ``python -m stackrun`` in a process of its own (tests/support/stackrun_child.py) and in a session
of its own, so that everything it starts (the ``pulumi`` CLI, the provider plugin the CLI starts) can be found
again by its session id and nothing else is ever signalled. Only the ``pulumi`` process is signalled, as
``kill -INT <pid>`` then ``kill -KILL <pid>`` would: SIGINT asks the CLI to cancel (it stops starting
operations and waits for the running ones), SIGKILL ends it at once, with the running operations still
pending in the state and its lock file left in the backend.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from tests.support.estate import EstateProject, SimulatedEstate
from tests.support.hosts import ROOT

# Names a run leaves behind only while it is in progress: the settings file's new content before the swap
# ('.<name>.<hex>.tmp', providers/settings_file/scripts/_common.ps1), the owners file's ('<path>.tmp',
# providers/scripting/ps/_owners.ps1), an upload ('upload-<sha256>.partial', _upload.ps1) and the runtime
# archive's swap folders (providers/runtime_archive/scripts/_staging.ps1).
TEMPORARY_SUFFIXES = (".tmp", ".partial")
TEMPORARY_NAMES = (".iac-new", ".iac-old")
# The provider plugin outlives a killed CLI only until its operations in flight end (providers/dynamic_server.py
# watch_engine, at most ORPHAN_GRACE_S); what is still there later is killed, and counted.
ORPHAN_WAIT_S = 35.0


class RequestCounter:
    """Counts the WinRM requests the estate's hosts journal from now on, reading only what was appended."""

    def __init__(self, estate: SimulatedEstate, hosts: list[str] | None = None) -> None:
        states = estate_states(estate, hosts)
        self._journals = [self._journal(state) for state in states]
        self._offsets = [path.stat().st_size if path.exists() else 0 for path in self._journals]
        self.count = 0

    @staticmethod
    def _journal(state: Path) -> Path:
        return state / "_sim" / "journal.jsonl"

    def update(self) -> int:
        for index, path in enumerate(self._journals):
            if not path.exists():
                continue
            with path.open("rb") as handle:
                handle.seek(self._offsets[index])
                data = handle.read()
            whole = data[: data.rfind(b"\n") + 1]  # a line still being written is counted next time
            self._offsets[index] += len(whole)
            self.count += whole.count(b'"kind": "request"')
        return self.count


def estate_states(estate: SimulatedEstate, names: list[str] | None = None) -> list[Path]:
    states = []
    for name, host in estate.hosts.items():
        if names is not None and name not in names:
            continue
        assert host.state_dir is not None
        states.append(host.state_dir)
    return states


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, pgrp, session, ...)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _arguments(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def session_processes(session: int) -> list[int]:
    """Every live process of ``session`` (the run's own session: started by this test, nothing else)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and fields[3] == str(session) and fields[0] not in ("Z", "X"):
                found.append(int(entry.name))
    return found


@dataclass
class Interruption:
    """What happened to one interrupted run."""

    point: int  # the request after which SIGINT was sent
    grace_s: float
    signals: list[str] = field(default_factory=list)  # ["SIGINT"] or ["SIGINT", "SIGKILL"]
    exit_code: int | None = None  # stackrun's (the CLI's, or 128 + the signal)
    output: str = ""
    requests_at_end: int = 0
    leftovers: int = 0  # processes of the run's session that had to be killed: still there ORPHAN_WAIT_S later

    @property
    def killed(self) -> bool:
        return "SIGKILL" in self.signals


def start_run(project: EstateProject, *argv: str) -> tuple[subprocess.Popen[bytes], Path]:
    """``python -m stackrun <argv> --stack <stack>`` on ``project``, in a new session; (process, its log)."""
    if not project.stack_file.exists():
        project.write()
    project.runs += 1
    log = project.root / f"run{project.runs}.txt"
    env = {
        **os.environ,
        "PULUMI_BACKEND_URL": f"file://{project.backend}",
        "PULUMI_CONFIG_PASSPHRASE": project.passphrase,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.stackrun_child",
                str(project.project),
                *argv,
                "--stack",
                project.stack,
            ],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return process, log


def _pulumi_of(process: subprocess.Popen[bytes], deadline: float) -> int | None:
    """The pid of the ``pulumi`` CLI running the verb for ``process`` (None once ``process`` has ended without
    one): the one given the inline program's address (``--client=``, stackrun/engine.py), not the short
    ``pulumi stack init`` that may come before it."""
    while time.monotonic() < deadline and process.poll() is None:
        for pid in session_processes(process.pid):
            fields = _stat(pid)
            arguments = _arguments(pid)
            if (
                fields is not None
                and fields[1] == str(process.pid)
                and arguments  # empty while a child is between fork and exec, or a zombie
                and Path(arguments[0]).name == "pulumi"
                and any(a.startswith("--client=") for a in arguments)
            ):
                return pid
        time.sleep(0.01)
    return None


def interrupt_up(project: EstateProject, point: int, grace_s: float, *, timeout_s: float = 120) -> Interruption:
    """``up`` on ``project``; SIGINT to its ``pulumi`` after the ``point``-th request, SIGKILL ``grace_s`` later
    if it still runs. Waits for the run's processes to end (the provider plugin outlives a killed CLI until
    its operation in flight is answered) and ends those still there after that, by pid."""
    counter = RequestCounter(project.estate)
    process, log = start_run(project, "up")
    result = Interruption(point, grace_s)
    deadline = time.monotonic() + timeout_s
    try:
        pulumi = _pulumi_of(process, deadline)
        assert pulumi is not None, f"no pulumi process started:\n{log.read_text(errors='replace')}"
        while counter.update() < point:
            assert process.poll() is None, (
                f"the run ended after {counter.count} requests, before point {point}:\n"
                + log.read_text(errors="replace")
            )
            assert time.monotonic() < deadline, f"point {point} not reached in {timeout_s}s"
            time.sleep(0.005)
        os.kill(pulumi, signal.SIGINT)
        result.signals.append("SIGINT")
        grace_end = time.monotonic() + grace_s
        while _alive(pulumi) and time.monotonic() < grace_end:
            time.sleep(0.01)
        if _alive(pulumi):
            os.kill(pulumi, signal.SIGKILL)
            result.signals.append("SIGKILL")
        result.exit_code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
        result.leftovers = _end_session(process.pid, wait_s=ORPHAN_WAIT_S)
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the run's own process group: a failed test leaves nothing
            process.wait(timeout=10)
    result.output = log.read_text(encoding="utf-8", errors="replace")
    result.requests_at_end = counter.update()
    return result


def _end_session(session: int, *, wait_s: float) -> int:
    """Let the run's remaining processes end on their own for ``wait_s``, then SIGKILL each (by pid); how many
    had to be killed."""
    deadline = time.monotonic() + wait_s
    while session_processes(session) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = session_processes(session)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(left)


# -- what a run may leave on a host ----------------------------------------------------------------------


def temporary_files(estate: SimulatedEstate) -> list[str]:
    """Files and folders of the hosts' disks (not the simulator's own ``_sim``) a run leaves only mid-way."""
    found = []
    for state in estate_states(estate):
        for path in state.rglob("*"):
            if "_sim" in path.relative_to(state).parts[:1]:
                continue
            if path.name.endswith(TEMPORARY_SUFFIXES) or path.name in TEMPORARY_NAMES:
                found.append(str(path.relative_to(state.parent)))
    return sorted(found)


def settings_files(estate: SimulatedEstate) -> dict[str, bytes]:
    """Every JSON and XML settings file on the hosts' disks (appsettings*.json, web.config, the owners files),
    by host and path, with its content."""
    found = {}
    for name, host in estate.hosts.items():
        state = host.state_dir
        assert state is not None
        for path in state.rglob("*"):
            if (
                path.is_file()
                and path.suffix.lower() in (".json", ".config")
                and path.relative_to(state).parts[0] != "_sim"
            ):
                found[f"{name}:{path.relative_to(state)}"] = path.read_bytes()
    return found


def broken_settings_files(files: dict[str, bytes]) -> list[str]:
    """The files of ``files`` that do not parse as a whole (JSON, or XML for .config)."""
    broken = []
    for key, content in files.items():
        try:
            if key.lower().endswith(".json"):
                json.loads(content.decode("utf-8-sig"))
            else:
                ElementTree.fromstring(content)
        except (ValueError, ElementTree.ParseError):
            broken.append(key)
    return broken

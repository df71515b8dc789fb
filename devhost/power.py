"""SIMULATOR: the simulated machine restarting (Restart-Computer -Force), and what its next start completes.

``restart(state_dir)`` is what the operating system does after ``Restart-Computer -Force`` returned: a moment later
(``GRACE_S``: the command's own answer still gets out) the machine goes down for ``restart_seconds`` (knob, default
2): the WinRM service is gone with every shell and process (the server drops every connection meanwhile), then the
machine starts again: a new boot time (Win32_OperatingSystem.LastBootUpTime), the volatile registry keys gone
(the hives were unloaded), the file renames Windows Installer
scheduled for the start done (PendingFileRenameOperations), pending feature changes completed, WAS starting every
pool and site that starts automatically (autoStart / serverAutoStart), and the service control manager every service
whose start type is Automatic. The state is written at once; only the server's unavailability takes time.
"""

from __future__ import annotations

import calendar
import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from devhost import features, iis, installers, scm
from devhost.hooks import Knobs, sim_dir

GRACE_S = 0.3
FIRST_BOOT = "2024-01-01T06:00:00Z"


def _file(state_dir: Path) -> Path:
    return sim_dir(state_dir) / "power.json"


def _load(state_dir: Path) -> dict[str, Any]:
    path = _file(state_dir)
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    return data


def boot_time(state_dir: Path) -> str:
    """LastBootUpTime, as the scripts format it (ISO 8601, UTC)."""
    return str(_load(state_dir).get("boot_time", FIRST_BOOT))


def status(state_dir: Path) -> tuple[int, bool]:
    """(restarts so far, whether the machine is down right now)."""
    data = _load(state_dir)
    now = time.time()
    return int(data.get("restarts", 0)), float(data.get("down_from", 0)) <= now < float(data.get("down_until", 0))


def started_again(state_dir: Path) -> bool:
    """Whether the last restart is over (the machine is up again after being down)."""
    data = _load(state_dir)
    return bool(data) and time.time() >= float(data.get("down_until", 0))


def restart(state_dir: Path) -> None:
    seconds = float(Knobs(sim_dir(state_dir) / "knobs.json").read().get("restart_seconds", 2))
    data = _load(state_dir)
    start = time.time() + GRACE_S
    data.update(
        restarts=int(data.get("restarts", 0)) + 1,
        down_from=start,
        down_until=start + seconds,
        boot_time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + seconds)),
    )
    _save(state_dir, data)
    _start_again(state_dir)


def admin_restart(state_dir: Path) -> None:
    """Out of band (tests, admin CLI): the operator restarted the machine; it is up again with a new boot time."""
    data = _load(state_dir)
    # Later than the boot time it had, also for two restarts within one second.
    data["boot_time"] = time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(max(time.time(), _epoch(boot_time(state_dir)) + 1))
    )
    _save(state_dir, data)
    _start_again(state_dir)


def _save(state_dir: Path, data: dict[str, Any]) -> None:
    path = _file(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data), encoding="utf-8")
    os.replace(temporary, path)


def _epoch(text: str) -> float:
    return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))


def _start_again(state_dir: Path) -> None:
    iis.clear_volatile_keys(state_dir)  # the hives were unloaded at shutdown
    installers.complete_restart(state_dir)
    features.admin_restart(state_dir)
    if iis.is_installed(state_dir):
        # WAS comes back at boot before any pool (W3SVC starts Automatic and depends on it), and it is WAS that
        # starts the autoStart pools: an administrator's earlier `net stop WAS` does not outlive the reboot
        # (review-archive6 V2; learn.microsoft.com "IIS Application Pool Availability").
        for name in ("WAS", "W3SVC"):
            service = scm.get(state_dir, name)
            if service is not None and service.state == "Stopped":
                scm.start(state_dir, name)
        manager = iis.ServerManager(state_dir)
        for name in manager.pool_names():
            pool = manager.find_pool(name)
            if pool is not None:
                manager.start_pool(name) if manager.pool_value(pool, "autoStart") == "true" else manager.stop_pool(name)
        for name in manager.site_names():
            site = manager.find_site(name)
            if site is None or site.get("serverAutoStart", "true") != "true":
                manager.stop_site(name)
                continue
            try:
                manager.start_site(name)
            except iis.IisError:
                manager.stop_site(name)  # a binding another site holds: it stays stopped, as after any start
    for name in scm.service_names(state_dir):
        service = scm.get(state_dir, name)
        if service is None or service.system:
            continue
        scm.stop(state_dir, name)
        if service.start_mode == "Auto":
            with contextlib.suppress(scm.ScmError):  # it fails to start, as at boot (event 7000 in the System log)
                scm.start(state_dir, name)

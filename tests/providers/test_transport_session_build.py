"""Sessions are built one at a time: requests' proxy lookup is not thread-safe.

requests.utils.set_environ sets os.environ["no_proxy"] and deletes it again around the lookup
that Session.merge_environment_settings (called by pywinrm's build_session) makes; two threads
building at once let one delete the key the other then deletes, and the operation fails with
KeyError 'no_proxy' (seen in a refresh of the local estate).
"""

from __future__ import annotations

import threading

import pytest
import requests
from winrm.transport import Transport

from providers.scripting.runner import POWERSHELL, ScriptRef, bootstrap_arguments, encode_request, loop_preamble
from providers.transport import channel as channel_module
from providers.transport.connection import HostConnection
from providers.transport.session import WinRMSession
from tests.support.hosts import Target

GET = ScriptRef("providers.settings_file", "get")
PAYLOAD = {"path": "C:\\x.json", "content": "", "encoding": "utf-8", "keep_backup": True, "readers": None}


def test_every_session_is_built_under_the_build_lock(simulated: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    original = Transport.build_session
    built: list[bool] = []

    def checked(self: Transport) -> requests.Session:
        if self.session is None:
            built.append(channel_module.SESSION_BUILD.locked())
        return original(self)

    monkeypatch.setattr(Transport, "build_session", checked)
    conn = HostConnection.model_validate(simulated.connection)
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            session = WinRMSession(conn)  # each its own channel: two connections built at once
            session.request(POWERSHELL, bootstrap_arguments(), encode_request(GET, PAYLOAD), preamble=loop_preamble())
            session.close()
        except BaseException as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=open_one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert built and all(built), built

"""Sessions are built one at a time: requests' proxy lookup is not thread-safe.

requests.utils.set_environ sets os.environ["no_proxy"] and deletes it again around the lookup
that Session.merge_environment_settings (called by pywinrm's build_session) makes; two threads
building at once let one delete the key the other then deletes, and the operation fails with
KeyError 'no_proxy' (seen in a refresh of the local estate).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import requests
from winrm.transport import Transport

from providers.transport import session as session_module
from providers.transport.connection import HostConnection
from tests.support.hosts import Target


def test_every_session_is_built_under_the_build_lock(simulated: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    original = Transport.build_session
    built: list[bool] = []

    def checked(self: Transport) -> requests.Session:
        if self.session is None:
            built.append(session_module._SESSION_BUILD.locked())
        return original(self)

    monkeypatch.setattr(Transport, "build_session", checked)
    conn = HostConnection.model_validate({**simulated.connection, "max_shells": 4})
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            shell: Any = session_module._Shell(conn)
            shell.close()
        except BaseException as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=open_one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert built and all(built), built

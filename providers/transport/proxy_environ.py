"""requests' proxy lookup made safe for threads that build sessions at once.

requests.utils.set_environ sets os.environ["no_proxy"] and deletes it again around the lookup that
Session.merge_environment_settings makes (pywinrm's build_session passes no_proxy="*" when no proxy is
configured): two threads building sessions at once let one delete the key the other then deletes, and
the operation fails with KeyError 'no_proxy' (seen in a refresh of the local estate). Holding a lock for
the whole of pywinrm's build_session would also serialise the NTLM handshake it performs (three round
trips per connection), so every host would connect one after another; the lock is held only around the
environment change, by wrapping set_environ, which should_bypass_proxies looks up at call time.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import requests.utils

ENVIRON_LOCK = threading.RLock()
_original = requests.utils.set_environ


@contextlib.contextmanager
def _locked_set_environ(env_name: str, value: str | None) -> Iterator[None]:
    with ENVIRON_LOCK, _original(env_name, value):  # type: ignore[arg-type]
        yield


def install() -> None:
    """Idempotent: wrap requests.utils.set_environ once."""
    if requests.utils.set_environ is not _locked_set_environ:
        requests.utils.set_environ = _locked_set_environ

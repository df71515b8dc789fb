"""A dynamic provider whose ``check`` returns only once ``parties`` checks of its ``group`` run at the same time.

For tests of the provider server's worker threads: with fewer threads than parties, the checks that got a
thread wait until ``timeout`` and then fail, and so do the ones after them. The provider process imports this
module by name (dill pickles the class by reference), so it holds no state but the barriers.
"""

from __future__ import annotations

import threading
from typing import Any

from pulumi.dynamic import CheckFailure, CheckResult, ResourceProvider

_barriers: dict[tuple[str, int], threading.Barrier] = {}
_lock = threading.Lock()


class BarrierProvider(ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        key = (str(news["group"]), int(news["parties"]))
        with _lock:
            barrier = _barriers.setdefault(key, threading.Barrier(key[1]))
        try:
            barrier.wait(timeout=float(news["timeout"]))
        except threading.BrokenBarrierError:
            return CheckResult(news, [CheckFailure("parties", f"fewer than {key[1]} checks ran at once")])
        return CheckResult(news, [])

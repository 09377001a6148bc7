"""The one fake clock for every test that injects time (pytest plugin).

``FakeClock`` is a clock and a sleeper in one, since dapctl takes both as parameters: call it
(``clock=fake``) or pass ``fake.clock``; ``fake.sleep`` records each wait in ``sleeps`` and
moves the clock on by it (then calls ``on_sleep`` with the number of sleeps so far, so a test
can act at the Nth wait); ``tick`` moves the clock without a sleep (the emulator's jobs, URLs
and tokens age that way). ``utc`` reads the same instant as an aware datetime, for code whose
clock returns one (``MemoryLeases``, standing in for a database's ``now()``). It is
thread-safe: a client's worker threads may share one. The ``fake`` fixture gives one starting
at ``T0``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

T0 = 1_900_000_000.0


class FakeClock:
    """A clock that moves only when told (``sleep``, ``tick`` or setting ``now``)."""

    def __init__(self, now: float = T0, *, on_sleep: Callable[[int], object] | None = None) -> None:
        self.now = now
        self.sleeps: list[float] = []
        self.on_sleep = on_sleep
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def clock(self) -> float:
        return self()

    def utc(self) -> datetime:
        return datetime.fromtimestamp(self(), tz=UTC)

    def tick(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds
            count = len(self.sleeps)
        if self.on_sleep is not None:
            self.on_sleep(count)  # outside the lock: it may read the clock


@pytest.fixture
def fake() -> FakeClock:
    return FakeClock()

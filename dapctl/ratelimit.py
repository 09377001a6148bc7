"""Client-side request budgets, so a large apply stays inside DAP's published per-client limits.

DAP allows each client 5 job creations or table listings, 500 job status or schema calls and
200 object URL calls a minute, and counts them over a sliding window. ``RateLimiter`` keeps
the same books on our side: at most ``capacity`` sends in any ``span`` seconds, where the
span is one window (scaled up when the budget is below one call per window). Each
``acquire()`` reserves the earliest slot that keeps the promise, in arrival order (first
come, first served), then sleeps until it; no thread ever waits longer than the budget
requires. Slots are spaced by a small safety margin because the server timestamps arrivals,
which trail our send times by the request latency. ``RateLimits`` holds the three limiters
of one profile; share it among every thread that works for that profile.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from dapctl.config import RateLimitSettings

log = logging.getLogger("dapctl.ratelimit")

#: safety margin per window: 1 s a minute covers request latency to a distant region
MARGIN_FRACTION = 1.0 / 60.0


class RateLimiter:
    """A thread-safe sliding-window limiter: a log of the last ``capacity`` send times."""

    def __init__(
        self,
        per_minute: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        window: float = 60.0,
        margin: float | None = None,
        name: str = "requests",
    ) -> None:
        if per_minute <= 0 or window <= 0:
            raise ValueError("a rate limit needs a positive budget and window")
        # A budget like 2.5/min becomes 2 sends per 48 s: never more, on any window.
        self.capacity = max(1, math.floor(per_minute))
        self.span = window * self.capacity / per_minute
        self.margin = window * MARGIN_FRACTION if margin is None else margin
        self.name = name
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        # The times of the latest sends, reserved ones included; only the oldest of the
        # last ``capacity`` decides when the next may go, so older ones fall off.
        self._sends: deque[float] = deque(maxlen=self.capacity)

    def __repr__(self) -> str:
        return f"RateLimiter({self.name!r}, {self.capacity} per {self.span:g} s)"

    def reserve(self) -> float:
        """Claims the next free slot and returns its time on the limiter's clock."""
        with self._lock:
            now = self._clock()
            slot = now
            if len(self._sends) == self.capacity:
                slot = max(slot, self._sends[0] + self.span + self.margin)
            if self._sends:
                slot = max(slot, self._sends[-1])  # keep the log ordered: FIFO
            self._sends.append(slot)
            return slot - now

    def acquire(self) -> float:
        """Blocks until a send is allowed; returns the seconds waited (0.0 if none)."""
        wait = self.reserve()
        if wait > 0:
            log.info("%s: client-side rate limit, waiting %.1f s", self.name, wait)
            self._sleep(wait)
        return wait


@dataclass(frozen=True)
class RateLimits:
    """One profile's limiters, one per endpoint class the server budgets separately."""

    jobs: RateLimiter  # job creation and table listing
    status: RateLimiter  # job status and table schema
    urls: RateLimiter  # object URL requests

    @classmethod
    def from_settings(
        cls,
        settings: RateLimitSettings,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        window: float = 60.0,
    ) -> RateLimits:
        def make(per_minute: float, name: str) -> RateLimiter:
            return RateLimiter(per_minute, clock=clock, sleep=sleep, window=window, name=name)

        return cls(
            jobs=make(settings.jobs_per_minute, "jobs"),
            status=make(settings.status_per_minute, "status"),
            urls=make(settings.urls_per_minute, "urls"),
        )

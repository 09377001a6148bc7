"""Client-side request budgets, so a large apply stays inside DAP's published per-client limits.

DAP allows each client 5 job creations or table listings, 500 job status or schema calls and
200 object URL calls a minute, and counts them over a sliding window. ``RateLimiter`` keeps
the same books on our side: at most ``capacity`` sends in any ``span`` seconds, where the
span is one window (scaled up when the budget is below one call per window). Each send
reserves the earliest slot that keeps the promise, in arrival order (first come, first
served), and no thread waits longer than the budget requires.

The server counts a request when it arrives, which we cannot see; we can see when its answer
came back, which is later. So a send used through ``slot()`` is booked at the moment its
answer arrived, and a later send that depends on it (the one ``capacity`` places on) waits
for that answer plus the span. Whatever the latency, two sends ``capacity`` apart then reach
the server at least a span apart; only a small margin remains, for the server's own
processing. ``RateLimits`` holds the three limiters of one profile; share it among every
thread that works for that profile.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from dapctl.config import RateLimitSettings

log = logging.getLogger("dapctl.ratelimit")

#: margin per window, for the time the server takes between counting a request and answering
MARGIN_FRACTION = 0.1 / 60.0


class _Send:
    """One send in the log: booked at its slot, then at its answer once that came back."""

    __slots__ = ("answered", "at")

    def __init__(self, at: float) -> None:
        self.at = at
        self.answered = threading.Event()


class RateLimiter:
    """A thread-safe sliding-window limiter: a log of the last ``capacity`` sends."""

    def __init__(
        self,
        per_minute: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        window: float = 60.0,
        margin: float | None = None,
        name: str = "requests",
        on_wait: Callable[[float], None] | None = None,
    ) -> None:
        if per_minute <= 0 or window <= 0:
            raise ValueError("a rate limit needs a positive budget and window")
        # A budget like 2.5/min becomes 2 sends per 48 s: never more, on any window.
        self.capacity = max(1, math.floor(per_minute))
        self.span = window * self.capacity / per_minute
        self.margin = window * MARGIN_FRACTION if margin is None else margin
        self.name = name
        self._on_wait = on_wait  # told of every wait, e.g. to show it as progress
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        # Only the send ``capacity`` places back decides when the next may go.
        self._sends: deque[_Send] = deque(maxlen=self.capacity)

    def __repr__(self) -> str:
        return f"RateLimiter({self.name!r}, {self.capacity} per {self.span:g} s)"

    def _reserve(self) -> tuple[_Send, _Send | None, float]:
        with self._lock:
            now = self._clock()
            slot = now
            anchor = self._sends[0] if len(self._sends) == self.capacity else None
            if anchor is not None:
                slot = max(slot, anchor.at + self.span + self.margin)
            if self._sends:
                slot = max(slot, self._sends[-1].at)  # keep the log ordered: FIFO
            send = _Send(slot)
            self._sends.append(send)
            return send, anchor, slot - now

    def reserve(self) -> float:
        """Claims the next free slot, booked at its own time; returns the wait until it."""
        send, _, wait = self._reserve()
        send.answered.set()
        return wait

    def acquire(self) -> float:
        """Blocks until a send is allowed; returns the seconds waited (0.0 if none)."""
        wait = self.reserve()
        self._wait(wait)
        return wait

    @contextlib.contextmanager
    def slot(self) -> Iterator[float]:
        """Wait for a slot, send inside the block; the send is booked when the block ends.

        Yields the seconds waited.
        """
        send, anchor, wait = self._reserve()
        try:
            waited = self._wait(wait)
            if anchor is not None:
                # The send we are anchored on is booked at its answer, which may have come (or
                # may yet come) after we reserved: wait for it, then for the span after it.
                anchor.answered.wait()
                waited += self._wait(anchor.at + self.span + self.margin - self._clock())
            yield waited
        finally:
            with self._lock:
                send.at = max(send.at, self._clock())
            send.answered.set()

    def _wait(self, seconds: float) -> float:
        if seconds <= 0:
            return 0.0
        log.info(
            "%s: client-side rate limit, waiting %.1f s",
            self.name,
            seconds,
            extra={"event": "rate_limit_wait"},
        )
        if self._on_wait is not None:
            self._on_wait(seconds)
        self._sleep(seconds)
        return seconds


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
        on_wait: Callable[[float], None] | None = None,
    ) -> RateLimits:
        def make(per_minute: float, name: str) -> RateLimiter:
            return RateLimiter(
                per_minute, clock=clock, sleep=sleep, window=window, name=name, on_wait=on_wait
            )

        return cls(
            jobs=make(settings.jobs_per_minute, "jobs"),
            status=make(settings.status_per_minute, "status"),
            urls=make(settings.urls_per_minute, "urls"),
        )

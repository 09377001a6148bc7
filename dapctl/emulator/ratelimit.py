"""Server-side rate limits: a sliding window per (client id, endpoint class).

Endpoint classes are the real service's independent limits, named as the client names its
budgets (``dapctl.budgets.BUDGETS``: ``jobs``, ``job_status``, ``tables``, ``schema``,
``urls``). `RateLimiter.hit`
records a call and returns None when it is allowed, or the whole number of seconds (at least
1) until the oldest call in the window leaves it, for the 429's ``Retry-After``. A refused
call does not use up quota. Time comes from the injected clock.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable

from dapctl.budgets import BUDGETS
from dapctl.emulator.settings import RateLimits

ENDPOINT_CLASSES = tuple(budget.name for budget in BUDGETS)


class RateLimiter:
    """Thread-safe sliding-window counters; ``limits=None`` allows everything."""

    def __init__(self, limits: RateLimits | None, clock: Callable[[], float]) -> None:
        self.limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        self._calls: dict[tuple[str, str], deque[float]] = {}

    def hit(self, client_id: str, endpoint_class: str) -> int | None:
        """Count one call; None if allowed, else seconds to wait before retrying."""
        if self.limits is None:
            return None
        limit, window = self.limits.limit(endpoint_class), self.limits.window
        now = self._clock()
        with self._lock:
            calls = self._calls.setdefault((client_id, endpoint_class), deque())
            while calls and calls[0] <= now - window:
                calls.popleft()
            if len(calls) >= limit:
                return max(1, math.ceil(calls[0] + window - now))
            calls.append(now)
            return None

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()

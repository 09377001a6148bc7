"""Client-side request budgets, so a large apply stays inside DAP's published per-client limits.

DAP allows each client so many calls a minute per endpoint class (``dapctl.budgets``: 5
job creations, 500 job status calls, ...), independent budgets counted over a sliding
window. ``RateLimiter`` keeps the same books on our side: at most ``capacity`` sends in any
``span`` seconds, where the span is one window (scaled up when the budget is below one call
per window). Each send reserves the earliest slot that keeps the promise, in arrival order
(first come, first served), and no thread waits longer than the budget requires.

The server counts a request when it arrives, which we cannot see; we can see when its answer
came back, which is later. So a send used through ``slot()`` is booked at the moment its
answer arrived, and a later send that depends on it (the one ``capacity`` places on) waits
for that answer plus the span. Whatever the latency, two sends ``capacity`` apart then reach
the server at least a span apart; only a small margin remains, for the server's own
processing. A send the server refused with 429 was not counted there, so it is taken out of
the books (``Slot.refused``): it costs the ``Retry-After`` the server asked for, no more.
``RateLimits`` holds one profile's limiters, one per budget; share it among every thread
that works for that profile.

A wait is announced once per episode, not per thread: the first wait that begins while no
other wait of the limiter is under way logs ``univ_a: waiting 48 s for a job slot:
jobs_per_minute = 5`` (event ``rate_limit_wait``), and the waits that begin before that
episode ends join it silently. The record is a warning when the wait is long enough to look
like a hang (a second apply within a minute waits ~50 s for job slots), else info; the
command line makes it info while its live progress shows the wait (``cli.logs``).

Across processes and machines, a ``SendLedger`` (a shared state backend's: ``state.pg_sends``)
keeps the books for every worker using one credential: ``RateLimits.share`` hands it to
every limiter, and each send then takes its place there instead, with the same rules, and is
settled there when its answer arrives (or removed, for a 429).
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

from dapctl.budgets import BUDGETS, BY_NAME, Budget, RateLimitSettings

log = logging.getLogger("dapctl.ratelimit")

#: margin per window, for the time the server takes between counting a request and answering
MARGIN_FRACTION = 0.1 / 60.0
#: a wait at least this long is announced as a warning: silence that long looks like a hang
NOTICEABLE_WAIT = 5.0
WAIT_EVENT = "rate_limit_wait"


class SendLedger(Protocol):
    """Sends booked where every process using a credential sees them."""

    def reserve(self, key: str, capacity: int, span: float) -> tuple[int | None, float]:
        """Book a send under ``key`` at the earliest moment that leaves at most ``capacity``
        sends in any ``span`` seconds, after every send booked before it; its booking and
        the seconds until then. ``None`` and a pause: nothing booked yet (the send it must
        follow is still unanswered), ask again after the pause."""
        ...

    def settle(self, send: int, *, refused: bool) -> None:
        """Its answer arrived now: book it then, or, ``refused`` (a 429), not at all."""
        ...


class _Send:
    """One send in the log: booked at its slot, then at its answer once that came back."""

    __slots__ = ("answered", "at")

    def __init__(self, at: float) -> None:
        self.at = at
        self.answered = threading.Event()


class Slot:
    """A send's place in the books, as ``RateLimiter.slot`` yields it."""

    def __init__(self) -> None:
        self.waited = 0.0
        self.was_refused = False

    def refused(self) -> None:
        """The server refused the send (429): it used none of the server's budget."""
        self.was_refused = True


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
        purpose: str | None = None,
        profile: str | None = None,
    ) -> None:
        if per_minute <= 0 or window <= 0:
            raise ValueError("a rate limit needs a positive budget and window")
        # A budget like 2.5/min becomes 2 sends per 48 s: never more, on any window.
        self.capacity = max(1, math.floor(per_minute))
        self.span = window * self.capacity / per_minute
        self.margin = window * MARGIN_FRACTION if margin is None else margin
        self.name = name
        # What a wait is for, as its announcement says it, and whose budget it is.
        self.purpose = purpose or f"a {name} slot: {per_minute:g} a minute"
        self.profile = profile
        self._episode_ends = -math.inf  # when the waits under way now are all over
        self._on_wait = on_wait  # told of every wait, e.g. to show it as progress
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        # Only the send ``capacity`` places back decides when the next may go.
        self._sends: deque[_Send] = deque(maxlen=self.capacity)
        self._shared: tuple[SendLedger, str] | None = None  # the books kept there instead

    def share(self, ledger: SendLedger, key: str) -> None:
        """Keep the books in ``ledger`` instead, under ``key``, with every other process's."""
        self._shared = (ledger, key)

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

    def recent(self, *, offset: float) -> list[float]:
        """The booked sends still inside the span, as wall-clock times (``offset`` turns
        this limiter's clock into the wall clock)."""
        with self._lock:
            horizon = self._clock() - self.span - self.margin
            return [s.at + offset for s in self._sends if s.answered.is_set() and s.at > horizon]

    def seed(self, sends: list[float], *, offset: float) -> None:
        """Book sends another process made (wall-clock times), before this one sends."""
        with self._lock:
            horizon = self._clock() - self.span - self.margin
            booked = sorted({*(t - offset for t in sends), *(s.at for s in self._sends)})
            self._sends.clear()
            for at in booked:
                if at > horizon:
                    send = _Send(at)
                    send.answered.set()
                    self._sends.append(send)

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
    def slot(self) -> Iterator[Slot]:
        """Wait for a slot, send inside the block; the send is booked when the block ends,
        unless the block calls ``refused()`` on what it is given (a 429: not counted)."""
        if self._shared is not None:
            with self._shared_slot(*self._shared) as held:
                yield held
            return
        send, anchor, wait = self._reserve()
        held = Slot()
        try:
            held.waited = self._wait(wait)
            if anchor is not None:
                # The send we are anchored on is booked at its answer, which may have come (or
                # may yet come) after we reserved: wait for it, then for the span after it.
                anchor.answered.wait()
                more = anchor.at + self.span + self.margin - self._clock()
                held.waited += self._wait(more, continued=held.waited > 0)
            yield held
        finally:
            with self._lock:
                send.at = max(send.at, self._clock())
                if held.was_refused and send in self._sends:
                    self._sends.remove(send)
            send.answered.set()

    @contextlib.contextmanager
    def _shared_slot(self, ledger: SendLedger, key: str) -> Iterator[Slot]:
        """The ledger keeps the books alone, this process's sends with the others': one set
        of books, so a send held back there is not held back again here."""
        held = Slot()
        while True:
            booked, wait = ledger.reserve(key, self.capacity, self.span + self.margin)
            if booked is not None:
                break
            self._sleep(wait)  # the send it must follow is still in flight
            held.waited += wait
        held.waited += self._wait(wait)
        try:
            yield held
        finally:
            try:
                ledger.settle(booked, refused=held.was_refused)
            except Exception as exc:  # it stays booked, unanswered: the ledger's rules hold
                log.warning("%s: %s", self.name, exc)

    def _wait(self, seconds: float, *, continued: bool = False) -> float:
        """Sleep ``seconds``; ``continued``: this thread's wait goes on (no new episode)."""
        if seconds <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            begins_episode = not continued and now >= self._episode_ends
            self._episode_ends = max(self._episode_ends, now + seconds)
        if begins_episode:
            self._announce(seconds)
        if self._on_wait is not None:
            self._on_wait(seconds)
        self._sleep(seconds)
        return seconds

    def _announce(self, seconds: float) -> None:
        level = logging.WARNING if seconds >= NOTICEABLE_WAIT else logging.INFO
        whose = f"{self.profile}: " if self.profile else ""
        log.log(
            level,
            "%swaiting %d s for %s",
            whose,
            max(1, round(seconds)),
            self.purpose,
            extra={"event": WAIT_EVENT, "seconds": round(seconds, 3), "budget": self.name},
        )


class RateLimits:
    """One profile's limiters, one per row of ``budgets.BUDGETS`` (an endpoint class the
    server budgets separately), read by name: ``limits.job_status`` or ``limits["urls"]``."""

    def __init__(self, limiters: Mapping[str, RateLimiter]) -> None:
        if set(limiters) != set(BY_NAME):
            raise ValueError(f"one limiter per budget: {sorted(BY_NAME)}")
        self._limiters = dict(limiters)

    def __getitem__(self, name: str) -> RateLimiter:
        return self._limiters[name]

    def __getattr__(self, name: str) -> RateLimiter:
        try:
            return self.__dict__["_limiters"][name]  # type: ignore[no-any-return]
        except KeyError:
            raise AttributeError(f"no rate-limit budget named {name!r}") from None

    def share(self, ledger: SendLedger, credential: str) -> None:
        """Keep these budgets with every other process's for ``credential`` in ``ledger``."""
        for name, limiter in self.by_name().items():
            limiter.share(ledger, f"{credential}:{name}")

    def by_name(self) -> dict[str, RateLimiter]:
        return dict(self._limiters)

    @classmethod
    def from_settings(
        cls,
        settings: RateLimitSettings,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        window: float = 60.0,
        on_wait: Callable[[float], None] | None = None,
        profile: str | None = None,
    ) -> RateLimits:
        def make(budget: Budget) -> RateLimiter:
            per_minute = settings.per_minute(budget)
            return RateLimiter(
                per_minute,
                clock=clock,
                sleep=sleep,
                window=window,
                name=budget.label,
                on_wait=on_wait,
                purpose=f"{budget.slot}: {budget.key} = {per_minute:g}",
                profile=profile,
            )

        return cls({budget.name: make(budget) for budget in BUDGETS})

"""What an apply reports while it runs: a stream of ``StepEvent``s, one per change of phase.

A step is ``queued`` when apply schedules it, ``waiting`` while its request waits for a
client-side rate-limit slot, ``starting`` while its query job is being created, ``running``
each time a poll sees the job's status, ``downloading`` as its parts arrive (``bytes`` so
far), and ``finished`` with its result's status; a ``tables = "all"`` step ends ``listed``
once its tables are planned. Events feed the terminal progress display and the logs; they
carry no secret. ``StepContext`` remembers which step a worker thread is serving, so log
records raised deep in the client (a rate-limit wait, a retry) can be tied to its address.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

Phase = Literal["queued", "waiting", "starting", "running", "downloading", "listed", "finished"]

#: the loggers whose records come from a step's worker thread
STEP_LOGGERS = (
    "dapctl.apply",
    "dapctl.auth",
    "dapctl.client",
    "dapctl.collect",
    "dapctl.ratelimit",
    "dapctl.retry",
)
RATE_LIMIT_LOGGER = "dapctl.ratelimit"


@dataclass(frozen=True)
class StepEvent:
    address: str
    phase: Phase
    status: str | None = None  # running: the job's status; finished: the step's status
    job_id: str | None = None
    bytes: int = 0  # downloading: bytes written so far
    seconds: float | None = None  # waiting: how long the wait is


EventSink = Callable[[StepEvent], None]


def ignore(event: StepEvent) -> None:
    """The default sink: nobody is watching."""


class StepContext(logging.Filter):
    """Which step each worker thread serves; a logging filter that stamps it on records.

    Installed on ``STEP_LOGGERS`` for one apply, it adds ``address`` (and ``event`` for the
    rate limiter's waits) to records from that apply's threads; ``waited``, the limiters'
    hook, turns each rate-limit wait into a ``waiting`` event. Filters of one apply ignore
    other applies' threads.
    """

    def __init__(self, sink: EventSink) -> None:
        super().__init__()
        self._sink = sink
        self._local = threading.local()

    @property
    def address(self) -> str | None:
        return getattr(self._local, "address", None)

    @contextmanager
    def serving(self, address: str) -> Iterator[None]:
        previous, self._local.address = self.address, address
        try:
            yield
        finally:
            self._local.address = previous

    def filter(self, record: logging.LogRecord) -> bool:
        address = self.address
        if address is None:
            return True
        if getattr(record, "address", None) is None:
            record.address = address
        if record.name == RATE_LIMIT_LOGGER:
            record.event = "rate_limit_wait"
        return True

    def waited(self, seconds: float) -> None:
        """The rate limiters' hook: the step this thread serves waits for a slot."""
        address = self.address
        if address is not None:
            self._sink(StepEvent(address, "waiting", seconds=seconds))

    @contextmanager
    def installed(self) -> Iterator[None]:
        loggers = [logging.getLogger(name) for name in STEP_LOGGERS]
        for logger in loggers:
            logger.addFilter(self)
        try:
            yield
        finally:
            for logger in loggers:
                logger.removeFilter(self)

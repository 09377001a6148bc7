"""What an apply reports while it runs: a stream of ``StepEvent``s, one per change of phase.

A step is ``queued`` when apply schedules it, ``waiting`` for ``seconds`` while its request
waits for a client-side rate-limit slot, ``starting`` while its query job is being created,
``running`` each time a poll sees the job's status, ``retrying`` for ``seconds`` while a
failed call backs off (``detail`` says why: a 429, a 503, a cut download),
``downloading`` as its parts arrive (``bytes`` so far, ``parts`` done of ``part_count``),
and ``finished`` with its result's status; a ``tables = "all"`` step ends ``listed`` once
its tables are planned. Events feed the terminal progress display and the logs; they carry
no secret. ``StepContext`` remembers which step a worker is serving (a context variable), so
log records raised deep in the client (a rate-limit wait, a retry) carry its address, and
the retry policy's hooks (``retrying``, ``rode_out``) reach the step's events and its count
of transient errors ridden out without being passed down through every layer.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

Phase = Literal[
    "queued", "waiting", "starting", "running", "retrying", "downloading", "listed", "finished"
]


@dataclass(frozen=True)
class StepEvent:
    address: str
    phase: Phase
    status: str | None = None  # running: the job's status; finished: the step's status
    job_id: str | None = None
    bytes: int = 0  # downloading: bytes written so far
    seconds: float | None = None  # waiting, retrying: how long the wait is
    detail: str | None = None  # retrying: why the last attempt failed
    parts: int = 0  # downloading: parts complete
    part_count: int | None = None  # downloading: the job's parts


EventSink = Callable[[StepEvent], None]


def ignore(event: StepEvent) -> None:
    """The default sink: nobody is watching."""


_SERVING: contextvars.ContextVar[str | None] = contextvars.ContextVar("dapctl_step", default=None)
_CONTEXT: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar(
    "dapctl_step_context", default=None
)


class _StepAddress:
    """``record.address``: the step served when the record was made, unless the call's own
    ``extra`` names one (a non-data descriptor, so the record's own attribute wins)."""

    def __get__(self, record: object, owner: type | None = None) -> str | None:
        return getattr(record, "_dapctl_step", None)


class _StepRecord(logging.LogRecord):
    address = _StepAddress()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._dapctl_step = _SERVING.get()


def _tagging(factory: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    """A log record factory whose dapctl records carry the address of the step served."""

    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        if _SERVING.get() is None or not str(args[0] if args else "").startswith("dapctl"):
            return factory(*args, **kwargs)
        return _StepRecord(*args, **kwargs)

    make.dapctl_tagging = True  # type: ignore[attr-defined]
    return make


if not getattr(logging.getLogRecordFactory(), "dapctl_tagging", False):
    logging.setLogRecordFactory(_tagging(logging.getLogRecordFactory()))


def serving_step() -> str | None:
    """The address of the step this thread (or task) is serving, if any."""
    return _SERVING.get()


class StepContext:
    """Which step each worker serves, and the rate limiters' and retries' hooks for one apply.

    ``serving(address)`` sets a context variable for the work done inside it; every dapctl
    log record created meanwhile carries that ``address``, whichever module logs it (no list
    of loggers to keep). ``waited``, the limiters' hook, turns each rate-limit wait into a
    ``waiting`` event of the step that waits; the module's ``retrying`` and ``rode_out`` do
    the same for the retry policy, and ``transient_errors`` counts what each step rode out.
    Work started in another thread carries the address along when it is submitted with
    ``contextvars.copy_context().run``.
    """

    def __init__(self, sink: EventSink) -> None:
        self._sink = sink
        self._lock = threading.Lock()
        self._transient: Counter[str] = Counter()

    @property
    def address(self) -> str | None:
        return _SERVING.get()

    @contextmanager
    def serving(self, address: str) -> Iterator[None]:
        token, context = _SERVING.set(address), _CONTEXT.set(self)
        try:
            yield
        finally:
            _CONTEXT.reset(context)
            _SERVING.reset(token)

    def waited(self, seconds: float) -> None:
        """The rate limiters' hook: the step this thread serves waits for a slot."""
        address = self.address
        if address is not None:
            self._sink(StepEvent(address, "waiting", seconds=seconds))

    def transient_errors(self, address: str) -> int:
        """How many failed attempts the calls of ``address`` retried and then got past."""
        with self._lock:
            return self._transient[address]

    def _rode_out(self, address: str, count: int) -> None:
        with self._lock:
            self._transient[address] += count


def retrying(seconds: float, reason: str) -> None:
    """The retry policy's hook: the step served backs off ``seconds`` after ``reason``."""
    context, address = _CONTEXT.get(), _SERVING.get()
    if context is not None and address is not None:
        context._sink(StepEvent(address, "retrying", seconds=seconds, detail=reason))


def rode_out(count: int) -> None:
    """The retry policy's hook: a call of the step served succeeded after ``count`` failures."""
    context, address = _CONTEXT.get(), _SERVING.get()
    if context is not None and address is not None:
        context._rode_out(address, count)

"""Per-step leases: how many workers share one state without doing a step twice.

A backend that supports workers (``PostgresStateStore.leases()``) gives a ``Leases``. A
worker ``claim``s a step address for ``ttl`` seconds and gets a ``Lease`` carrying a fencing
token that only grows, or ``None`` while another worker's lease is live (unexpired and not
released), or when another worker finished that step after ``since``: the start of this
worker's round, which ``begin`` gives (when the round the orchestrator named began, or the
earliest start of the workers running when this one signed on, else now), so a step done
in this round is not redone by a worker that planned it earlier or started later. Claims
take one short statement and the backend's clock, never the worker's. The holder
``heartbeat``s (it is still running; every lease it holds is extended and the tokens it
still holds come back), ``release``s each lease when done, marking the step finished or
not, and signs off with ``end``.

A claimed step's state is read back with ``read_step`` (what an earlier holder recorded,
such as a pending job to resume) and written only with ``write_step``, which lands only
while the lease is still live and carries the worker's token, in one statement; otherwise
nothing is written and ``FencedError`` says the lease was lost. ``check`` asks the same
before anything is published. So a worker that froze or lost the network and wakes after
its lease expired writes nothing more for that step, whoever took it over.

``memory_leases`` holds the in-process implementation, for tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from dapctl.errors import StateError
from dapctl.state.model import StepState
from dapctl.text import format_time

LOST = "lease lost: another worker took this step over"


class FencedError(StateError):
    """This worker's lease on a step expired or was taken over: it writes nothing more."""

    def __init__(self, address: str) -> None:
        super().__init__(
            f"{address}: {LOST} (or its lease expired first); nothing more of this worker's "
            "is published for it",
            hint="a worker that freezes longer than lease_seconds loses its steps; whoever "
            "took the step over finishes it",
        )


@dataclass(frozen=True)
class Lease:
    address: str
    worker: str
    token: int  # the fencing token: a later claim of any step always gets a larger one
    expires: datetime  # by the backend's clock


@dataclass(frozen=True)
class Holder:
    """Who has (or last had) a step's lease, by the backend's clock."""

    worker: str
    expires: datetime | None
    finished: datetime | None  # when its holder released it done, if it did
    live: bool  # unexpired and not released

    def describe(self) -> str:
        if self.live:
            until = format_time(self.expires, timespec="seconds") if self.expires else "?"
            return f"claimed by another worker ({self.worker}), its lease running until {until}"
        if self.finished is not None:
            at = format_time(self.finished, timespec="seconds")
            return f"finished by another worker ({self.worker}) at {at}, in this round"
        return f"released unfinished by another worker ({self.worker})"


class Leases(Protocol):
    def begin(self, worker: str, ttl: float, *, round: str | None = None) -> datetime:
        """Make the backend ready for workers (tables, the state's record) and sign
        ``worker`` on; the start of its round, by the backend's clock: when the ``round``
        so named began (its first worker signed on), or without a name the earliest start
        of the workers still running (heartbeat seen within ``ttl``), else now."""
        ...

    def end(self, worker: str) -> None:
        """Sign ``worker`` off."""
        ...

    def claim(
        self, address: str, worker: str, ttl: float, *, since: datetime | None = None
    ) -> Lease | None:
        """A new lease on ``address`` for ``ttl`` seconds, or None (see the module
        docstring); a live lease of ``worker``'s own is taken again, with a new token."""
        ...

    def holder(self, address: str) -> Holder | None: ...

    def live(self, addresses: Sequence[str]) -> set[str]:
        """Those of ``addresses`` a live lease holds now (whoever holds it)."""
        ...

    def read_step(self, address: str) -> StepState: ...

    def write_step(self, lease: Lease, step: StepState) -> None:
        """Record ``step`` for the lease's address if the lease is still this worker's and
        live; else ``FencedError`` and nothing written."""
        ...

    def check(self, lease: Lease) -> None:
        """``FencedError`` unless the lease is still this worker's and live."""
        ...

    def heartbeat(self, worker: str, ttl: float) -> set[int]:
        """``worker`` still runs: extend each of its live leases by ``ttl`` from now; the
        tokens extended."""
        ...

    def release(self, lease: Lease, *, finished: bool) -> None: ...


@runtime_checkable
class SupportsLeases(Protocol):
    """A ``StateStore`` whose steps workers can lease."""

    def leases(self) -> Leases: ...

"""Leases in memory: ``MemoryLeases``, the ``Leases`` contract over a ``MemoryBackend``.

Every store opened on one backend shares its leases and its workers, as workers share a
database; the clock is injectable, so tests let a lease expire without waiting for it. Step
records are written into the backend's serialised state, so a ``MemoryStateStore`` on the
same backend reads what a worker wrote. ``LeasedMemoryStore`` is a memory store that offers
these leases, for apply's tests of workers without a database.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dapctl.state.leases import FencedError, Holder, Lease
from dapctl.state.memory import MemoryBackend, MemoryStateStore
from dapctl.state.model import State, StepState, parse_state


@dataclass
class _Row:
    worker: str
    expires: datetime
    token: int
    finished: datetime | None = None


class MemoryLeases:
    """``Leases`` over a ``MemoryBackend``; ``clock`` is the backend's clock (for tests)."""

    _tokens = itertools.count(1)  # one sequence for every backend in the process

    def __init__(
        self, backend: MemoryBackend, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.backend = backend
        self.clock = clock or (lambda: datetime.now(UTC))
        # Every store opened on one backend shares its leases, as workers share a database.
        self._rows: dict[str, _Row] = backend.__dict__.setdefault("leases", {})
        # worker -> (its round's start, last seen)
        self._workers: dict[str, tuple[datetime, datetime]] = backend.__dict__.setdefault(
            "workers", {}
        )
        self._rounds: dict[str, datetime] = backend.__dict__.setdefault("rounds", {})

    def begin(self, worker: str, ttl: float, *, round: str | None = None) -> datetime:
        with self.backend.mutex:
            if self.backend.data is None:
                self.backend.data = State().to_bytes()
                self.backend.version += 1
            now, alive = self.clock(), timedelta(seconds=ttl)
            running = [start for start, seen in self._workers.values() if seen >= now - alive]
            self._workers[worker] = (min([now, *running]), now)
            if round is not None:
                return self._rounds.setdefault(round, now)
            return self._workers[worker][0]

    def end(self, worker: str) -> None:
        with self.backend.mutex:
            self._workers.pop(worker, None)

    def claim(
        self, address: str, worker: str, ttl: float, *, since: datetime | None = None
    ) -> Lease | None:
        with self.backend.mutex:
            now, row = self.clock(), self._rows.get(address)
            if row is not None and row.expires > now and row.worker != worker:
                return None
            if row is not None and _finished_since(row, since) and row.worker != worker:
                return None
            lease = Lease(address, worker, next(self._tokens), now + timedelta(seconds=ttl))
            self._rows[address] = _Row(worker, lease.expires, lease.token)
            return lease

    def holder(self, address: str) -> Holder | None:
        with self.backend.mutex:
            row = self._rows.get(address)
            if row is None:
                return None
            return Holder(row.worker, row.expires, row.finished, row.expires > self.clock())

    def live(self, addresses: Sequence[str]) -> set[str]:
        with self.backend.mutex:
            now = self.clock()
            return {a for a in addresses if (row := self._rows.get(a)) and row.expires > now}

    def _live(self, lease: Lease) -> bool:
        row = self._rows.get(lease.address)
        return row is not None and row.token == lease.token and row.expires > self.clock()

    def read_step(self, address: str) -> StepState:
        with self.backend.mutex:
            return self._state().step(address)

    def _state(self) -> State:
        data = self.backend.data
        return State() if data is None else parse_state(data, source="memory")

    def write_step(self, lease: Lease, step: StepState) -> None:
        with self.backend.mutex:
            if not self._live(lease):
                raise FencedError(lease.address)
            self.backend.data = self._state().with_step(lease.address, step).to_bytes()
            self.backend.version += 1

    def check(self, lease: Lease) -> None:
        with self.backend.mutex:
            if not self._live(lease):
                raise FencedError(lease.address)

    def heartbeat(self, worker: str, ttl: float) -> set[int]:
        with self.backend.mutex:
            now, kept = self.clock(), set()
            if worker in self._workers:
                self._workers[worker] = (self._workers[worker][0], now)
            for row in self._rows.values():
                if row.worker == worker and row.expires > now:
                    row.expires = now + timedelta(seconds=ttl)
                    kept.add(row.token)
            return kept

    def release(self, lease: Lease, *, finished: bool) -> None:
        with self.backend.mutex:
            if not self._live(lease):
                return  # an expired lease is left as it is: it finished nothing
            row, now = self._rows[lease.address], self.clock()
            row.expires, row.finished = now, now if finished else None


def _finished_since(row: _Row, since: datetime | None) -> bool:
    return since is not None and row.finished is not None and row.finished >= since


class LeasedMemoryStore(MemoryStateStore):
    """A memory store whose steps workers can lease (``MemoryLeases``)."""

    def __init__(
        self,
        backend: MemoryBackend | None = None,
        *,
        name: str = "memory",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(backend, name=name)
        self._leases = MemoryLeases(self.backend, clock=clock)

    def leases(self) -> MemoryLeases:
        return self._leases

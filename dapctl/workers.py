"""How one apply shares its state with other dapctl processes: alone, or as one of many workers.

``sharing_for(store, settings)`` chooses. A store without leases (the local file) gives
``Solo``: the store's lock for the whole run and a ``StateKeeper`` that writes the whole
state after every change, exactly as apply always did. A store with leases
(``SupportsLeases``: PostgreSQL) gives a ``Worker``: no run-long lock; each step is claimed
before it runs (``claim``: a fresh claim re-reads the step as stored, so apply re-plans it
and resumes a job a dead worker recorded), every change of the step goes through the lease's
fenced write (``LeasedKeeper``), every publication and removal of an output is checked
against the lease just before it happens (``FencedDestination``), and a heartbeat thread
extends the worker's leases every ``ttl / 3``. A lease the heartbeat finds gone is marked
lost at once. A step held by a live lease of another worker waits (``waiting``) until it is
finished by its holder or claimable (its holder died or froze); a step finished by another
worker since this worker's round began is reported, not redone. Units of work on one step (its job,
its collection, a follow-up queued meanwhile) share its lease, counted by ``hold`` and
``unit``, and the lease is released, finished, when the last ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from dapctl.config import Settings
from dapctl.fencing import FencedDestination, LeasedKeeper
from dapctl.outputs.destination import Destination
from dapctl.state import State, StateKeeper, StateStore, StepState
from dapctl.state.leases import FencedError, Lease, Leases, SupportsLeases
from dapctl.text import format_time

if TYPE_CHECKING:
    from dapctl.plan import Step

log = logging.getLogger("dapctl.workers")

Reread = Callable[[str, StepState], StepState]


@dataclass(frozen=True)
class Claim:
    """The outcome of claiming a step: this worker's (``stored``: the step as stored now,
    for a fresh claim), or another worker's (``held_by`` says whose; ``wait``: it may yet
    be released unfinished, so try again later)."""

    stored: StepState | None = None
    held_by: str | None = None
    wait: bool = False


OURS = Claim()


class Sharing(Protocol):
    def session(self, store: StateStore, *, timeout: float) -> AbstractContextManager[None]: ...

    def keeper(
        self, store: StateStore, state: State, *, mirror: Callable[[str, StepState], None]
    ) -> StateKeeper: ...

    def fenced(self, destinations: Callable[..., Destination]) -> Callable[..., Destination]: ...

    def claim(self, address: str) -> Claim: ...

    def hold(self, address: str) -> None: ...

    def unit(self, address: str) -> AbstractContextManager[None]: ...

    def wait_for(self, step: Step) -> None: ...

    def waiting(self, stop: threading.Event) -> list[Step]: ...


class Solo:
    """One apply at a time, under the store's lock: the behaviour of every local state."""

    def session(self, store: StateStore, *, timeout: float) -> AbstractContextManager[None]:
        return store.lock(timeout=timeout, command="dapctl apply")

    def keeper(
        self, store: StateStore, state: State, *, mirror: Callable[[str, StepState], None]
    ) -> StateKeeper:
        return StateKeeper(store, state, mirror=mirror)

    def fenced(self, destinations: Callable[..., Destination]) -> Callable[..., Destination]:
        return destinations

    def claim(self, address: str) -> Claim:
        return OURS

    def hold(self, address: str) -> None:
        pass

    def unit(self, address: str) -> AbstractContextManager[None]:
        return contextlib.nullcontext()

    def wait_for(self, step: Step) -> None:
        raise AssertionError("an apply alone never waits for another's step")

    def waiting(self, stop: threading.Event) -> list[Step]:
        return []


def sharing_for(
    store: StateStore,
    settings: Settings,
    *,
    reread: Reread | None = None,
    stop: threading.Event | None = None,
    round: str | None = None,
) -> Sharing:
    """``Worker`` for a store whose steps can be leased, else ``Solo``; ``stop`` is the
    apply's (set, the steps it held end unfinished), ``round`` the name of the round the
    orchestrator started it in (``DAPCTL_ROUND``), if any."""
    if isinstance(store, SupportsLeases):
        leases = store.leases()
        ttl = settings.lease_seconds
        return Worker(leases, ttl=ttl, reread=reread, stop=stop, round=round)
    return Solo()


def worker_name() -> str:
    """Unique among workers: two in one process (tests) differ by the suffix."""
    return f"pid {os.getpid()} on {socket.gethostname()} ({uuid.uuid4().hex[:6]})"


@dataclass
class _Held:
    lease: Lease
    count: int = 1  # units of work on the step still to end
    lost: bool = False
    unfinished: bool = False


class Worker:
    """One of many workers on a state whose steps it leases; see the module docstring."""

    def __init__(
        self,
        leases: Leases,
        *,
        ttl: float,
        name: str | None = None,
        heartbeat: float | None = None,
        reread: Reread | None = None,
        stop: threading.Event | None = None,
        round: str | None = None,
    ) -> None:
        self.leases = leases
        self.ttl = ttl
        self.name = name or worker_name()
        self.interval = ttl / 3 if heartbeat is None else heartbeat
        self.retry = min(max(ttl / 10, 0.2), 0.5)
        self.since: datetime | None = None
        self.round = round
        self._reread = reread or (lambda address, step: step)
        self._held: dict[str, _Held] = {}
        self._waiting: dict[str, Step] = {}
        self._lock = threading.RLock()
        self._keeper: LeasedKeeper | None = None
        self._stopping = threading.Event()
        # Stopped (Ctrl-C, SIGTERM), a step's work ends unfinished: free for others at once.
        self._stop = stop or threading.Event()

    # -- the run ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def session(self, store: StateStore, *, timeout: float) -> Iterator[None]:
        """The worker's run: its start by the backend's clock, heartbeats, and at the end the
        release of any lease still held (unfinished: another worker may take it at once)."""
        self.since = self.leases.begin(self.name, self.ttl, round=self.round)
        log.info(
            "worker %s starts, in the round %sbegun %s; leases last %g s",
            self.name,
            f"{self.round!r} " if self.round else "",
            format_time(self.since, timespec="seconds"),
            self.ttl,
        )
        beat = threading.Thread(target=self._beat, name="dapctl-heartbeat", daemon=True)
        beat.start()
        try:
            yield
        finally:
            self._stopping.set()
            beat.join(timeout=5)
            with self._lock:
                left = list(self._held.values())
                self._held.clear()
            for held in left:
                self._release(held, finished=False)
            with contextlib.suppress(Exception):  # its row goes stale by itself
                self.leases.end(self.name)

    def _beat(self) -> None:
        while not self._stopping.wait(self.interval):
            with self._lock:
                before = {a: h.lease.token for a, h in self._held.items() if not h.lost}
            try:
                kept = self.leases.heartbeat(self.name, self.ttl)
            except Exception as exc:  # a failed heartbeat must not end the thread
                log.warning("worker %s: heartbeat failed: %s", self.name, exc)
                continue
            for address, token in before.items():
                if token not in kept:
                    self._lose(address, token)

    def _lose(self, address: str, token: int) -> None:
        with self._lock:
            held = self._held.get(address)
            if held is None or held.lease.token != token or held.lost:
                return
            held.lost = True
        log.warning("%s: %s", address, FencedError(address).message, extra={"address": address})

    def keeper(
        self, store: StateStore, state: State, *, mirror: Callable[[str, StepState], None]
    ) -> StateKeeper:
        self._keeper = LeasedKeeper(store, state, write=self.write, mirror=mirror)
        return self._keeper

    def fenced(self, destinations: Callable[..., Destination]) -> Callable[..., Destination]:
        return lambda target: FencedDestination(destinations(target), self.check)

    # -- claims -----------------------------------------------------------------------------

    def claim(self, address: str) -> Claim:
        with self._lock:
            if address in self._held:
                return OURS  # a unit queued while the step was held (``hold`` counted it)
            lease = self.leases.claim(address, self.name, self.ttl, since=self.since)
            if lease is not None:
                self._held[address] = _Held(lease)
        if lease is None:
            return self._elsewhere(address)
        stored = self._reread(address, self.leases.read_step(address))
        if self._keeper is not None:
            self._keeper.refresh(address, stored)
        return Claim(stored=stored)

    def _elsewhere(self, address: str) -> Claim:
        holder = self.leases.holder(address)
        if holder is None:  # cannot be: leases are never deleted; try again
            return Claim(held_by="claimed by another worker", wait=True)
        # Only a step finished in this round is final; a lease that expired (or was released
        # unfinished) between the claim and this read is free now: try again.
        done = not holder.live and holder.finished is not None
        return Claim(held_by=holder.describe(), wait=not done)

    def hold(self, address: str) -> None:
        with self._lock:
            held = self._held.get(address)
            if held is not None:
                held.count += 1

    @contextlib.contextmanager
    def unit(self, address: str) -> Iterator[None]:
        try:
            yield
        except BaseException:
            self._done(address, finished=False)
            raise
        self._done(address, finished=True)

    def _done(self, address: str, *, finished: bool) -> None:
        with self._lock:
            held = self._held.get(address)
            if held is None:
                return
            held.count -= 1
            held.unfinished = held.unfinished or not finished or self._stop.is_set()
            if held.count > 0:
                return
            del self._held[address]
        self._release(held, finished=not held.unfinished)

    def _release(self, held: _Held, *, finished: bool) -> None:
        if held.lost:
            return
        try:
            self.leases.release(held.lease, finished=finished)
        except Exception as exc:  # it expires by itself
            log.warning("%s: cannot release its lease: %s", held.lease.address, exc)

    def wait_for(self, step: Step) -> None:
        with self._lock:
            self._waiting[step.address] = step

    def waiting(self, stop: threading.Event) -> list[Step]:
        """The steps other workers held, to claim again once their leases are no longer
        live (finished, released or expired: one query every ``retry`` seconds finds them);
        [] when none are left, or on ``stop``."""
        while True:
            with self._lock:
                addresses = list(self._waiting)
            if not addresses or stop.wait(self.retry):
                return []
            held = self.leases.live(addresses)
            with self._lock:
                free = [self._waiting.pop(a) for a in addresses if a not in held]
            if free:
                return free

    # -- fenced writes ----------------------------------------------------------------------

    def _live(self, address: str) -> Lease:
        with self._lock:
            held = self._held.get(address)
            if held is None or held.lost:
                raise FencedError(address)
            return held.lease

    def write(self, address: str, step: StepState) -> None:
        lease = self._live(address)
        try:
            self.leases.write_step(lease, step)
        except FencedError:
            self._lose(address, lease.token)
            raise

    def check(self, address: str) -> None:
        """``FencedError`` unless this worker still holds ``address``'s lease."""
        lease = self._live(address)
        try:
            self.leases.check(lease)
        except FencedError:
            self._lose(address, lease.token)
            raise

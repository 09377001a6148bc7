"""The lock of a state in a bucket: one object, created only if absent, naming its holder.

Taking the lock writes ``<prefix><namespace>/dapctl.state.lock`` only if absent
(``Objects.put``): of two processes, exactly one creates it. The object records the holder
(pid, host, since, command) and is rewritten every ``ttl / 4`` seconds while held (only if it
still has its own version), so its age, by the store's own clock, tells whether its holder
still runs: no process on any machine can release a lock when it is killed, so one not
renewed for ``ttl`` seconds is taken over with a warning naming the old holder (only if it
still has the stale version: one taker wins). Releasing deletes it if it is still this
holder's. ``force_unlock`` refuses a fresh lock unless forced. A holder whose lock was taken
over learns it at its next renewal or state write (``fence``) and writes nothing more.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from dapctl.errors import LockError
from dapctl.objects import Conflict, Objects
from dapctl.state.filelock import describe_holder
from dapctl.state.store import LockHolder
from dapctl.text import format_time

log = logging.getLogger("dapctl.lock")

TTL = 120.0  # seconds a lock stays fresh without renewal


class ObjectLock:
    def __init__(
        self,
        objects: Objects,
        key: str,
        *,
        location: str,
        ttl: float = TTL,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.objects, self.key, self.location, self.ttl = objects, key, location, ttl
        self._sleep, self._clock = sleep, clock
        self._version: str | None = None  # ours, while held
        self._lost: LockHolder | None = None
        self._renewing = threading.Event()
        self._mutex = threading.Lock()

    @contextmanager
    def held(self, *, timeout: float, command: str) -> Iterator[None]:
        holder: LockHolder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": format_time(datetime.now(UTC), timespec="seconds"),
            "command": command,
        }
        self._acquire(json.dumps(holder).encode(), timeout)
        self._lost = None
        renewer = threading.Thread(target=self._renew, args=(holder,), daemon=True)
        self._renewing.clear()
        renewer.start()
        try:
            yield
        finally:
            self._renewing.set()
            renewer.join()
            self._release()

    def _acquire(self, record: bytes, timeout: float) -> None:
        deadline = self._clock() + timeout
        while True:
            holder = self._try(record)
            if holder is None:
                return
            if self._clock() >= deadline:
                raise LockError(
                    f"{self.location}: the state is locked by {describe_holder(holder)}",
                    hint="wait for it to finish; if it was killed, its lock is taken over "
                    f"{self.ttl:.0f} s after its last renewal (or run dapctl force-unlock)",
                )
            self._sleep(min(1.0, max(0.0, deadline - self._clock())))

    def _try(self, record: bytes) -> LockHolder | None:
        """Take the lock (``None``), or say who holds it."""
        try:
            self._version = self.objects.put(self.key, record, if_absent=True)
            return None
        except Conflict:
            pass
        found = self.found()
        if found is None:
            return {}  # released in between: the next try takes it
        holder, version, stale = found
        if not stale:
            return holder
        try:
            self._version = self.objects.put(self.key, record, if_match=version)
        except Conflict:
            return holder  # another process took it over first
        log.warning("took over the state lock of %s, which is gone", describe_holder(holder))
        return None

    def found(self) -> tuple[LockHolder, str, bool] | None:
        """The lock's holder, its version token, and whether it is stale; ``None`` when unlocked."""
        got = self.objects.get(self.key)
        head = self.objects.head(self.key)
        if got is None or head is None or head.token != got[1]:
            return None if got is None else (_parse(got[0]), got[1], False)
        # By age alone: a pid says nothing across containers that share a host name.
        return _parse(got[0]), got[1], head.age > self.ttl

    def _renew(self, holder: LockHolder) -> None:
        record = json.dumps(holder).encode()
        while not self._renewing.wait(self.ttl / 4):
            with self._mutex:
                if self._version is None:
                    return
                try:
                    self._version = self.objects.put(self.key, record, if_match=self._version)
                except Conflict:
                    self._lost = (self.found() or ({}, "", False))[0]
                    self._version = None
                    log.error("%s: the state lock was taken over; writing no more", self.location)
                except Exception:  # a network blip: the next renewal tries again
                    log.warning("%s: could not renew the state lock", self.location, exc_info=True)

    def fence(self) -> None:
        """Refuse to go on if this holder's lock was taken over."""
        with self._mutex:
            if self._lost is None:
                return
            raise LockError(
                f"{self.location}: this apply's lock was taken over by "
                f"{describe_holder(self._lost)}; nothing more is written",
            )

    def _release(self) -> None:
        with self._mutex:
            version, self._version = self._version, None
        if version is not None:
            with contextlib.suppress(Conflict):  # taken over meanwhile: not ours to remove
                self.objects.delete(self.key, if_match=version)

    def force_unlock(self, *, force: bool) -> LockHolder | None:
        found = self.found()
        if found is None:
            return None
        holder, version, stale = found
        if not (stale or force):
            raise LockError(
                f"{self.location}: held by {describe_holder(holder)}, which is still running "
                f"(it renews its lock every {self.ttl / 4:.0f} s)",
                hint="to remove it anyway, add --force: the holder then writes nothing more",
            )
        try:
            self.objects.delete(self.key, if_match=version)
        except Conflict:
            raise LockError(f"{self.location}: the lock changed meanwhile; try again") from None
        return holder


def _parse(data: bytes) -> LockHolder:
    try:
        holder = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return {}
    return holder if isinstance(holder, dict) else {}

"""The PostgreSQL state's lock: a session advisory lock per namespace, and a row naming it.

Why a session advisory lock: the server drops it when the session ends, so a dapctl that
crashed, was killed or lost its machine never blocks the next one (the store's keepalives
have the server notice a vanished client within about a minute), and no lease needs
renewing while a long download runs. The store reads and writes through the session that
holds the lock, so a session ended by force is a dapctl fenced off: its next write fails.

Who holds it is a row in ``dapctl.state_locks`` (pid, host, command, ``since`` by the
database's clock, and the server session), written once the lock is taken and deleted as
it is released. A row whose session no longer holds the lock was left by a dapctl that died:
``lock_info`` still reports it (as a lock file left behind would be), the next ``lock``
takes it over with a warning naming the old holder, and ``force_unlock`` removes it.
``force_unlock`` refuses while a live session holds the lock, unless forced: then it ends
that session (``pg_terminate_backend``, which needs the same role or ``pg_signal_backend``)
and waits until the lock is free.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol

import psycopg

from dapctl.errors import LockError, StateError
from dapctl.state import pg_schema as q
from dapctl.state.filelock import describe_holder
from dapctl.state.store import LockHolder
from dapctl.text import format_time

log = logging.getLogger("dapctl.state")


class Session(Protocol):
    """What the lock needs of its store: one connection, and the namespace it guards."""

    @property
    def location(self) -> str: ...

    @property
    def namespace(self) -> str: ...

    @property
    def connected(self) -> bool: ...

    def transaction(
        self, doing: str, *, setup: bool = False
    ) -> AbstractContextManager[psycopg.Cursor[Any]]: ...

    def tables_exist(self) -> bool: ...


class NamespaceLock:
    def __init__(self, session: Session, *, sleep: Callable[[float], None]) -> None:
        self.session = session
        self.holding = False
        self._sleep = sleep

    @contextlib.contextmanager
    def held(self, *, timeout: float, command: str) -> Iterator[None]:
        where = self.session.location
        if self.holding:
            raise LockError(f"{where}: this dapctl process holds the state's lock already")
        deadline = time.monotonic() + timeout
        while not self._try_lock():
            if time.monotonic() >= deadline:
                raise LockError(
                    f"{where}: the state is locked by {describe_holder(self.info() or {})}",
                    hint="wait for it to finish, pass --lock-timeout SECONDS to wait, or, if "
                    "you are sure no dapctl is running, `dapctl force-unlock`",
                )
            self._sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        self.holding = True
        try:
            self._claim(command)
            yield
        finally:
            self.holding = False
            self._release()

    def _try_lock(self) -> bool:
        with self.session.transaction("cannot take the state's lock", setup=True) as cur:
            row = cur.execute(q.TRY_LOCK.encode(), (self.session.namespace,)).fetchone()
        return bool(row and row[0])

    def _claim(self, command: str) -> None:
        namespace = self.session.namespace
        with self.session.transaction("cannot record the lock's holder") as cur:
            left = cur.execute(q.HOLDER.encode(), (namespace,)).fetchone()
            cur.execute(q.CLAIM.encode(), (namespace, os.getpid(), socket.gethostname(), command))
        if left is not None:
            log.warning(
                "%s: taking over a lock left by %s, which is no longer running",
                self.session.location,
                describe_holder(_holder(left)),
            )

    def _release(self) -> None:
        if not self.session.connected:
            return  # the lost session took the lock with it; its row is taken over next time
        with (
            contextlib.suppress(StateError),
            self.session.transaction("cannot release the lock") as cur,
        ):
            cur.execute(q.RELEASE.encode(), (self.session.namespace,))
            cur.execute(q.UNLOCK.encode(), (self.session.namespace,))

    def info(self) -> LockHolder | None:
        holder, sessions = self._state()
        return holder if holder is not None or not sessions else {}

    def _state(self) -> tuple[LockHolder | None, list[int]]:
        """The recorded holder, and the server sessions holding the lock (this one aside)."""
        if not self.session.tables_exist():
            return None, []
        namespace = self.session.namespace
        with self.session.transaction("cannot read the state's lock") as cur:
            row = cur.execute(q.HOLDER.encode(), (namespace,)).fetchone()
            sessions = [pid for (pid,) in cur.execute(q.HOLDING.encode(), (namespace,))]
        return (_holder(row) if row is not None else None), sessions

    def force_unlock(self, *, force: bool) -> LockHolder | None:
        holder, sessions = self._state()
        if holder is None and not sessions:
            return None
        if sessions and not force:
            who = describe_holder(holder or {})
            raise LockError(
                f"{self.session.location}: held by {who}, which is still running",
                hint="let it finish or stop it; --force ends its database session, which "
                "frees the lock and keeps that dapctl from writing the state again",
            )
        with self.session.transaction("cannot remove the lock") as cur:
            for session in sessions:
                cur.execute(q.TERMINATE.encode(), (session,))
            cur.execute(q.FORGET_HOLDER.encode(), (self.session.namespace,))
        self._wait_until_free(sessions)
        return holder or {}

    def _wait_until_free(self, sessions: list[int], *, patience: float = 10.0) -> None:
        deadline = time.monotonic() + patience
        while sessions and self._state()[1]:
            if time.monotonic() >= deadline:
                raise LockError(
                    f"{self.session.location}: the server sessions {sessions} holding the "
                    f"lock did not end within {patience:g} s"
                )
            self._sleep(0.05)


def _holder(row: tuple[Any, ...]) -> LockHolder:
    pid, host, command, since, session = row
    return {
        "pid": pid,
        "host": host,
        "since": format_time(since, timespec="seconds"),
        "command": command,
        "session": session,
    }

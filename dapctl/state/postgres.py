"""State in PostgreSQL: the backend ``[settings] state = "postgresql://host/db"`` chooses.

A database holds any number of states, one per namespace (``[settings] state_namespace``,
by default the config file's name), as Terraform's workspaces share a backend: one row per
namespace and one per step address (``pg_schema`` has the layout), never one blob.

Reads take one statement, so they see one consistent state, and create nothing. A write is
one transaction: ``SELECT … FOR UPDATE`` on the namespace row compares its lineage and
serial with what this store last read or wrote (``SerialGuard``: a writer that read serial
N loses to one that wrote N+1 since; a foreign lineage is refused; so is a row a newer
dapctl wrote), then sets the new serial and upserts only the steps that changed, deleting
those removed; the first write inserts the row ``ON CONFLICT DO NOTHING``, so of two first
writers one loses too.

The lock is a session advisory lock held by this store's one connection, which every read
and write also uses: a crashed dapctl's lock goes with its connection (keepalives make the
server notice a vanished machine within about a minute), and a dapctl whose session was
ended by ``force_unlock(force=True)`` (``pg_terminate_backend``) can write nothing more.
``state_locks`` names the holder (pid, host, command, since by the database's clock, server
session); a row whose session is gone is a stale record, taken over with a warning. Many
workers on one namespace take no lock: ``leases()`` gives each step's lease instead, and
``send_ledger()`` the rate-limit budgets every worker shares (``pg_sends``). The
password comes only from libpq (``PGPASSWORD``, ``.pgpass``, a service file) or from the
URL in ``state_env``; every message shows the URL redacted and scrubs the password.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.json import Jsonb

from dapctl import __version__
from dapctl.errors import DatabaseError, StateConflictError, StateError
from dapctl.pg import connect_url, guarded, url_password
from dapctl.redaction import redact
from dapctl.state import pg_schema as q
from dapctl.state.backends import state_namespace
from dapctl.state.documents import PostgresDocuments
from dapctl.state.model import STATE_VERSION, State, StepState, parse_state
from dapctl.state.pg_leases import PgLeases
from dapctl.state.pg_lock import NamespaceLock
from dapctl.state.pg_sends import PgSendLedger
from dapctl.state.store import LockHolder, SerialGuard

if TYPE_CHECKING:
    from dapctl.loading import LoadedConfig

log = logging.getLogger("dapctl.state")

Cursor = psycopg.Cursor[Any]
UNREACHABLE_HINT = (
    "check that the server runs and this host may reach it; the password comes only from "
    "PGPASSWORD, ~/.pgpass or a service file (or the URL in state_env)"
)


class PostgresStateStore:
    def __init__(
        self, url: str, *, namespace: str, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._url = url
        self._secret = url_password(url)
        self.namespace = namespace
        self._lock = NamespaceLock(self, sleep=sleep)
        self._guard = SerialGuard(f"{redact(url)}#{namespace}")
        self._seen: dict[str, StepState] = {}
        self._conn: psycopg.Connection[Any] | None = None
        self._ready = False  # the tables exist (checked once per connection)
        self._mutex = threading.RLock()

    @property
    def location(self) -> str:
        return self._guard.location

    def __repr__(self) -> str:
        return f"PostgresStateStore({self.location!r})"

    def documents(self, kind: str) -> PostgresDocuments:
        return PostgresDocuments(self.transaction, self.namespace, kind, self.location)

    def close(self) -> None:
        with self._mutex:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # ------------------------------------------------------------------ connection

    @property
    def connected(self) -> bool:
        return self._conn is not None and not (self._conn.closed or self._conn.broken)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is not None and self.connected:
            return self._conn
        if self._lock.holding:
            raise self._lost_lock()
        try:
            conn = connect_url(self._url)
        except DatabaseError as exc:
            raise StateError(f"state {exc.message}", hint=UNREACHABLE_HINT) from None
        with self._guarded("cannot configure the session"):
            for statement in q.KEEPALIVES:
                conn.execute(statement.encode())
        weakref.finalize(self, conn.close)
        self._conn, self._ready = conn, False
        return conn

    @contextlib.contextmanager
    def _guarded(self, doing: str) -> Iterator[None]:
        try:
            with guarded(f"{self.location}: {doing}", self._secret):
                yield
        except DatabaseError as exc:
            if self._lock.holding and not self.connected:
                raise self._lost_lock() from None
            raise StateError(exc.message) from None

    def _lost_lock(self) -> StateError:
        return StateError(
            f"{self.location}: lost the database session that held the state's lock (the "
            "server ended it, or the network failed); nothing more is written",
            hint="another dapctl may hold the lock now; run the command again",
        )

    @contextlib.contextmanager
    def transaction(self, doing: str, *, setup: bool = False) -> Iterator[Cursor]:
        """One transaction on this store's connection; ``setup`` creates missing tables."""
        with self._mutex:
            conn = self._connection()
            with self._guarded(doing), conn.transaction(), conn.cursor() as cur:
                if setup and not self._ready:
                    _create_tables(cur)
                yield cur
            self._ready = self._ready or setup  # committed: the tables are there now

    def tables_exist(self) -> bool:
        if self._ready:
            return True
        with self.transaction("cannot look for the state's tables") as cur:
            row = cur.execute(q.EXISTING.encode()).fetchone()
        self._ready = row is not None and all(row)
        return self._ready

    # ------------------------------------------------------------------ read and write

    def read(self) -> State | None:
        state = self._read() if self.tables_exist() else None
        self._guard.saw(state, _token(state))
        self._seen = dict(state.steps) if state is not None else {}
        return state

    def _read(self) -> State | None:
        with self.transaction("cannot read the state") as cur:
            rows = cur.execute(q.READ.encode(), (self.namespace,)).fetchall()
        if not rows:
            return None
        version, serial, lineage = rows[0][:3]
        steps = {address: record for *_, address, record in rows if address is not None}
        raw = {"version": version, "serial": serial, "lineage": lineage, "steps": steps}
        return parse_state(json.dumps(raw).encode(), source=self.location)

    def write(self, state: State) -> None:
        with self.transaction("cannot write the state", setup=True) as cur:
            row = cur.execute(q.CURRENT.encode(), (self.namespace,)).fetchone()
            self._check(state, row)
            self._write_namespace(cur, state, row is None)
            changed, removed = self._diff(state.steps)
            if removed:
                cur.execute(q.DELETE_STEPS.encode(), (self.namespace, removed))
            if changed:
                cur.executemany(q.UPSERT_STEP.encode(), self._step_rows(state, changed))
        self._guard.saw(state, _token(state))
        self._seen = dict(state.steps)

    def _check(self, new: State, row: tuple[Any, ...] | None) -> None:
        if row is not None and row[2] > STATE_VERSION:
            raise StateError(
                f"{self.location}: written by a newer dapctl (state format version {row[2]}; "
                f"this dapctl writes {STATE_VERSION})",
                hint="upgrade dapctl; an older one must not rewrite a newer state",
            )
        token = (row[0], row[1]) if row is not None else None
        self._guard.check(new, token, lambda: None if row is None else _header(row))

    def _write_namespace(self, cur: Cursor, state: State, first: bool) -> None:
        if not first:
            values = (state.serial, state.version, _writer(), self.namespace)
            cur.execute(q.UPDATE_NAMESPACE.encode(), values)
            return
        row = (self.namespace, state.lineage, state.serial, state.version, _writer())
        if cur.execute(q.INSERT_NAMESPACE.encode(), row).fetchone() is None:
            # Another writer created the namespace since this one looked: compare with it.
            self._check(state, cur.execute(q.CURRENT.encode(), (self.namespace,)).fetchone())

    def _diff(self, steps: dict[str, StepState]) -> tuple[list[str], list[str]]:
        """Addresses whose record differs from what is stored, and those to delete."""
        seen = self._seen
        changed = [a for a, s in steps.items() if seen.get(a) is not s and seen.get(a) != s]
        return changed, [a for a in seen if a not in steps]

    def _step_rows(self, state: State, addresses: list[str]) -> list[tuple[Any, ...]]:
        return [
            (self.namespace, a, Jsonb(state.steps[a].model_dump(mode="json")), state.serial)
            for a in addresses
        ]

    def discard(self) -> None:
        """Delete the stored state whole, if it is still what this store last read."""
        with self.transaction("cannot delete the state", setup=True) as cur:
            row = cur.execute(q.CURRENT.encode(), (self.namespace,)).fetchone()
            if row is not None and (row[0], row[1]) != self._guard.token:
                raise StateConflictError(
                    f"{self.location}: the state changed since it was read (serial {row[1]} "
                    "is there now); nothing was deleted"
                )
            cur.execute(q.DELETE_NAMESPACE.encode(), (self.namespace,))
        self._guard.saw(None, None)
        self._seen = {}

    # ------------------------------------------------------------------ locking

    def lock(self, *, timeout: float, command: str) -> AbstractContextManager[None]:
        return self._lock.held(timeout=timeout, command=command)

    def lock_info(self) -> LockHolder | None:
        return self._lock.info()

    def force_unlock(self, *, force: bool) -> LockHolder | None:
        return self._lock.force_unlock(force=force)

    @contextlib.contextmanager
    def send_ledger(self) -> Iterator[PgSendLedger]:
        ledger = PgSendLedger(self._url)
        try:
            yield ledger
        finally:
            ledger.close()

    def leases(self) -> PgLeases:
        """Per-step leases, for many workers on this namespace (``pg_leases``)."""
        return PgLeases(self)


def _create_tables(cur: Cursor) -> None:
    row = cur.execute(q.EXISTING.encode()).fetchone()
    if row is None or not all(row):
        cur.execute(q.SETUP_LOCK.encode())
        cur.execute(q.CREATE.encode())


def _token(state: State | None) -> Hashable:
    return (state.lineage, state.serial) if state is not None else None


def _header(row: tuple[Any, ...]) -> State:
    """The stored state's lineage and serial, for a conflict's message."""
    return State(lineage=row[0], serial=row[1])


def _writer() -> str:
    return f"dapctl {__version__} pid {os.getpid()} on {socket.gethostname()}"


def open_postgres(value: str, *, loaded: LoadedConfig, where: str) -> PostgresStateStore:
    """The backend registry's opener: ``value`` is a ``postgresql://`` URL."""
    return PostgresStateStore(value, namespace=state_namespace(loaded))

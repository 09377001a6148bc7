"""Rate-limit budgets kept in the PostgreSQL state backend, shared by every worker.

DAP counts a client's requests over the last minute whoever sent them, so ten workers on one
institution must share one budget per endpoint class, not keep ten. ``PgSendLedger`` is the
``SendLedger`` a PostgreSQL state gives: one row per send in ``dapctl.state_sends``, keyed
by credential and endpoint class (``api.budget.credential_key``: a hash of base URL and
client ID, no secret), whatever the state namespace, since the server's budget is the
credential's. ``reserve`` books a send in one short transaction under an advisory lock on its
key: at the database's clock, or a span after the send ``capacity`` places back, and never
before the last booked send (first come, first served across machines); the caller waits
until then. The server counts a request when it arrives, somewhere between its send and its
answer, so ``settle`` moves the booking to the moment the answer arrived and marks it
answered, or, for a 429, removes it: a refused send used none of the server's budget. While
the send ``capacity`` places back is still unanswered, nobody can tell when the server
counted it: ``reserve`` books nothing and asks to be called again shortly (a send a killed
worker never settled holds the others back no longer than a minute after its slot, and
counts from its slot). So, as within one process (``RateLimiter.slot``), two sends
``capacity`` apart reach the server at least a span apart whatever the latency. Times all
come from the database's clock, so workers on machines whose clocks disagree still share one
timeline. Rows older than an hour (or two spans) are swept now and then as new ones are
booked.

The books are worth little after a minute and nothing after a crash of the server (whose
429s then cover the moment), so the table is UNLOGGED and its sessions commit without
waiting for the disk: a send costs a few round trips and no fsync. The ledger has connections
of its own, a few (``POOL``), so that a send never waits behind
a lease heartbeat and threads booking for different credentials do not queue behind one
another; a statement the server lost its session for is tried once more on a new one.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, TypeVar

import psycopg

from dapctl.errors import DatabaseError, StateError
from dapctl.pg import connect_url, guarded, url_password
from dapctl.redaction import redact
from dapctl.state.pg_schema import SETUP_LOCK

log = logging.getLogger("dapctl.ratelimit")
Result = TypeVar("Result")

CREATE = """
CREATE SCHEMA IF NOT EXISTS dapctl;
CREATE UNLOGGED TABLE IF NOT EXISTS dapctl.state_sends (
    id bigserial PRIMARY KEY,
    key text NOT NULL,
    at timestamptz NOT NULL,
    answered boolean NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS state_sends_key_at ON dapctl.state_sends (key, at DESC);
"""

LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('dapctl:sends:' || %(key)s, 0))"

SWEEP = """
DELETE FROM dapctl.state_sends
WHERE key = %(key)s
  AND at < clock_timestamp() - make_interval(secs => greatest(3600, 2 * %(span)s))
"""

# The key's latest send, and the one ``capacity`` places back (a new send must follow it by
# a span), with whether it was answered: none while there are fewer sends.
RECENT = """
SELECT clock_timestamp(),
       (SELECT max(at) FROM dapctl.state_sends WHERE key = %(key)s),
       anchor.at, anchor.answered
FROM (SELECT) AS one LEFT JOIN LATERAL (
    SELECT at, answered FROM dapctl.state_sends WHERE key = %(key)s
    ORDER BY at DESC OFFSET %(capacity)s - 1 LIMIT 1
) AS anchor ON true
"""

BOOK = "INSERT INTO dapctl.state_sends (key, at) VALUES (%(key)s, %(at)s) RETURNING id"

ANSWERED = """
UPDATE dapctl.state_sends SET at = greatest(at, clock_timestamp()), answered = true
WHERE id = %(id)s
"""

REFUSED = "DELETE FROM dapctl.state_sends WHERE id = %(id)s"

# A send capacity places back still waiting for its answer may have reached the server
# only now: ask again shortly (its answer books it). One a killed worker never settled
# stops holding the others back this long after its slot, and counts from its slot.
IN_FLIGHT_POLL = 0.05
IN_FLIGHT_LIMIT = timedelta(seconds=60)

POOL = 4  # connections: threads booking sends for different credentials go at once
SWEEP_EVERY = 256  # reserves between two sweeps of old rows


class PgSendLedger:
    """A ``SendLedger`` (``api.ratelimit``) in the PostgreSQL database at ``url``."""

    def __init__(self, url: str, *, connections: int = POOL) -> None:
        self._url = url
        self._secret = url_password(url)
        self._lock = threading.Lock()
        self._idle: list[psycopg.Connection[Any]] = []
        self._slots = threading.BoundedSemaphore(connections)
        self._ready = False  # dapctl.state_sends exists
        self._reserved = 0  # reserves so far: every SWEEP_EVERY-th sweeps its key

    def __repr__(self) -> str:
        return f"PgSendLedger({redact(self._url)!r})"

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def reserve(self, key: str, capacity: int, span: float) -> tuple[int | None, float]:
        values: dict[str, Any] = {"key": key, "capacity": capacity, "span": span}
        with self._lock:
            self._reserved += 1
            sweep = self._reserved % SWEEP_EVERY == 1

        def book(cur: psycopg.Cursor[Any]) -> tuple[int | None, float]:
            for statement in (LOCK, SWEEP) if sweep else (LOCK,):
                cur.execute(statement.encode(), values)
            recent = cur.execute(RECENT.encode(), values).fetchone()
            assert recent is not None  # an aggregate: always one row
            now, last, anchor, answered = recent
            at = max(now, last or now)
            if anchor is not None:
                if not answered and anchor + IN_FLIGHT_LIMIT > now:
                    return None, IN_FLIGHT_POLL
                at = max(at, anchor + timedelta(seconds=span))
            booked = cur.execute(BOOK.encode(), {**values, "at": at}).fetchone()
            assert booked is not None
            return int(booked[0]), (at - now).total_seconds()

        return self._run("cannot book a send in the shared rate-limit budget", book)

    def settle(self, send: int, *, refused: bool) -> None:
        statement = (REFUSED if refused else ANSWERED).encode()

        def mark(cur: psycopg.Cursor[Any]) -> None:
            cur.execute(statement, {"id": send})

        # One statement: no transaction around it, one round trip.
        self._run("cannot settle a send in the shared rate-limit budget", mark, alone=True)

    def _run(
        self, doing: str, work: Callable[[psycopg.Cursor[Any]], Result], *, alone: bool = False
    ) -> Result:
        """``work`` in one transaction (``alone``: one statement, no transaction needed),
        pipelined: statements go out together until a result is read; once more on a new
        session if the server lost this one (each statement here may be repeated)."""
        for attempt in (1, 2):
            with self._session() as conn:
                try:
                    with (
                        guarded(f"{redact(self._url)}: {doing}", self._secret),
                        conn.pipeline(),
                        contextlib.nullcontext() if alone else conn.transaction(),
                        conn.cursor() as cur,
                    ):
                        return work(cur)
                except DatabaseError as exc:
                    if attempt == 2 or not (conn.closed or conn.broken):
                        raise StateError(exc.message) from None
                    log.info("%s; trying once more on a new session", exc.message)
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def _session(self) -> Iterator[psycopg.Connection[Any]]:
        """An idle connection of the pool, or a new one while it has fewer than its size."""
        with self._slots:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None or conn.closed or conn.broken:
                conn = self._connect()
            try:
                yield conn
            finally:
                if conn.closed or conn.broken:
                    conn.close()
                else:
                    with self._lock:
                        self._idle.append(conn)

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            conn = connect_url(self._url)
        except DatabaseError as exc:
            raise StateError(f"shared rate-limit budget: {exc.message}") from None
        conn.execute(b"SET synchronous_commit = off")  # see the module docstring
        if self._ready:
            return conn
        doing = f"{redact(self._url)}: cannot create dapctl.state_sends"
        try:
            with guarded(doing, self._secret), conn.transaction():
                conn.execute(SETUP_LOCK.encode())
                conn.execute(CREATE.encode())
        except DatabaseError as exc:
            conn.close()
            raise StateError(exc.message) from None
        self._ready = True
        return conn

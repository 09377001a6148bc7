"""Rate-limit budgets kept in the PostgreSQL state backend, shared by every worker.

DAP counts a client's requests over the last minute whoever sent them, so ten workers on one
institution must share one budget per endpoint class, not keep ten. ``PgSendLedger`` is the
``SendLedger`` a PostgreSQL state gives: one row per send in ``dapctl.state_sends``, keyed
by credential and endpoint class (``api.budget.credential_key``: a hash of base URL and
client ID, no secret), whatever the state namespace, since the server's budget is the
credential's. ``reserve`` books a send in one short transaction under an advisory lock on its
key: at the database's clock, or later if ``capacity`` sends already fell within ``span``
before it, and never before the last booked send (first come, first served across
machines); the caller waits until then. ``settle`` moves the booking to the moment the answer
arrived (the server counted the request somewhere in between) or, for a 429, removes it: a
refused send used none of the server's budget. Times all come from the database's clock, so
workers on machines whose clocks disagree still share one timeline. A worker killed between
the two leaves its booking at the send's slot, which still counts. Rows older than an hour
(or two spans) are swept as new ones are booked.

The ledger has its own connection (a send never waits behind a lease heartbeat), and a
statement the server lost its session for is tried once more on a new one.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg

from dapctl.databases.engine import DatabaseError, redact
from dapctl.databases.pg_load import guarded
from dapctl.databases.postgres import connect_url, url_password
from dapctl.errors import StateError
from dapctl.state.pg_schema import SETUP_LOCK

log = logging.getLogger("dapctl.ratelimit")

CREATE = """
CREATE SCHEMA IF NOT EXISTS dapctl;
CREATE TABLE IF NOT EXISTS dapctl.state_sends (
    id bigserial PRIMARY KEY,
    key text NOT NULL,
    at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS state_sends_key_at ON dapctl.state_sends (key, at DESC);
"""

LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('dapctl:sends:' || %(key)s, 0))"

SWEEP = """
DELETE FROM dapctl.state_sends
WHERE key = %(key)s
  AND at < clock_timestamp() - make_interval(secs => greatest(3600, 2 * %(span)s))
"""

# The send ``capacity`` places back decides; the last one keeps the order (greatest() skips
# the NULLs of a key with fewer sends).
RESERVE = """
WITH recent AS (
    SELECT at FROM dapctl.state_sends WHERE key = %(key)s ORDER BY at DESC LIMIT %(capacity)s
), booked AS (
    SELECT greatest(
        clock_timestamp(),
        (SELECT max(at) FROM recent),
        (SELECT min(at) FROM recent HAVING count(*) >= %(capacity)s)
            + make_interval(secs => %(span)s)
    ) AS at
)
INSERT INTO dapctl.state_sends (key, at) SELECT %(key)s, at FROM booked
RETURNING id, extract(epoch FROM at - clock_timestamp())::float8
"""

ANSWERED = """
UPDATE dapctl.state_sends SET at = greatest(at, clock_timestamp()) WHERE id = %(id)s
"""

REFUSED = "DELETE FROM dapctl.state_sends WHERE id = %(id)s"


class PgSendLedger:
    """A ``SendLedger`` (``api.ratelimit``) in the PostgreSQL database at ``url``."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._secret = url_password(url)
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PgSendLedger({redact(self._url)!r})"

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def reserve(self, key: str, capacity: int, span: float) -> tuple[int, float]:
        values = {"key": key, "capacity": capacity, "span": span}
        doing = "cannot book a send in the shared rate-limit budget"
        row = self._run(doing, values, LOCK, SWEEP, RESERVE)
        assert row is not None
        return int(row[0]), max(0.0, float(row[1]))

    def settle(self, send: int, *, refused: bool) -> None:
        statement = REFUSED if refused else ANSWERED
        self._run("cannot settle a send in the shared rate-limit budget", {"id": send}, statement)

    def _run(self, doing: str, values: dict[str, Any], *statements: str) -> tuple[Any, ...] | None:
        with self._lock:
            for attempt in (1, 2):
                conn = self._connection()
                try:
                    with (
                        guarded(f"{redact(self._url)}: {doing}", self._secret),
                        conn.transaction(),
                        conn.cursor() as cur,
                    ):
                        for statement in statements:
                            cur.execute(statement.encode(), values)
                        return cur.fetchone() if cur.description else None
                except DatabaseError as exc:
                    if attempt == 2 or not (conn.closed or conn.broken):
                        raise StateError(exc.message) from None
                    log.info("%s; trying once more on a new session", exc.message)
                    self._conn = None
        raise AssertionError("unreachable")

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not (self._conn.closed or self._conn.broken):
            return self._conn
        try:
            conn = connect_url(self._url)
        except DatabaseError as exc:
            raise StateError(f"shared rate-limit budget: {exc.message}") from None
        doing = f"{redact(self._url)}: cannot create dapctl.state_sends"
        try:
            with guarded(doing, self._secret), conn.transaction():
                conn.execute(SETUP_LOCK.encode())
                conn.execute(CREATE.encode())
        except DatabaseError as exc:
            conn.close()
            raise StateError(exc.message) from None
        self._conn = conn
        return conn

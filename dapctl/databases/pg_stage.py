"""Typed staging for PostgreSQL loads: JSON Lines parts COPYed raw, converted by helpers.

A load stages into one UNLOGGED *typed* table (the target's columns plus the record's part
number, line, ``meta.action`` and seq). `Stager.add_part` COPYs a part's lines, unparsed, into
a per-part raw table ``<staging>__<n>`` on the load's own connection, then hands it to
`Helpers`, a pool of helper connections (`HELPERS`, one per core of a small box) that parse
each line to ``jsonb`` once, extract every column into the typed table, and drop the raw
table. So PostgreSQL parses part n while part n+1 is still being COPYed and later parts still
download, and `commit` is a plain set-based statement over typed rows. At most `BACKLOG` raw
parts wait, so disk use stays bounded. Errors of a conversion surface at the next `add_part`
or at `drain`, naming the part. A part of at most `SMALL` pages is converted at once on the
load's connection instead. Raw tables carry the staging table's name as a prefix, so one
advisory lock guards them all. TSV parts need none of this: `dapctl.databases.pg_tsv`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from dapctl.databases import pg_sql
from dapctl.databases.columns import Column

if TYPE_CHECKING:
    from dapctl.databases.postgres import PostgresDatabase

CHUNK = 1 << 20
HELPERS = 2
BACKLOG = 2  # parts
SMALL = 256  # pages (2 MiB): a part this small is converted at once, without helpers
PART_SEPARATOR = "__"
_PAGES = "SELECT pg_relation_size(%s) / current_setting('block_size')::bigint"


def raw_name(staging: str, part: int) -> str:
    return f"{staging}{PART_SEPARATOR}{part}"


def guard_of(table: str) -> str:
    """The staging table whose advisory lock guards ``table`` (itself, or a raw part's)."""
    return table.split(PART_SEPARATOR, 1)[0]


class Helpers:
    """Helper connections (opened on first use) running staging work in the background."""

    def __init__(self, db: PostgresDatabase) -> None:
        self.db = db
        self._pending: list[Future[Any]] = []
        self._idle: queue.SimpleQueue[psycopg.Connection[Any]] = queue.SimpleQueue()
        self._opened: list[psycopg.Connection[Any]] = []
        self._busy: set[psycopg.Connection[Any]] = set()
        self._pool = ThreadPoolExecutor(HELPERS, thread_name_prefix="dapctl-pg-stage")

    def submit(self, work: Callable[..., Any], *args: Any) -> None:
        """Run ``work(connection, *args)`` on the next idle helper connection."""
        while len(self._opened) < HELPERS:
            self._opened.append(self.db.helper())
            self._idle.put(self._opened[-1])
        self._pending.append(self._pool.submit(self._run, work, *args))

    def _run(self, work: Callable[..., Any], *args: Any) -> Any:
        conn = self._idle.get()
        self._busy.add(conn)
        try:
            return work(conn, *args)
        finally:
            self._busy.discard(conn)
            self._idle.put(conn)

    def settle(self, keep: int) -> None:
        """Wait until at most ``keep`` tasks are pending; re-raise the first failure."""
        while len(self._pending) > keep or (self._pending and self._pending[0].done()):
            self._pending.pop(0).result()

    def close(self) -> None:
        """Cancel the tasks in flight, wait for them, close the connections."""
        for future in self._pending:
            future.cancel()  # not started yet
        for conn in list(self._busy):
            conn.cancel()  # the statement in flight fails, so its transaction rolls back
        wait(self._pending)
        self._pending.clear()
        self._pool.shutdown(wait=True)
        for conn in self._opened:
            conn.close()
        self._opened.clear()


class Stager:
    """COPY parts into raw tables and convert them into ``dapctl.<staging>`` in the background."""

    def __init__(
        self, db: PostgresDatabase, staging: str, columns: Sequence[Column], helpers: Helpers
    ) -> None:
        self.db, self.staging, self.columns = db, staging, list(columns)
        self._helpers = helpers
        self._parts: list[str] = []
        self._lock = threading.Lock()
        self._left: dict[int, int] = {}  # part -> slices not yet converted

    def add_part(self, path: Path) -> int:
        """COPY ``path`` into a new raw table and queue its conversion; returns its lines."""
        self._helpers.settle(BACKLOG * HELPERS)  # each queued part is HELPERS slices
        part, raw = len(self._parts), raw_name(self.staging, len(self._parts))
        self._parts.append(raw)
        with self.db.transaction(f"cannot stage {path.name}") as cur, path.open("rb") as source:
            cur.execute("SET LOCAL synchronous_commit = off")  # staging is disposable
            cur.execute(pg_sql.create_raw(raw))
            with cur.copy(pg_sql.copy_raw(raw)) as copy:
                while chunk := source.read(CHUNK):
                    copy.write(chunk)
            lines = max(cur.rowcount, 0)
            found = cur.execute(_PAGES, (pg_sql.qualified(raw).as_string(cur),)).fetchone()
            pages = int(found[0]) if found else 0
            if pages <= SMALL:
                # Not worth a helper (most incrementals): convert here, in this transaction.
                cur.execute(pg_sql.convert_raw(self.staging, raw, part, self.columns, (0, pages)))
                cur.execute(sql.SQL("DROP TABLE {}").format(pg_sql.qualified(raw)))
                return lines
        step = -(-pages // HELPERS)
        with self._lock:
            self._left[part] = HELPERS
        for first in range(0, step * HELPERS, step):
            self._helpers.submit(self._convert, part, (first, first + step), path.name)
        return lines

    def close(self) -> None:
        """Drop every raw table left (call after the helpers are closed)."""
        if self._parts and not self.db.conn.closed:
            drop = sql.SQL("DROP TABLE IF EXISTS {}").format(
                sql.SQL(", ").join(sql.Identifier("dapctl", p) for p in self._parts)
            )
            with self.db.transaction(f"cannot drop the raw parts of dapctl.{self.staging}") as cur:
                cur.execute(drop)
        self._parts.clear()

    def _convert(
        self, conn: psycopg.Connection[Any], part: int, pages: tuple[int, int], name: str
    ) -> None:
        raw = self._parts[part]
        with self.db.guard(f"cannot convert {name}"):
            conn.execute(pg_sql.convert_raw(self.staging, raw, part, self.columns, pages))
            with self._lock:
                self._left[part] -= 1
                last = self._left[part] == 0
            if last:
                conn.execute(sql.SQL("DROP TABLE dapctl.{}").format(sql.Identifier(raw)))

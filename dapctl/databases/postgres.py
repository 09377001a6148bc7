"""The PostgreSQL backend: psycopg 3, one connection per `PostgresDatabase`, autocommit.

Connection settings come from the URL and libpq's own sources (``PG*`` variables, ``.pgpass``,
service files). Every error is re-raised as `DatabaseError` with the password scrubbed, and
``repr`` shows the URL redacted. The per-table lock is a session advisory lock
(``pg_try_advisory_lock``) retried until the timeout; its error names the holding session.
It `Adopts` tables the official client keeps (`dapctl.databases.pg_adopt`).
Step rows live in ``dapctl.table_steps``, keyed by (schema, table); staging tables live in
schema ``dapctl`` and each (with its raw parts) is guarded by an advisory lock its loading
session holds, which is how
`sweep_staging` tells a dead run's tables (lock free) from a live one's. Loads are in
`dapctl.databases.pg_load`; they also open `helper` connections for staging work. Connecting
and error translation are the leaf `dapctl.pg`'s, which the PostgreSQL state shares.
"""

from __future__ import annotations

import os
import socket
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from dapctl.databases import evolve, loads, pg_adopt
from dapctl.databases.columns import check_identifier, table_columns
from dapctl.databases.engine import (
    DEFAULT_OPTIONS,
    DapSync,
    LoadKind,
    StepRow,
    TableName,
    TableOptions,
)
from dapctl.databases.pg_load import UPSERT_STEP, PostgresLoad
from dapctl.databases.pg_sql import TYPES
from dapctl.databases.pg_stage import guard_of
from dapctl.errors import LockError
from dapctl.pg import connect_url, guarded, url_password
from dapctl.redaction import redact

STAGING_PREFIX = "staging_"
_LOCK_KEY = "SELECT hashtextextended(%s, 0)"
_SETUP = """
SELECT pg_advisory_xact_lock(hashtextextended('dapctl:setup', 0));
CREATE SCHEMA IF NOT EXISTS dapctl;
CREATE TABLE IF NOT EXISTS dapctl.table_steps (
    schema_name text NOT NULL,
    table_name text NOT NULL,
    address text NOT NULL,
    record text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schema_name, table_name)
);
"""
_TABLES = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('dapctl', 'pg_catalog', 'information_schema')
"""
_HOLDER = """
SELECT a.application_name, a.client_addr::text, a.pid, a.backend_start
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND ((l.classid::bigint << 32) | l.objid::bigint) = %s
"""


def open_url(url: str, *, base_dir: Path, sleep: Callable[[float], None]) -> PostgresDatabase:
    """The registry's opener: ``base_dir`` is unused (a server names no local file)."""
    return PostgresDatabase.connect(url, sleep=sleep)


class PostgresDatabase:
    """A `dapctl.databases.engine.Database` over one PostgreSQL connection."""

    def __init__(
        self, conn: psycopg.Connection[Any], url: str, sleep: Callable[[float], None]
    ) -> None:
        self.conn = conn
        self._url = url
        self._secret = url_password(url)
        self._sleep = sleep
        self._held: set[str] = set()
        self.live_staging: set[str] = set()

    @classmethod
    def connect(cls, url: str, *, sleep: Callable[[float], None]) -> PostgresDatabase:
        """Connect and make sure ``dapctl.table_steps`` exists."""
        db = cls(connect_url(url), url, sleep)
        with db.transaction("cannot create schema dapctl") as cur:
            cur.execute(_SETUP)
            for statement in loads.setup("postgresql"):
                cur.execute(statement.encode())
        return db

    def __repr__(self) -> str:
        return f"PostgresDatabase({redact(self._url)!r})"

    def close(self) -> None:
        self.conn.close()

    def helper(self) -> psycopg.Connection[Any]:
        """Another connection to the same database, for staging work that may lose its commit."""
        conn = connect_url(self._url)
        with self.guard("cannot configure a helper connection"):
            conn.execute("SET synchronous_commit = off")
        return conn

    def guard(self, doing: str) -> AbstractContextManager[None]:
        """Errors inside become `DatabaseError` naming the redacted URL (password scrubbed)."""
        return guarded(f"{doing} in {redact(self._url)}", self._secret)

    @contextmanager
    def transaction(self, doing: str) -> Iterator[psycopg.Cursor[Any]]:
        """One transaction whose errors become `DatabaseError` (password scrubbed)."""
        with (
            self.guard(doing),
            self.conn.transaction(),
            self.conn.cursor() as cur,
        ):
            yield cur

    @contextmanager
    def lock(self, name: str, *, timeout: float) -> Iterator[None]:
        """Session advisory lock on ``name``, retried every 0.1 s until ``timeout``."""
        if name in self._held:
            raise LockError(f"{name} is already locked by this dapctl process")
        key = self._scalar(_LOCK_KEY, (f"dapctl:lock:{name}",))
        deadline = time.monotonic() + timeout
        while not self._scalar("SELECT pg_try_advisory_lock(%s)", (key,)):
            if time.monotonic() >= deadline:
                raise LockError(self._lock_message(name, key, timeout))
            self._sleep(0.1)
        self._held.add(name)
        try:
            yield
        finally:
            self._held.discard(name)
            if not self.conn.closed:
                self._scalar("SELECT pg_advisory_unlock(%s)", (key,))

    def _lock_message(self, name: str, key: int, timeout: float) -> str:
        with self.transaction("cannot find the lock holder") as cur:
            row = cur.execute(_HOLDER, (key,)).fetchone()
        who = (
            "another session"
            if row is None
            else (
                f"{row[0] or 'a session'} (server pid {row[2]}, from {row[1] or 'local socket'}, "
                f"connected since {row[3]:%Y-%m-%d %H:%M:%S %Z})"
            )
        )
        return f"{name} is being loaded by {who}; gave up after waiting {timeout:g} s"

    def _scalar(self, query: str, params: tuple[Any, ...] = ()) -> Any:
        with self.transaction("query failed") as cur:
            row = cur.execute(query.encode(), params).fetchone()
        return None if row is None else row[0]

    def read_steps(self) -> dict[TableName, StepRow]:
        query = "SELECT schema_name, table_name, address, record FROM dapctl.table_steps"
        with self.transaction("cannot read dapctl.table_steps") as cur:
            return {(s, t): StepRow(a, r) for s, t, a, r in cur.execute(query)}

    def tables(self) -> set[TableName]:
        with self.transaction("cannot list the database's tables") as cur:
            return {(s, t) for s, t in cur.execute(_TABLES)}

    def write_step(self, table: TableName, *, address: str, record: str) -> None:
        with self.transaction("cannot write dapctl.table_steps") as cur:
            cur.execute(UPSERT_STEP, (*table, address, record))

    def begin_load(
        self,
        *,
        schema: str,
        table: str,
        dap_schema: Mapping[str, Any],
        kind: LoadKind,
        options: TableOptions = DEFAULT_OPTIONS,
    ) -> PostgresLoad:
        """Check the table can evolve (`NeedsReload` if not) and create its staging table."""
        target = (check_identifier(schema, "schema name"), check_identifier(table, "table name"))
        columns = table_columns(dap_schema)
        changes = evolve.diff(self.existing_columns(*target), columns, TYPES)
        if kind == "incremental" and (bad := evolve.unsafe(changes, TYPES)):
            raise evolve.NeedsReload(f"{schema}.{table}", bad)
        staging = f"{STAGING_PREFIX}{_host_tag()}_{os.getpid()}_{os.urandom(4).hex()}"
        return PostgresLoad(self, target, columns, kind, staging, options=options)

    def existing_columns(self, schema: str, table: str) -> dict[str, str]:
        """Column name -> type (``format_type`` spelling); empty if there is no such table."""
        query = """
            SELECT a.attname, format_type(a.atttypid, a.atttypmod)
            FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum
        """
        with self.transaction("cannot read the table's columns") as cur:
            return {name: kind for name, kind in cur.execute(query, (schema, table))}

    def pending_schema_changes(
        self, *, schema: str, table: str, dap_schema: Mapping[str, Any]
    ) -> list[str]:
        existing = self.existing_columns(
            check_identifier(schema, "schema name"), check_identifier(table, "table name")
        )
        if not existing:
            return [f"create table {schema}.{table}"]
        changes = evolve.diff(existing, table_columns(dap_schema), TYPES)
        return [c.describe() for c in changes]

    def dap_syncs(self) -> dict[TableName, DapSync]:
        return pg_adopt.read_syncs(self)

    def adoption_changes(self, table: TableName, dap_schema: Mapping[str, Any]) -> list[str]:
        return [c.describe() for c in pg_adopt.plan_adoption(self, table, dap_schema)]

    def adopt(
        self, table: TableName, dap_schema: Mapping[str, Any], *, address: str, record: str
    ) -> list[str]:
        return pg_adopt.adopt(self, table, dap_schema, address=address, record=record)

    def sweep_staging(self) -> list[str]:
        """Drop staging tables whose loading session is gone (its advisory lock is free)."""
        query = (
            "SELECT relname FROM pg_class "
            "WHERE relnamespace = 'dapctl'::regnamespace AND relkind IN ('r', 'p')"
        )
        with self.transaction("cannot list staging tables") as cur:
            names = [n for (n,) in cur.execute(query) if n.startswith(STAGING_PREFIX)]
        swept = []
        for name in sorted(n for n in names if guard_of(n) not in self.live_staging):
            with self.transaction(f"cannot drop dapctl.{name}") as cur:
                key = f"dapctl:staging:{guard_of(name)}"
                got = cur.execute(
                    "SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))", (key,)
                ).fetchone()
                if got and got[0]:
                    cur.execute(
                        sql.SQL("DROP TABLE IF EXISTS dapctl.{}").format(sql.Identifier(name))
                    )
                    swept.append(name)
        return swept


def _host_tag() -> str:
    # A stable short tag: staging names must stay within 63 bytes whatever the host name.
    return format(zlib.crc32(socket.gethostname().encode()), "08x")

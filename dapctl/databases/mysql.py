"""The MySQL / MariaDB backend: PyMySQL, one autocommit connection per `MySQLDatabase`.

``mysql://user@host:3306/db`` names the server and the database that holds every table
(MySQL has no schemas inside a database: DAP table ``canvas.accounts`` is ``canvas__accounts``,
as ``dap initdb`` names it; see `dapctl.databases.mysql_sql`). A config URL holds no password
(`dapctl.redaction` refuses one); the password comes from ``MYSQL_PWD``, as the ``mysql``
client reads it, and every error is re-raised as `DatabaseError` with it scrubbed.
Step rows live in ``dapctl__table_steps``, keyed by (schema, table). The per-table lock is
``GET_LOCK('dapctl:<db>.<name>')`` held by this session; its error names the holding
connection (``IS_USED_LOCK`` and the process list). Each staging table
``dapctl__staging_*`` is guarded by a ``GET_LOCK`` its loading session holds, so
`sweep_staging` drops the tables whose lock is free (their run is gone) and never a live
one's. Loads are `dapctl.databases.mysql_load`'s.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import pymysql
import pymysql.cursors

from dapctl.databases import evolve, loads, mysql_adopt
from dapctl.databases.columns import Column, check_identifier, table_columns
from dapctl.databases.engine import (
    DEFAULT_OPTIONS,
    DapSync,
    LoadKind,
    StepRow,
    TableName,
    TableOptions,
)
from dapctl.databases.mysql_load import STAGING_PREFIX, STEPS, UPSERT_STEP, MySQLLoad
from dapctl.databases.mysql_sql import TYPES, existing_type, lock_name, q, table_name
from dapctl.errors import ConfigError, DatabaseError, LockError
from dapctl.redaction import passwords, redact, scrub

_SETUP = f"""
CREATE TABLE IF NOT EXISTS {STEPS} (
    schema_name VARCHAR(64) NOT NULL,
    table_name VARCHAR(64) NOT NULL,
    address TEXT NOT NULL,
    record LONGTEXT NOT NULL,
    updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (schema_name, table_name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
"""
_HOLDER = "SELECT user, host, time FROM information_schema.processlist WHERE id = %s"


def open_url(url: str, *, base_dir: Path, sleep: Callable[[float], None]) -> MySQLDatabase:
    """The registry's opener: ``base_dir`` and ``sleep`` are unused (GET_LOCK waits itself)."""
    return MySQLDatabase.connect(url)


class MySQLDatabase:
    """A `dapctl.databases.engine.Database` over one MySQL / MariaDB connection."""

    def __init__(self, conn: pymysql.connections.Connection[Any], url: str) -> None:
        self.conn, self._url = conn, url
        self.database = str(urlsplit(url).path.lstrip("/"))
        self._secrets = (*passwords(url), *filter(None, [os.environ.get("MYSQL_PWD")]))
        self._held: set[str] = set()
        self.live_staging: set[str] = set()  # GET_LOCK is re-entrant: skip our own

    @classmethod
    def connect(cls, url: str) -> MySQLDatabase:
        """Connect and make sure ``dapctl__table_steps`` exists."""
        parts = urlsplit(url)
        secrets = (*passwords(url), *filter(None, [os.environ.get("MYSQL_PWD")]))
        database = parts.path.lstrip("/")
        if not database:
            raise ConfigError(
                f"a MySQL URL names its database: mysql://user@host/db, not {redact(url)!r}"
            )
        with _guarded(f"cannot connect to {redact(url)}", secrets):
            conn = pymysql.connect(
                host=parts.hostname or "localhost",
                port=parts.port or 3306,
                user=unquote(parts.username or "") or None,
                password=unquote(parts.password or "") or os.environ.get("MYSQL_PWD", ""),
                database=unquote(database),
                charset="utf8mb4",
                autocommit=True,
                local_infile=True,
                connect_timeout=15,
                init_command="SET time_zone = '+00:00'",
            )
        db = cls(conn, url)
        with db.guard("cannot create table dapctl__table_steps"), db.cursor() as cur:
            cur.execute(_SETUP)
            for statement in loads.setup("mysql"):
                cur.execute(statement)
        return db

    def __repr__(self) -> str:
        return f"MySQLDatabase({redact(self._url)!r})"

    def close(self) -> None:
        if self.conn.open:
            self.conn.close()

    def guard(self, doing: str) -> Any:
        """Errors inside become `DatabaseError` naming the redacted URL (password scrubbed)."""
        return _guarded(f"{doing} in {redact(self._url)}", self._secrets)

    def cursor(self) -> pymysql.cursors.Cursor:
        return cast(pymysql.cursors.Cursor, self.conn.cursor())

    def scalar(self, query: str, params: tuple[Any, ...] = ()) -> Any:
        with self.guard("query failed"), self.cursor() as cur:
            cur.execute(query, params)
            row = cur.fetchone()
        return None if row is None else row[0]

    @contextmanager
    def transaction(self, doing: str) -> Iterator[pymysql.cursors.Cursor]:
        """One InnoDB transaction; errors roll it back and become `DatabaseError`."""
        with self.guard(doing), self.cursor() as cur:
            self.conn.begin()
            try:
                yield cur
            except BaseException:
                self.conn.rollback()
                raise
            self.conn.commit()

    @contextmanager
    def lock(self, name: str, *, timeout: float) -> Iterator[None]:
        """``GET_LOCK`` on ``name``, waiting up to ``timeout`` seconds."""
        if name in self._held:
            raise LockError(f"{name} is already locked by this dapctl process")
        key = lock_name(self.database, name)
        if self.scalar("SELECT GET_LOCK(%s, %s)", (key, max(timeout, 0))) != 1:
            raise LockError(self._lock_message(name, key, timeout))
        self._held.add(name)
        try:
            yield
        finally:
            self._held.discard(name)
            if self.conn.open:
                self.scalar("SELECT RELEASE_LOCK(%s)", (key,))

    def _lock_message(self, name: str, key: str, timeout: float) -> str:
        holder = self.scalar("SELECT IS_USED_LOCK(%s)", (key,))
        row = None
        if holder is not None:
            with self.guard("cannot find the lock holder"), self.cursor() as cur:
                cur.execute(_HOLDER, (holder,))
                row = cur.fetchone()
        who = (
            "another session"
            if row is None
            else f"connection {holder} ({row[0]} from {row[1]}, for {row[2]} s)"
        )
        return f"{name} is being loaded by {who}; gave up after waiting {timeout:g} s"

    def read_steps(self) -> dict[TableName, StepRow]:
        query = f"SELECT schema_name, table_name, address, record FROM {STEPS}"  # noqa: S608
        with self.guard(f"cannot read {STEPS}"), self.cursor() as cur:
            cur.execute(query)
            return {(s, t): StepRow(a, r) for s, t, a, r in cur.fetchall()}

    def tables(self) -> set[TableName]:
        query = (
            "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() "
            "AND table_type = 'BASE TABLE'"
        )
        with self.guard("cannot list the database's tables"), self.cursor() as cur:
            cur.execute(query)
            names = [str(n) for (n,) in cur.fetchall()]
        found = (n.split("__", 1) for n in names if "__" in n and not n.startswith("dapctl__"))
        return {(s, t) for s, t in found if s and t}

    def write_step(self, table: TableName, *, address: str, record: str) -> None:
        with self.transaction(f"cannot write {STEPS}") as cur:
            cur.execute(UPSERT_STEP, (*table, address, record))

    def existing_columns(self, table: str, wanted: list[Column]) -> dict[str, str]:
        """Column name -> type as `evolve.diff` compares it; empty if there is no such table."""
        query = (
            "SELECT column_name, data_type, column_type FROM information_schema.columns "
            "WHERE table_schema = DATABASE() AND table_name = %s ORDER BY ordinal_position"
        )
        by_name = {c.name: c for c in wanted}
        with self.guard("cannot read the table's columns"), self.cursor() as cur:
            cur.execute(query, (table,))
            rows = cur.fetchall()
        return {str(n): existing_type(str(t), by_name.get(str(n)), str(c)) for n, t, c in rows}

    def begin_load(
        self,
        *,
        schema: str,
        table: str,
        dap_schema: Mapping[str, Any],
        kind: LoadKind,
        options: TableOptions = DEFAULT_OPTIONS,
    ) -> MySQLLoad:
        """Check the table can evolve (`NeedsReload` if not) and create its staging table."""
        target = _target(schema, table)
        columns = table_columns(dap_schema)
        changes = evolve.diff(self.existing_columns(table_name(*target), columns), columns, TYPES)
        if kind == "incremental" and (bad := evolve.unsafe(changes, TYPES)):
            raise evolve.NeedsReload(f"{schema}.{table}", bad)
        return MySQLLoad(self, target, columns, kind, options)

    def pending_schema_changes(
        self, *, schema: str, table: str, dap_schema: Mapping[str, Any]
    ) -> list[str]:
        target = _target(schema, table)
        columns = table_columns(dap_schema)
        existing = self.existing_columns(table_name(*target), columns)
        if not existing:
            return [f"create table {schema}.{table}"]
        return [c.describe() for c in evolve.diff(existing, columns, TYPES)]

    def dap_syncs(self) -> dict[TableName, DapSync]:
        return mysql_adopt.read_syncs(self)

    def adoption_changes(self, table: TableName, dap_schema: Mapping[str, Any]) -> list[str]:
        return [c.describe() for c in mysql_adopt.plan_adoption(self, table, dap_schema)]

    def adopt(
        self, table: TableName, dap_schema: Mapping[str, Any], *, address: str, record: str
    ) -> list[str]:
        return mysql_adopt.adopt(self, table, dap_schema, address=address, record=record)

    def sweep_staging(self) -> list[str]:
        """Drop staging tables whose loading session is gone (their GET_LOCK is free)."""
        query = (
            "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() "
            "AND table_name LIKE 'dapctl\\_\\_staging\\_%'"
        )
        with self.guard("cannot list staging tables"), self.cursor() as cur:
            cur.execute(query)
            names = sorted(str(n) for (n,) in cur.fetchall() if str(n).startswith(STAGING_PREFIX))
        swept = []
        for name in (n for n in names if n not in self.live_staging):
            key = lock_name(self.database, name)
            if self.scalar("SELECT GET_LOCK(%s, 0)", (key,)) != 1:
                continue  # held by its live loading session (or by this one)
            try:
                with self.guard(f"cannot drop {name}"), self.cursor() as cur:
                    cur.execute(f"DROP TABLE IF EXISTS {q(name)}")
            finally:
                self.scalar("SELECT RELEASE_LOCK(%s)", (key,))
            swept.append(name)
        return swept


def _target(schema: str, table: str) -> tuple[str, str]:
    target = (check_identifier(schema, "schema name"), check_identifier(table, "table name"))
    if "__" in schema:
        raise ConfigError(
            f"invalid schema name {schema!r} for MySQL: it must not hold '__', which separates "
            "schema and table in a MySQL table's name (schema__table)"
        )
    if len(table_name(*target)) > 64:
        raise ConfigError(
            f"invalid table {schema}.{table} for MySQL: {table_name(*target)!r} is longer than "
            "MySQL's 64 characters; choose a shorter schema name"
        )
    return target


@contextmanager
def _guarded(doing: str, secrets: tuple[str, ...]) -> Iterator[None]:
    """Re-raise PyMySQL errors as `DatabaseError`, password scrubbed, no chained cause."""
    try:
        yield
    except pymysql.Error as exc:
        detail = scrub(" ".join(str(a) for a in exc.args).strip(), secrets) or type(exc).__name__
        raise DatabaseError(f"{doing}: {detail}") from None

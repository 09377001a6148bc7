"""The DuckDB backend: one file, one writer process, staging tables in schema ``dapctl``.

DuckDB lets only one process open a file for writing, so a second process gets `LockError`
from `DuckDatabase.connect`; within a process `lock` is a registry of `threading.Lock`s per
(file, name). Parts are read by DuckDB's own JSON reader (``read_json_objects``) into a
staging table; `DuckLoad.commit` applies them in one DuckDB transaction with the table's step
row (``dapctl.table_steps``). A staging table not live in this process is an orphan (no
other process can have the file open), which `sweep_staging` drops. A type change DuckDB
cannot apply in place (an index on the table) raises `NeedsReload` in an incremental; a
snapshot drops the table's indexes, changes the type and re-creates them.

The file holds an institution's data: a folder `connect` makes for it is 0700, and while a
connection is open the process holds `dapctl.files.PRIVATE_UMASK`, so the file, its ``.wal``
and its spill folder are created 0600 / 0700 whatever the umask (issue 20). A file that
exists keeps its mode.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from dapctl.databases import duck_sql, evolve, history, loads
from dapctl.databases.columns import Column, check_identifier, table_columns
from dapctl.databases.duck_sql import TYPES
from dapctl.databases.engine import (
    DEFAULT_OPTIONS,
    DatabaseError,
    LoadKind,
    StepRow,
    TableName,
    TableOptions,
    snapshot_time,
)
from dapctl.errors import ConfigError, LockError
from dapctl.files import PRIVATE_UMASK, ensure_private_dir
from dapctl.redaction import redact

STAGING_PREFIX = "staging_"
_REGISTRY = threading.Lock()
_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_LIVE: set[tuple[str, str]] = set()


def open_url(url: str, *, base_dir: Path, sleep: Callable[[float], None]) -> DuckDatabase:
    """The registry's opener: ``duckdb:///x.duckdb`` is relative to ``base_dir``."""
    return DuckDatabase.connect(duck_path(url, base_dir), sleep=sleep)


def duck_path(url: str, base_dir: Path) -> Path:
    """The file a ``duckdb:///x.duckdb`` (relative) or ``duckdb:////abs/x.duckdb`` URL names."""
    rest = url.split("://", 1)[1]
    if not rest.startswith("/") or rest == "/":
        raise ConfigError(f"a DuckDB URL looks like duckdb:///file.duckdb, got {redact(url)!r}")
    path = Path(rest[1:])
    return path if path.is_absolute() else base_dir / path


@contextmanager
def guarded(doing: str) -> Iterator[None]:
    """Re-raise DuckDB errors as `DatabaseError` (a file lock conflict as `LockError`)."""
    try:
        yield
    except duckdb.Error as exc:
        if "lock" in str(exc).lower() and isinstance(exc, duckdb.IOException):
            raise LockError(f"{doing}: {exc}", hint="another process has the file open") from None
        raise DatabaseError(f"{doing}: {exc}") from None


class DuckDatabase:
    """A `dapctl.databases.engine.Database` in one DuckDB file."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, path: Path) -> None:
        """``conn`` comes with a hold on ``PRIVATE_UMASK``, which ``close`` lets go."""
        self.conn, self.path = conn, path
        self.key = str(path.resolve())
        self._closed = False

    @classmethod
    def connect(cls, path: Path, *, sleep: Callable[[float], None]) -> DuckDatabase:
        """Open (creating) the file; ``sleep`` is unused, as waits are on threading locks."""
        try:
            ensure_private_dir(path.parent)
        except OSError as exc:
            raise DatabaseError(
                f"cannot create the folder of DuckDB file {path}: {exc.strerror or exc}"
            ) from None
        PRIVATE_UMASK.acquire()
        conn: duckdb.DuckDBPyConnection | None = None
        try:
            with guarded(f"cannot open DuckDB file {path}"):
                conn = duckdb.connect(str(path))
                conn.execute(duck_sql.SETUP)
                for statement in loads.setup("duckdb"):
                    conn.execute(statement)
        except BaseException:
            if conn is not None:
                conn.close()
            PRIVATE_UMASK.release()
            raise
        return cls(conn, path)

    def __repr__(self) -> str:
        return f"DuckDatabase({str(self.path)!r})"

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.conn.close()
        finally:
            PRIVATE_UMASK.release()

    @contextmanager
    def transaction(self, doing: str) -> Iterator[duckdb.DuckDBPyConnection]:
        """One DuckDB transaction on a cursor; errors become `DatabaseError`."""
        with guarded(f"{doing} in {self.path}"):
            cur = self.conn.cursor()
            cur.execute("BEGIN TRANSACTION")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    @contextmanager
    def lock(self, name: str, *, timeout: float) -> Iterator[None]:
        """An in-process lock per (file, name); other processes cannot open the file at all."""
        with _REGISTRY:
            lock = _LOCKS.setdefault((self.key, name), threading.Lock())
        if not lock.acquire(timeout=max(timeout, 0)):
            raise LockError(
                f"{name} in {self.path} is being loaded by another thread of this process "
                f"(pid {os.getpid()}); gave up after waiting {timeout:g} s"
            )
        try:
            yield
        finally:
            lock.release()

    def read_steps(self) -> dict[TableName, StepRow]:
        query = "SELECT schema_name, table_name, address, record FROM dapctl.table_steps"
        with self.transaction("cannot read dapctl.table_steps") as cur:
            rows = cur.execute(query).fetchall()
        return {(str(s), str(t)): StepRow(str(a), str(r)) for s, t, a, r in rows}

    def tables(self) -> set[TableName]:
        with self.transaction("cannot list the database's tables") as cur:
            return {(str(s), str(t)) for s, t in cur.execute(duck_sql.TABLES).fetchall()}

    def write_step(self, table: TableName, *, address: str, record: str) -> None:
        with self.transaction("cannot write dapctl.table_steps") as cur:
            cur.execute(duck_sql.UPSERT_STEP, [*table, address, record])

    def existing_columns(self, schema: str, table: str) -> dict[str, str]:
        query = (
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position"
        )
        with self.transaction("cannot read the table's columns") as cur:
            return {str(n): str(t) for n, t in cur.execute(query, [schema, table]).fetchall()}

    def begin_load(
        self,
        *,
        schema: str,
        table: str,
        dap_schema: Mapping[str, Any],
        kind: LoadKind,
        options: TableOptions = DEFAULT_OPTIONS,
    ) -> DuckLoad:
        target = (check_identifier(schema, "schema name"), check_identifier(table, "table name"))
        columns = table_columns(dap_schema)
        changes = evolve.diff(self.existing_columns(*target), columns, TYPES)
        if kind == "incremental" and (bad := evolve.unsafe(changes, TYPES)):
            raise evolve.NeedsReload(f"{schema}.{table}", bad)
        return DuckLoad(self, target, columns, kind, options)

    def pending_schema_changes(
        self, *, schema: str, table: str, dap_schema: Mapping[str, Any]
    ) -> list[str]:
        target = (check_identifier(schema, "schema name"), check_identifier(table, "table name"))
        existing = self.existing_columns(*target)
        if not existing:
            return [f"create table {schema}.{table}"]
        changes = evolve.diff(existing, table_columns(dap_schema), TYPES)
        return [c.describe() for c in changes]

    def sweep_staging(self) -> list[str]:
        query = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'dapctl'"
        with self.transaction("cannot list staging tables") as cur:
            names = [str(n) for (n,) in cur.execute(query).fetchall()]
        with _REGISTRY:
            orphans = [
                n
                for n in sorted(names)
                if n.startswith(STAGING_PREFIX) and (self.key, n) not in _LIVE
            ]
        for name in orphans:
            with self.transaction(f"cannot drop dapctl.{name}") as cur:
                cur.execute(f"DROP TABLE IF EXISTS dapctl.{duck_sql.q(name)}")
        return orphans


class DuckLoad:
    """A `dapctl.databases.engine.TableLoad` into DuckDB; see the module docstring."""

    def __init__(
        self,
        db: DuckDatabase,
        target: tuple[str, str],
        columns: Sequence[Column],
        kind: LoadKind,
        options: TableOptions = DEFAULT_OPTIONS,
    ) -> None:
        self.db, self.target, self.columns, self.kind = db, target, list(columns), kind
        self.soft, self.history = options.soft_deletes, options.history_table
        self.append_only = options.append_only
        self.staging = f"{STAGING_PREFIX}{os.getpid()}_{os.urandom(4).hex()}"
        self._table = f"dapctl.{duck_sql.q(self.staging)}"
        with _REGISTRY:
            _LIVE.add((db.key, self.staging))
        with db.transaction("cannot create the staging table") as cur:
            cur.execute(f"CREATE TABLE {self._table} (doc JSON)")

    def add_part(self, path: Path) -> int:
        """Stage a part through DuckDB's JSON reader; returns the number of records."""
        query = (
            f"INSERT INTO {self._table} SELECT json FROM read_json_objects("  # noqa: S608
            "?, format = 'newline_delimited', maximum_object_size = 1073741824)"
        )
        with self.db.transaction(f"cannot stage {path.name}") as cur:
            row = cur.execute(query, [str(path)]).fetchone()
        return int(row[0]) if row else 0

    def commit(self, *, address: str, record: str, run: loads.RunRow | None = None) -> int:
        with self.db.transaction(f"cannot apply the {self.kind} of {'.'.join(self.target)}") as cur:
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {duck_sql.q(self.target[0])}")
            cur.execute(duck_sql.create_table(self.target, self.columns))
            self._evolve(cur)
            rows = self._apply(cur, at=snapshot_time(record), record=record, run=run)
            cur.execute(duck_sql.UPSERT_STEP, [*self.target, address, record])
            if run is not None:
                cur.execute(loads.insert_run("duckdb"), loads.run_params(run))
                row = loads.load_params(run, self.target, address, record, rows)
                cur.execute(loads.insert_load("duckdb"), row)
            cur.execute(f"DROP TABLE {self._table}")
        self._forget()
        return rows

    def abort(self) -> None:
        with self.db.transaction("cannot drop the staging table") as cur:
            cur.execute(f"DROP TABLE IF EXISTS {self._table}")
        self._forget()

    def _forget(self) -> None:
        with _REGISTRY:
            _LIVE.discard((self.db.key, self.staging))

    def _evolve(self, cur: duckdb.DuckDBPyConnection) -> None:
        existing = {
            str(n): str(t)
            for n, t in cur.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = ? AND table_name = ?",
                list(self.target),
            ).fetchall()
        }
        changes = evolve.diff(existing, self.columns, TYPES)
        snapshot = self.kind == "snapshot"
        if not snapshot and (bad := evolve.unsafe(changes, TYPES)):
            raise evolve.NeedsReload(".".join(self.target), bad)
        # DuckDB refuses to retype a column of an indexed table. A snapshot must still apply
        # it (it is what a NeedsReload asks for), so it takes the indexes off and back on.
        indexes = self._indexes(cur) if snapshot and any(c.old_type for c in changes) else []
        for name, _ in indexes:
            cur.execute(f"DROP INDEX {duck_sql.q(self.target[0])}.{duck_sql.q(name)}")
        for change in changes:
            self._alter(cur, change, snapshot)
        for name, definition in indexes:
            try:
                cur.execute(definition)
            except duckdb.Error as exc:
                raise DatabaseError(
                    f"cannot re-create index {name} on {'.'.join(self.target)} after its "
                    f"columns changed type: {exc}; drop or change that index, then retry"
                ) from None

    def _indexes(self, cur: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
        query = (
            "SELECT index_name, sql FROM duckdb_indexes() WHERE schema_name = ? AND table_name = ?"
        )
        return [(str(n), str(d)) for n, d in cur.execute(query, list(self.target)).fetchall()]

    def _alter(self, cur: duckdb.DuckDBPyConnection, change: evolve.Change, snapshot: bool) -> None:
        name, kind = duck_sql.q(change.column.name), change.new_type
        table = duck_sql.ident(self.target)
        if change.kind == "add":
            cur.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {name} {kind}")
            return
        # A snapshot replaces every row anyway, so old values need not convert.
        using = "NULL" if snapshot else f"CAST({name} AS {kind})"
        try:
            cur.execute(f"ALTER TABLE {table} ALTER COLUMN {name} TYPE {kind} USING {using}")
        except duckdb.Error as exc:
            raise evolve.NeedsReload(
                ".".join(self.target), [f"{change.describe()} ({exc})"]
            ) from None

    def _apply(
        self, cur: duckdb.DuckDBPyConnection, *, at: datetime | None, record: str, run: Any
    ) -> int:
        latest = f"dapctl.{duck_sql.q('latest_' + self.staging)}"
        cur.execute(f"CREATE TABLE {latest} AS {duck_sql.latest(self.staging, self.columns)}")
        target, columns, soft = self.target, self.columns, self.soft
        if self.history is not None:  # versions first: the seed reads the table as it was
            names = (duck_sql.ident((target[0], self.history)), duck_sql.ident(target))
            typed = f"dapctl.{duck_sql.q('typed_' + self.staging)}"  # read up to three times
            cur.execute(f"CREATE TABLE {typed} AS {duck_sql.history_source(latest, columns)}")
            history.keep(cur.execute, history.DUCKDB, names, columns, duck_sql.spell, typed,
                         kind=self.kind, record=record, run_id=run and run.run_id)  # fmt: skip
            cur.execute(f"DROP TABLE {typed}")
        if soft:  # deleted rows stay, marked; a snapshot marks the keys it no longer holds
            cur.execute(duck_sql.add_soft_deleted(target))
            if self.kind == "snapshot":
                cur.execute(duck_sql.mark_missing(target, latest, columns), [at])
        elif self.kind == "snapshot" and not self.append_only:
            cur.execute(f"DELETE FROM {duck_sql.ident(target)}")  # noqa: S608
        gone = 0
        if self.kind == "incremental" and not self.append_only:
            gone = _count(cur.execute(duck_sql.delete(target, latest, columns, soft=soft)))
        upsert = soft or self.append_only or self.kind == "incremental"
        insert = duck_sql.insert(target, latest, columns, upsert=upsert, soft=soft)
        put = _count(cur.execute(insert))
        cur.execute(f"DROP TABLE {latest}")
        return gone + put


def _count(cur: duckdb.DuckDBPyConnection) -> int:
    row = cur.fetchone()
    return int(row[0]) if row else 0

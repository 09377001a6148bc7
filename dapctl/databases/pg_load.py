"""One PostgreSQL snapshot or incremental: parts staged as typed rows, then one commit.

`PostgresLoad` creates an UNLOGGED typed staging table in schema ``dapctl`` and holds a
session advisory lock on its name while alive (what `PostgresDatabase.sweep_staging` checks).
Each part streams from disk in 1 MiB chunks through ``COPY``: a JSON Lines part is converted
to typed rows in the background (`dapctl.databases.pg_stage`), a TSV part goes straight in on
helper connections (`dapctl.databases.pg_tsv`), so memory stays flat. `commit` waits for the
staging work, then runs ONE transaction: create or evolve the target, replace its rows
(snapshot: TRUNCATE + INSERT ... SELECT, so views, grants, indexes and extra columns survive;
the indexes are set aside and rebuilt after, one sort each, by `dapctl.databases.pg_indexes`)
or delete/upsert the latest record per key (incremental, and the snapshot of a table another
table's foreign key references, which cannot be truncated: its rows missing from the
snapshot are deleted, which such a key may refuse, naming its constraint), upsert the step
row, and drop the staging table. Keeping the latest record per key costs a sort, so it runs
only when a key occurs twice. Driver errors become `DatabaseError` (`dapctl.pg.guarded`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from dapctl.databases import evolve, history, loads, pg_indexes, pg_partitions, pg_sql, pg_views
from dapctl.databases.columns import Column
from dapctl.databases.engine import DEFAULT_OPTIONS, LoadKind, TableOptions, snapshot_time
from dapctl.databases.pg_stage import Helpers, Stager
from dapctl.databases.pg_tsv import TsvStager, tsv_header

if TYPE_CHECKING:
    from dapctl.databases.postgres import PostgresDatabase

# The step row's upsert (dapctl.table_steps, keyed by the table): postgres.py creates the table.
UPSERT_STEP = """
INSERT INTO dapctl.table_steps (schema_name, table_name, address, record) VALUES (%s, %s, %s, %s)
ON CONFLICT (schema_name, table_name) DO UPDATE
SET address = EXCLUDED.address, record = EXCLUDED.record, updated_at = now()
"""


class PostgresLoad:
    """A `dapctl.databases.engine.TableLoad` into PostgreSQL; see the module docstring."""

    def __init__(
        self,
        db: PostgresDatabase,
        target: tuple[str, str],
        columns: Sequence[Column],
        kind: LoadKind,
        staging: str,
        *,
        options: TableOptions = DEFAULT_OPTIONS,
    ) -> None:
        self.db, self.target, self.columns, self.kind = db, target, list(columns), kind
        self.soft = options.soft_deletes
        self.history = options.history_table
        self.append_only = options.append_only
        self.partition_by = options.partition_by if options.append_only else None
        if self.partition_by is not None:
            pg_partitions.check_column(target, self.columns, self.partition_by)
        self._partitioned: str | None = None  # what the table is partitioned on, read at commit
        self._dupes: bool | None = None  # whether a key is staged twice, asked at commit
        self.staging = staging
        self._guard = f"dapctl:staging:{staging}"
        self._open = True
        with db.transaction(f"cannot create staging table dapctl.{staging}") as cur:
            cur.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (self._guard,))
            cur.execute(pg_sql.create_staging(staging, self.columns))
        db.live_staging.add(staging)
        self._helpers = Helpers(db)
        self._stager = Stager(db, staging, self.columns, self._helpers)
        self._tsv = TsvStager(db, staging, self.columns, self._helpers)

    def add_part(self, path: Path) -> int:
        """Stage a JSON Lines part (`Stager`) or a TSV one (`TsvStager`); returns the number
        of records."""
        header = tsv_header(path)
        if header is not None:
            return self._tsv.add_part(path, header)
        return self._stager.add_part(path)

    def _close_stagers(self) -> None:
        self._helpers.close()
        self._tsv.close()
        self._stager.close()

    def commit(self, *, address: str, record: str, run: loads.RunRow | None = None) -> int:
        """Evolve, apply, write the step row and drop staging, all in one transaction."""
        where = ".".join(self.target)
        try:
            self._helpers.settle(0)
        finally:
            self._close_stagers()
        with self.db.transaction(f"cannot apply the {self.kind} of {where}") as cur:
            self._ensure_schema(cur)
            self._create(cur)
            # A table another's foreign key references cannot be emptied: its snapshot is
            # merged instead (rows gone deleted, the rest upserted), keys kept in place.
            if self.soft:
                cur.execute(pg_sql.add_soft_deleted(self.target))
            merge = (
                self.soft
                or self.append_only
                or self.kind == "incremental"
                or cur.execute(pg_sql.REFERENCED, self.target).fetchone() is not None
            )
            self._evolve(cur, merge=merge)
            if self.history is not None:
                self._version(cur, record, run.run_id if run else None)
            rows = self._apply(cur, merge=merge, at=snapshot_time(record))
            cur.execute(UPSERT_STEP, (*self.target, address, record))
            if run is not None:
                cur.execute(loads.insert_run("postgresql").encode(), loads.run_params(run))
                row = loads.load_params(run, self.target, address, record, rows)
                cur.execute(loads.insert_load("postgresql").encode(), row)
            cur.execute(sql.SQL("DROP TABLE dapctl.{}").format(sql.Identifier(self.staging)))
        self._release()
        return rows

    def _create(self, cur: Any) -> None:
        """The table if missing (partitioned by day, `pg_partitions`, if the load says so),
        and the day partitions its staged records need, if it is partitioned."""
        cur.execute(pg_sql.create_table(self.target, self.columns, partition_on=self.partition_by))
        self._partitioned = pg_partitions.partition_column(cur, self.target)
        if self._partitioned is not None:
            pg_partitions.make_days(cur, self.target, self.staging, self._partitioned)

    def _ensure_schema(self, cur: Any) -> None:
        # CREATE SCHEMA IF NOT EXISTS is not safe against a concurrent one (a unique
        # violation on pg_namespace): two first loads into one schema take turns here.
        cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.target[0],))
        if cur.fetchone() is None:
            cur.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                (f"dapctl:schema:{self.target[0]}",),
            )
            cur.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.target[0]))
            )

    def abort(self) -> None:
        if not self._open:
            return
        self._close_stagers()
        if self.db.conn.closed:
            return
        with self.db.transaction(f"cannot drop dapctl.{self.staging}") as cur:
            cur.execute(
                sql.SQL("DROP TABLE IF EXISTS dapctl.{}").format(sql.Identifier(self.staging))
            )
        self._release()

    def _release(self) -> None:
        self._open = False
        self.db.live_staging.discard(self.staging)
        with self.db.transaction("cannot release the staging lock") as cur:
            cur.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (self._guard,))

    def _evolve(self, cur: psycopg.Cursor[Any], *, merge: bool) -> None:
        existing = self.db.existing_columns(*self.target)
        changes = evolve.diff(existing, self.columns, pg_sql.TYPES)
        snapshot = self.kind == "snapshot"
        if not snapshot and (bad := evolve.unsafe(changes, pg_sql.TYPES)):
            raise evolve.NeedsReload(".".join(self.target), bad)
        retypes = [c for c in changes if c.kind == "retype"]
        views = (
            pg_views.dependent_views(cur, pg_sql.ident(self.target).as_string(cur))
            if retypes
            else []
        )
        pg_views.drop_views(cur, views)
        emptied = not merge
        if emptied:
            # Emptied first, so any type change is possible (USING NULL) and cheap.
            cur.execute(sql.SQL("TRUNCATE {}").format(pg_sql.ident(self.target)))
        if changes:
            items = [(c.kind, c.column, None if emptied else _using(c)) for c in changes]
            cur.execute(pg_sql.alter(self.target, items))
        pg_views.create_views(cur, views)

    def _version(self, cur: psycopg.Cursor[Any], record: str, run_id: str | None) -> None:
        """The load's versions in its history table (`history`), made or widened first."""
        assert self.history is not None

        def text(part: sql.Composable) -> str:
            return part.as_string(cur)

        def spell(column: Column) -> str:
            return text(pg_sql.type_sql(column))

        h = text(pg_sql.ident((self.target[0], self.history)))
        # Staging as it is when it holds each key once (the usual case), else its latest.
        dupes = self._duplicated(cur)
        staged = text(sql.SQL("dapctl.{}").format(sql.Identifier(self.staging)))
        latest = f"({text(pg_sql.latest(self.staging, self.columns))})" if dupes else staged
        action = text(pg_sql.ACTION)
        source = f"(SELECT *, coalesce({action}, 'U') AS _action FROM {latest} l)"  # noqa: S608
        history.keep(
            lambda q, p: cur.execute(q.encode(), p),
            history.POSTGRESQL,
            (h, text(pg_sql.ident(self.target))),
            self.columns,
            spell,
            source,
            kind=self.kind,
            record=record,
            run_id=run_id,
            index=text(sql.Identifier(_index_name(self.history))),
        )

    def _duplicated(self, cur: psycopg.Cursor[Any]) -> bool:
        """Whether some key is staged more than once (asked once per load)."""
        if self._dupes is None:
            query = pg_sql.has_duplicates(self.staging, self.columns)
            self._dupes = cur.execute(query).fetchone() is not None
        return self._dupes

    def _apply(self, cur: psycopg.Cursor[Any], *, merge: bool, at: datetime | None) -> int:
        if merge:
            if self.kind == "snapshot" and self.append_only:
                pass  # rows older than the server keeps stay
            elif self.kind == "snapshot" and self.soft:
                missing = pg_sql.mark_missing(self.target, self.staging, self.columns)
                cur.execute(missing, (at,))
            elif self.kind == "snapshot":
                cur.execute(pg_sql.delete_missing(self.target, self.staging, self.columns))
            query = pg_sql.incremental_apply(
                self.target,
                self.staging,
                self.columns,
                dedupe=self._duplicated(cur),
                soft=self.soft,
                keep=self.append_only,
                also_key=self._partitioned,
            )
            row = cur.execute(query).fetchone()
            return int(row[0]) if row else 0
        try:
            # Snapshots normally hold each key once; only when one does not (at-least-once
            # tables such as web_logs) is the slower keep-the-latest query worth running.
            with self.db.conn.transaction():
                return self._refill(cur, dedupe=False)
        except pg_errors.UniqueViolation:
            return self._refill(cur, dedupe=True)

    def _refill(self, cur: psycopg.Cursor[Any], *, dedupe: bool) -> int:
        """Fill the emptied target, its indexes set aside and rebuilt after (`pg_indexes`)."""
        aside = pg_indexes.set_aside(cur, self.target)
        cur.execute(pg_sql.snapshot_insert(self.target, self.staging, self.columns, dedupe=dedupe))
        rows = max(cur.rowcount, 0)
        pg_indexes.rebuild(cur, self.target, aside)
        return rows


def _index_name(history_table: str) -> str:
    """The open-versions index's name: ``<history>_open``, its table's part cut to fit
    PostgreSQL's 63 bytes (``CREATE INDEX IF NOT EXISTS`` then finds it again)."""
    head = history_table.encode()[: 63 - len(b"_open")].decode(errors="ignore")
    return f"{head}_open"


def _using(change: evolve.Change) -> sql.Composable:
    name = sql.Identifier(change.column.name)
    if change.old_type and change.old_type.startswith("timestamp without"):
        return sql.SQL("{} AT TIME ZONE 'UTC'").format(name)
    return sql.SQL("{}::{}").format(name, sql.SQL(change.new_type))

"""A MySQL / MariaDB load: parts converted to typed TSV, staged, applied in one transaction.

`MySQLLoad` takes a ``GET_LOCK`` on its staging table's name (the sign of a live run that
`MySQLDatabase.sweep_staging` respects), creates ``dapctl__staging_<host>_<pid>_<random>``
and ``LOAD DATA LOCAL INFILE``s each part into it, converted by `mysql_sql.to_tsv`.
`commit` keeps the latest record of each key, creates the table if needed and applies the
schema changes (DDL, which MySQL commits on its own; a column added early is harmless), then in
ONE InnoDB transaction empties and refills the table (a snapshot: ``DELETE``, since
``TRUNCATE`` and a ``RENAME TABLE`` swap are DDL that commit by themselves, and a swap would
lose the user's indexes, columns and grants) or upserts and deletes (an incremental) and
upserts the step row. A snapshot that must change a type no value survives first deletes the
step row and empties the table, each committed, so a crash there leaves a table with no step
row, which the next plan reloads.
"""

from __future__ import annotations

import os
import socket
import tempfile
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dapctl.databases import evolve, history, loads, mysql_sql
from dapctl.databases.columns import Column
from dapctl.databases.engine import (
    DEFAULT_OPTIONS,
    SOFT_DELETED,
    LoadKind,
    TableOptions,
    snapshot_time,
)
from dapctl.databases.mysql_sql import TYPES, lock_name, q, table_name

if TYPE_CHECKING:
    from dapctl.databases.mysql import MySQLDatabase

STEPS = "dapctl__table_steps"
STAGING_PREFIX = "dapctl__staging_"
UPSERT_STEP = """
INSERT INTO dapctl__table_steps (schema_name, table_name, address, record) VALUES (%s, %s, %s, %s)
ON DUPLICATE KEY UPDATE address = VALUES(address), record = VALUES(record),
updated_at = CURRENT_TIMESTAMP(6)
"""


class MySQLLoad:
    """A `dapctl.databases.engine.TableLoad` into MySQL; see the module docstring."""

    def __init__(
        self,
        db: MySQLDatabase,
        target: tuple[str, str],
        columns: Sequence[Column],
        kind: LoadKind,
        options: TableOptions = DEFAULT_OPTIONS,
    ) -> None:
        self.db, self.target, self.columns, self.kind = db, target, list(columns), kind
        self.soft, self.append_only = options.soft_deletes, options.append_only
        self.history = (
            None
            if options.history_table is None
            else (table_name(target[0], options.history_table))
        )
        self.table = table_name(*target)
        self.staging = f"{STAGING_PREFIX}{_host_tag()}_{os.getpid()}_{os.urandom(4).hex()}"
        self._key = lock_name(db.database, self.staging)
        db.live_staging.add(self.staging)
        db.scalar("SELECT GET_LOCK(%s, 0)", (self._key,))
        self._done = False
        with db.guard("cannot create the staging table"), db.cursor() as cur:
            cur.execute(mysql_sql.create_staging(self.staging, self.columns))

    def add_part(self, path: Path) -> int:
        """Convert the part to typed TSV beside it and load that; return the records."""
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=path.parent, suffix=".tsv", newline="\n", delete=False
        ) as out:
            tsv = Path(out.name)
            with path.open(encoding="utf-8") as lines:
                count = mysql_sql.to_tsv(lines, self.columns, out)
        try:
            with self.db.guard(f"cannot stage {path.name}"), self.db.cursor() as cur:
                cur.execute(mysql_sql.load_data(self.staging, self.columns), (str(tsv),))
        finally:
            tsv.unlink(missing_ok=True)
        return count

    def commit(self, *, address: str, record: str, run: loads.RunRow | None = None) -> int:
        doing = f"cannot apply the {self.kind} of {'.'.join(self.target)}"
        with self.db.guard(doing), self.db.cursor() as cur:
            cur.execute(mysql_sql.keep_latest(self.staging, self.columns))
            cur.execute(mysql_sql.create_table(self.table, self.columns))
            self._evolve(cur)
            if self.history is not None:  # DDL too: the table made, missing columns added
                self._history_table(cur)
            if self.soft:  # DDL: committed on its own, harmless if the load fails
                cur.execute(mysql_sql.HAS_COLUMN, (self.table, SOFT_DELETED))
                if cur.fetchone() is None:
                    cur.execute(mysql_sql.add_soft_deleted(self.table))
        with self.db.transaction(doing) as cur:
            if self.history is not None:  # versions first: the seed reads the table as it was
                source = f"(SELECT *, {q(mysql_sql.ACTION)} AS _action FROM {q(self.staging)})"  # noqa: S608
                v = history.Versioning(history.MYSQL, q(self.history), q(self.table), self.columns)
                run_id, snapshot = (run.run_id if run else None), self.kind == "snapshot"
                history.write_versions(
                    cur.execute, v, source, snapshot=snapshot, record=record, run_id=run_id
                )
            rows = self._apply(cur, at=snapshot_time(record))
            cur.execute(UPSERT_STEP, (*self.target, address, record))
            if run is not None:
                cur.execute(loads.insert_run("mysql"), loads.run_params(run, naive=True))
                row = loads.load_params(run, self.target, address, record, rows, naive=True)
                cur.execute(loads.insert_load("mysql"), row)
        self.abort()
        return rows

    def abort(self) -> None:
        if self._done:
            return
        with self.db.guard("cannot drop the staging table"), self.db.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {q(self.staging)}")
        self._done = True
        self.db.live_staging.discard(self.staging)
        if self.db.conn.open:
            self.db.scalar("SELECT RELEASE_LOCK(%s)", (self._key,))

    def _evolve(self, cur: Any) -> None:
        changes = evolve.diff(
            self.db.existing_columns(self.table, self.columns), self.columns, TYPES
        )
        lossy = evolve.unsafe(changes, TYPES)
        if lossy and self.kind == "incremental":
            raise evolve.NeedsReload(".".join(self.target), lossy)
        if lossy:  # a snapshot replaces every row: empty the table so any type applies
            cur.execute(
                "DELETE FROM dapctl__table_steps WHERE schema_name = %s AND table_name = %s",
                self.target,
            )
            cur.execute(f"DELETE FROM {q(self.table)}")  # noqa: S608
        for change in changes:
            verb = "ADD COLUMN" if change.kind == "add" else "MODIFY COLUMN"
            column = change.column
            if change.kind == "add":
                column = Column(column.name, column.type, True, False, column.path)
            cur.execute(f"ALTER TABLE {q(self.table)} {verb} {mysql_sql.definition(column)}")

    def _history_table(self, cur: Any) -> None:
        assert self.history is not None
        spell, options = mysql_sql.spell, " " + mysql_sql.TABLE_OPTIONS
        [made] = history.setup(history.MYSQL, q(self.history), self.columns, spell, options)
        cur.execute(made)
        have = set(self.db.existing_columns(self.history, self.columns))
        for column in (c for c in self.columns if c.name not in have):
            cur.execute(
                f"ALTER TABLE {q(self.history)} ADD COLUMN {q(column.name)} {spell(column)}"
            )
        cur.execute(mysql_sql.HAS_INDEX, (self.history, "dapctl_key"))
        if cur.fetchone() is None:  # also on a history table made before dapctl indexed it
            cur.execute(history.key_index(q(self.history), self.columns))

    def _apply(self, cur: Any, *, at: datetime | None) -> int:
        table, staging, columns = self.table, self.staging, self.columns
        if self.soft:  # deleted rows stay, marked; a snapshot marks the keys it lacks
            gone = 0
            if self.kind == "snapshot":
                naive = at.astimezone(UTC).replace(tzinfo=None) if at else None
                cur.execute(mysql_sql.mark_missing(table, staging, columns), (naive,))
            else:
                gone = int(cur.execute(mysql_sql.soft_delete(table, staging, columns)))
            cur.execute(mysql_sql.insert(table, staging, columns, upsert=True, soft=True))
            return gone + self._puts(cur)
        if self.append_only:  # rows are added or replaced, never removed
            cur.execute(mysql_sql.insert(table, staging, columns, upsert=True))
            return self._puts(cur)
        if self.kind == "snapshot":
            cur.execute(f"DELETE FROM {q(table)}")  # noqa: S608
            return int(cur.execute(mysql_sql.insert(table, staging, columns, upsert=False)))
        gone = int(cur.execute(mysql_sql.delete(table, staging, columns)))
        put = self._puts(cur)
        cur.execute(mysql_sql.insert(table, staging, columns, upsert=True))
        return gone + put

    def _puts(self, cur: Any) -> int:
        """Staged records that are not deletes (an upsert's affected rows count an update
        twice, so they cannot tell)."""
        query = f"SELECT count(*) FROM {q(self.staging)} WHERE {q(mysql_sql.ACTION)} <> 'D'"  # noqa: S608
        cur.execute(query)
        return int(cur.fetchone()[0])


def _host_tag() -> str:
    # A stable short tag: names must stay within MySQL's 64 characters whatever the host name.
    return format(zlib.crc32(socket.gethostname().encode()), "08x")

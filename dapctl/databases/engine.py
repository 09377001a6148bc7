"""The table engine's contract: the `Database` and `TableLoad` protocols every backend meets.

A `Database` keeps DAP tables in sync inside one database: it locks a table for one apply at
a time, keeps step records in ``dapctl.table_steps`` and starts a `TableLoad` per snapshot or
incremental. A step row is keyed by the table it describes (schema, table), not by the config's
step address: its watermark is true of that table's content and of nothing else, so two configs
loading one database into two schemas never share a row, and a table that is gone (dropped, a
new database, a renamed schema) has no row a plan could trust. The row also names the address
that last wrote it, for people. A load streams parts into a staging table as they arrive
(`TableLoad.add_part`) and makes them visible in ONE transaction together with the step row
(`TableLoad.commit`), so after a crash at any instant the table and its step row are either
both updated or neither.
`abort` drops the staging table; a killed run leaves one behind, which `sweep_staging` drops
later (never a live run's). Schema changes are applied on every load (`evolve`); an
incremental refuses a lossy one with `NeedsReload`, and the snapshot the caller then takes
applies any change (it empties the table first) while views, indexes and grants stay.
Which backend a URL opens, the driver it needs and what it can do (the query format it loads
fastest, whether loads share one connection) is `dapctl.databases.registry`'s.
Errors are `DapctlError` subclasses whose messages never hold a password: `redact` and
`scrub` (from the leaf `dapctl.redaction`, re-exported here) mask one in every form a URL or
a driver's message can hold it.

`Adopts` is an optional capability (checked with ``isinstance``): an engine whose tables the
official client (`dap initdb` / `dap syncdb`) may have made can read that client's sync rows
(`DapSync`) and take such a table over (``dapctl import``), converting it to the columns its
own snapshot would create and writing the step row in the same transaction (or, where DDL
commits on its own, as in MySQL, the step row only after one atomic conversion, so a kill
between them leaves a converted table without a row, which the next import finishes).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, runtime_checkable

from dapctl.errors import DatabaseError

if TYPE_CHECKING:
    from dapctl.databases.loads import RunRow
from dapctl.redaction import holds_password, passwords, redact, scrub

__all__ = [
    "DEFAULT_OPTIONS",
    "SOFT_DELETED",
    "Adopts",
    "DapSync",
    "Database",
    "DatabaseError",
    "LoadKind",
    "StepRow",
    "TableLoad",
    "TableName",
    "TableOptions",
    "holds_password",
    "passwords",
    "redact",
    "scrub",
]

LoadKind = Literal["snapshot", "incremental"]

#: the column a soft-deleting table marks its deleted rows with (NULL while a row lives)
SOFT_DELETED = "dap_deleted_at"


@dataclass(frozen=True)
class TableOptions:
    """How a target keeps its table, beyond what the DAP schema says.

    ``soft_deletes``: a deleted row stays, its ``dap_deleted_at`` set to when DAP deleted it
    (the record's ``meta.ts``; for a key a snapshot no longer holds, the snapshot's time); a
    key that comes back clears it. Snapshots then merge instead of refilling the table.

    ``append_only`` (logs, kept past DAP's 30 days): a row is never removed, neither by a
    delete record nor by a snapshot that no longer holds it; records are upserted by key, so
    a window loaded twice adds nothing twice.

    ``partition_by`` (append-only tables, PostgreSQL): a timestamp column; a table dapctl
    creates is partitioned by day on it (`dapctl.databases.pg_partitions`). Other engines
    keep one table."""

    soft_deletes: bool = False
    history_table: str | None = None  # keep every version in this table (same schema)
    append_only: bool = False  # logs: rows are only added or replaced, never removed
    partition_by: str | None = None  # an append-only table's day partitions' column


DEFAULT_OPTIONS = TableOptions()


def load_id(record: str) -> str:
    """The id a load's history versions carry: its job's (any unique id for a test's load)."""
    found = json.loads(record).get("job_id") if record.startswith("{") else None
    return str(found) if found else os.urandom(8).hex()


def snapshot_time(record: str) -> datetime | None:
    """The time a load's data is as of, from its step record (JSON): its watermark."""
    found = json.loads(record).get("watermark") if record.startswith("{") else None
    return datetime.fromisoformat(found.replace("Z", "+00:00")) if found else None


TableName = tuple[str, str]  # (schema, table)


class StepRow(NamedTuple):
    """A table's step row: the address that wrote it, and the step record (JSON)."""

    address: str
    record: str


class TableLoad(Protocol):
    """One snapshot or incremental of one table, staged until `commit`."""

    def add_part(self, path: Path) -> int:
        """Stage one decompressed part (JSON Lines; PostgreSQL also takes condensed TSV with its
        header row); return the number of records in it."""
        ...

    def commit(self, *, address: str, record: str, run: RunRow | None = None) -> int:
        """In one transaction apply the staged records and upsert the table's step row (naming
        ``address``), and with ``run`` its rows in ``dapctl.runs`` / ``dapctl.loads``; return
        rows."""
        ...

    def abort(self) -> None:
        """Drop the staging table; the target table stays as it was. Idempotent."""
        ...


class Database(Protocol):
    """One database holding DAP tables and dapctl's step records."""

    def close(self) -> None: ...

    def lock(self, name: str, *, timeout: float) -> AbstractContextManager[None]:
        """Hold the exclusive apply lock on ``name``; `LockError` after ``timeout`` seconds."""
        ...

    def read_steps(self) -> dict[TableName, StepRow]:
        """Every step row, keyed by the table it describes."""
        ...

    def tables(self) -> set[TableName]:
        """Every table in the database outside dapctl's own schema."""
        ...

    def write_step(self, table: TableName, *, address: str, record: str) -> None:
        """Upsert ``table``'s step row in its own short transaction."""
        ...

    def begin_load(
        self,
        *,
        schema: str,
        table: str,
        dap_schema: Mapping[str, Any],
        kind: LoadKind,
        options: TableOptions = DEFAULT_OPTIONS,
    ) -> TableLoad:
        """Start a load; raises `NeedsReload` if an incremental cannot evolve the table."""
        ...

    def sweep_staging(self) -> list[str]:
        """Drop staging tables of runs that are gone; return their names."""
        ...

    def pending_schema_changes(
        self, *, schema: str, table: str, dap_schema: Mapping[str, Any]
    ) -> list[str]:
        """What the next load would change in the table's columns, one line each."""
        ...


@dataclass(frozen=True)
class DapSync:
    """The official client's record of one table it keeps: when it last synced (``since``,
    UTC) at which schema version, and the DAP schema it made the table from."""

    table: TableName
    source: str  # namespace.table as DAP names it
    since: datetime
    schema_version: int
    dap_schema: Mapping[str, Any]


@runtime_checkable
class Adopts(Protocol):
    """An engine that can take over tables the official client keeps (``dapctl import``)."""

    def dap_syncs(self) -> dict[TableName, DapSync]:
        """The client's sync rows by the table each describes; empty if it keeps none here;
        `DatabaseError` for a layout only an old client wrote."""
        ...

    def adoption_changes(self, table: TableName, dap_schema: Mapping[str, Any]) -> list[str]:
        """What adopting ``table`` would change in its columns, one line each;
        `DatabaseError` if a column cannot be converted without loss."""
        ...

    def adopt(
        self, table: TableName, dap_schema: Mapping[str, Any], *, address: str, record: str
    ) -> list[str]:
        """Convert ``table`` (its dependent views re-created where the engine needs it) and
        write its step row, in one transaction or (DDL that commits alone) the row after the
        conversion (see the module doc); return the changes made."""
        ...

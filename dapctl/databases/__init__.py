"""Keep PostgreSQL, DuckDB and MySQL / MariaDB tables, and Delta Lake tables, exactly in sync
with DAP: snapshots and incrementals.

Module map:

- `engine`: the `Database` / `TableLoad` protocols, the optional `Adopts` (tables the
  official client keeps, taken over by ``dapctl import``), `DatabaseError`, URL redaction
  (from the leaf `dapctl.redaction`).
- `registry`: the engines (`ENGINES`: scheme -> backend module, driver, extra, `Capabilities`),
  `open_database` (picks a backend from the URL), `wire_format` (the query format it loads
  fastest), `capabilities`.
- `columns`: DAP table schema -> `Column` list (names as ``dap initdb`` has them, each with a
  neutral `ColumnType` that each engine's type mapper spells).
- `evolve`: the pure schema diff (`Change`), which type changes are in place, `NeedsReload`.
- `postgres`: the PostgreSQL backend (connection, advisory locks, steps, staging sweep);
  `pg_adopt` (a table ``dap syncdb`` keeps, converted and recorded in one transaction);
  `pg_load` (a load: typed staging, the one commit transaction), `pg_tsv` (TSV parts COPYed
  straight into typed staging by helper connections), `pg_stage` (the helpers; JSON Lines
  parts COPYed raw and converted to typed rows while later parts arrive), `pg_sql` (SQL
  builders), `pg_views`
  (dependent views re-created around a type change), `pg_indexes` (indexes set aside while a
  snapshot refills its table, rebuilt after), `pg_partitions` (append-only tables partitioned
  by day).
- `history`: history tables (every version of every row), one set of steps every engine
  runs in its load's transaction.
- `loads`: ``dapctl.runs`` / ``dapctl.loads``, the rows naming the apply each load belongs
  to, committed with it (each engine's DDL and values).
- `duck`: the DuckDB backend and its loads; `duck_sql` (SQL builders).
- `mysql`: the MySQL / MariaDB backend (PyMySQL connection, ``GET_LOCK`` locks, steps in
  ``dapctl__table_steps``, staging sweep); `mysql_adopt` (a table ``dap syncdb`` keeps,
  converted in one ``ALTER TABLE``, then recorded); `mysql_load` (a load: parts as typed TSV through
  ``LOAD DATA LOCAL INFILE``, the one InnoDB commit transaction), `mysql_sql` (SQL builders,
  the JSON Lines -> TSV converter, `TYPES`; tables named ``schema__table``).
- `lake`: lake tables, no SQL server (Delta Lake: `lake.delta`, its parts staged in a
  private DuckDB, `lake.stage`; pending records and locks beside the lake, `lake.steps`).
"""

from __future__ import annotations

from dapctl.databases.columns import Column, check_identifier, table_columns
from dapctl.databases.engine import (
    Adopts,
    DapSync,
    Database,
    DatabaseError,
    LoadKind,
    StepRow,
    TableLoad,
    TableName,
    redact,
)
from dapctl.databases.evolve import Change, NeedsReload
from dapctl.databases.registry import Capabilities, capabilities, open_database, wire_format

__all__ = [
    "Adopts",
    "Capabilities",
    "Change",
    "Column",
    "DapSync",
    "Database",
    "DatabaseError",
    "LoadKind",
    "NeedsReload",
    "StepRow",
    "TableLoad",
    "TableName",
    "capabilities",
    "check_identifier",
    "open_database",
    "redact",
    "table_columns",
    "wire_format",
]

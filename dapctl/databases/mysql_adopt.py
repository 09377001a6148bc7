"""Taking over a table the official client keeps in MySQL / MariaDB (``dapctl import``).

`dap initdb` / `dap syncdb` record each table they keep in ``instructure_dap__table_sync``
(the same columns as PostgreSQL's ``instructure_dap.table_sync``: ``timestamp`` is the next
since, a ``DATETIME`` in UTC; ``target_schema`` and ``target_table`` name the DAP table, which
lives in ``<schema>__<table>``, as dapctl names it too). `read_syncs` reads those rows; a
database an old client kept (a ``dap_meta`` table and no ``table_sync``) is refused, with
what to run first. The client's rows are only read.

Its tables differ from the ones a dapctl snapshot creates: enum fields are ``ENUM``, strings
``MEDIUMTEXT``, timestamps ``DATETIME`` with whole seconds, booleans ``TINYINT(4)``,
required value fields ``NOT NULL``, the collation is the database's default (often
case-insensitive) and there is no ``meta_ts``. `conversions` (pure) lists what brings a
table to what `mysql_sql` spells for the DAP schema: the table to ``utf8mb4_bin`` (keys
compare as DAP's do), enum and shorter text to ``LONGTEXT``, timestamps and times to
microseconds, booleans to ``BOOLEAN`` (``TINYINT(1)``, which drivers read as a boolean),
value columns nullable, ``meta_ts`` added (NULL until a row changes). A column whose values
would not all survive stops the table's adoption with a `DatabaseError` naming it.

MySQL commits DDL on its own, so adoption cannot share one transaction with the step row as
PostgreSQL's does. `adopt` makes every change in ONE ``ALTER TABLE``, then writes the step
row. The ALTER is atomic: a killed dapctl does not stop it (the server runs it to its end),
and one the server cannot finish (``KILL QUERY``, a server crash) is rolled back (InnoDB's
atomic DDL: MariaDB 10.6+, MySQL 8). A kill between
the two leaves a converted table with no step row: a second ``dapctl import`` finds nothing
left to change and writes the row, and an apply that runs first snapshots the table (it has
no watermark it could trust), so no state ever claims rows the table lacks. Views need no
re-creating: MySQL resolves a view's columns when it is queried.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dapctl.databases import evolve
from dapctl.databases.columns import Column, ColumnType, table_columns
from dapctl.databases.engine import DapSync, DatabaseError, TableName
from dapctl.databases.mysql_sql import TYPES, existing_type, q, spell, table_name

if TYPE_CHECKING:
    from dapctl.databases.mysql import MySQLDatabase

SYNC_TABLE = "instructure_dap__table_sync"
COLLATION = "utf8mb4_bin"
_LAYOUT = """
SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()
AND (table_name = %s OR table_name = 'dap_meta' OR table_name LIKE '%%\\_\\_dap\\_meta')
"""
_SYNCS = f"""
SELECT coalesce(target_schema, source_namespace), target_table, source_namespace,
       source_table, `timestamp`, schema_version, schema_description
FROM {SYNC_TABLE}
"""  # noqa: S608
_COLUMNS = """
SELECT column_name, data_type, column_type, is_nullable = 'NO'
FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = %s
ORDER BY ordinal_position
"""
_COLLATION = """
SELECT table_collation FROM information_schema.tables
WHERE table_schema = DATABASE() AND table_name = %s
"""


@dataclass(frozen=True)
class Existing:
    """One column of the table as it is: information_schema's data and column type, and
    whether it is NOT NULL."""

    data_type: str
    column_type: str
    not_null: bool


@dataclass(frozen=True)
class Conversion:
    """One change: the table's collation, a column added, or a column modified (retyped,
    made nullable, or both)."""

    kind: str  # "collation" | "add" | "modify"
    column: Column | None = None
    old: str | None = None  # the column's type before
    nullable: bool = False  # a NOT NULL value column made nullable

    def describe(self) -> str:
        if self.column is None:
            return f"convert the table to {COLLATION} (keys compare case-sensitively, as DAP's)"
        new = spell(self.column)
        if self.kind == "add":
            return f"add column {self.column.name} {new} (NULL until a row changes)"
        if self.old is None:
            return f"{self.column.name}: drop NOT NULL (a dapctl table keeps it on keys only)"
        was = " NOT NULL" if self.nullable else ""
        now = " NULL" if self.nullable else ""
        return f"change type of {self.column.name}: {self.old}{was} -> {new}{now}"

    def clause(self) -> str:
        if self.column is None:
            return f"CONVERT TO CHARACTER SET utf8mb4 COLLATE {COLLATION}"
        null = " NOT NULL" if self.column.key else " NULL"
        verb = "ADD COLUMN" if self.kind == "add" else "MODIFY COLUMN"
        return f"{verb} {q(self.column.name)} {spell(self.column)}{null}"


def conversions(
    where: str, collation: str, existing: Mapping[str, Existing], columns: Sequence[Column]
) -> list[Conversion]:
    """What brings the table to ``columns`` as dapctl spells them (see the module doc);
    `DatabaseError` naming the first column that cannot convert without loss."""
    out = [Conversion("collation")] if collation.lower() != COLLATION else []
    for column in columns:
        have = existing.get(column.name)
        if have is None:
            out.append(Conversion("add", column))
            continue
        old = _retyped(have, column)
        if old is not None and not evolve.widens(old, column.type, TYPES):
            raise DatabaseError(
                f"{where}: column {column.name} is {have.column_type}, which does not convert "
                f"to {spell(column)} without loss; not adopted"
            )
        nullable = have.not_null and not column.key
        if old is not None or nullable:
            out.append(Conversion("modify", column, old and have.column_type, nullable))
    return out


def _retyped(have: Existing, column: Column) -> str | None:
    """The column's type as `evolve.widens` reads it, if it must change; else None."""
    kind = existing_type(have.data_type, column, have.column_type)
    if evolve.diff({column.name: kind}, [column], TYPES):
        return kind  # whole seconds too: dapctl keeps DAP's microseconds
    if column.type is ColumnType.BOOLEAN and have.column_type != "tinyint(1)":
        return kind  # dap's TINYINT(4): drivers read only TINYINT(1) as a boolean
    return None


def read_syncs(db: MySQLDatabase) -> dict[TableName, DapSync]:
    """The client's sync rows by table (see the module doc)."""
    with db.transaction(f"cannot read {SYNC_TABLE}") as cur:
        cur.execute(_LAYOUT, (SYNC_TABLE,))
        found = {str(name) for (name,) in cur.fetchall()}
        if SYNC_TABLE not in found:
            if found:
                raise DatabaseError(
                    f"{', '.join(sorted(found))}: kept by an old `dap` client, which dapctl "
                    "cannot import; run a current `dap syncdb` (2.x) once for these tables, "
                    "then `dapctl import` again"
                )
            return {}
        cur.execute(_SYNCS)
        rows = cur.fetchall()
    return {(s, t): _sync((s, t), ns, src, ts, v, d) for s, t, ns, src, ts, v, d in rows}


def _sync(table: TableName, ns: str, src: str, ts: datetime, version: int, text: str) -> DapSync:
    try:
        described = json.loads(text)
    except ValueError:
        raise DatabaseError(
            f"{SYNC_TABLE}: the schema_description of {'.'.join(table)} is not JSON; run "
            "`dap syncdb` for it once, then `dapctl import` again"
        ) from None
    since = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    return DapSync(table, f"{ns}.{src}", since, int(version), described)


def plan_adoption(
    db: MySQLDatabase, table: TableName, dap_schema: Mapping[str, Any]
) -> list[Conversion]:
    where = ".".join(table)
    with db.transaction("cannot read the table's columns") as cur:
        collation, existing = _shape(cur, table_name(*table))
    if not existing:
        raise DatabaseError(f"{where} is not in the database")
    return conversions(where, collation, existing, table_columns(dap_schema))


def adopt(
    db: MySQLDatabase,
    table: TableName,
    dap_schema: Mapping[str, Any],
    *,
    address: str,
    record: str,
) -> list[str]:
    """Convert ``table`` in one ALTER TABLE, then write its step row; return the changes.
    The caller holds the table's lock (``GET_LOCK``), so no load runs meanwhile."""
    changes = plan_adoption(db, table, dap_schema)
    if changes:
        clauses = ", ".join(c.clause() for c in changes)
        with db.guard(f"cannot adopt {'.'.join(table)}"), db.cursor() as cur:
            cur.execute(f"ALTER TABLE {q(table_name(*table))} {clauses}")
    db.write_step(table, address=address, record=record)
    return [c.describe() for c in changes]


def _shape(cur: Any, name: str) -> tuple[str, dict[str, Existing]]:
    cur.execute(_COLLATION, (name,))
    row = cur.fetchone()
    cur.execute(_COLUMNS, (name,))
    columns = {str(n): Existing(str(d), str(t).lower(), bool(nn)) for n, d, t, nn in cur}
    return (str(row[0]) if row else COLLATION), columns

"""Taking over a table the official client keeps in PostgreSQL (``dapctl import``).

`dap initdb` / `dap syncdb` record each table they keep in ``instructure_dap.table_sync``
(``"timestamp"``: the next since, naive UTC; ``schema_version``; ``target_schema``,
``target_table``; ``schema_description``: the DAP schema as JSON). `read_syncs` reads those
rows; a database only a very old client kept (a ``<namespace>.dap_meta`` table and no
``table_sync``) is refused, with what to run first. The client's rows are only read.

Its tables differ from the ones a dapctl snapshot creates: enum fields are enum types
(``canvas.<table>__<field>``), strings may be ``varchar(n)``, timestamps have no zone (UTC
wall-clock), arrays are SQL arrays, required value fields are ``NOT NULL`` and there is no
``meta_ts``. `conversions` (pure) lists what brings a table's columns to exactly what
``pg_sql.TYPES`` spells for the DAP schema: enum and ``varchar(n)`` to ``text``, zoneless
timestamps to ``timestamptz`` read as UTC, arrays to ``jsonb``, value columns nullable,
``meta_ts`` added (NULL until a row changes). A column whose values would not all survive
stops the table's adoption with a `DatabaseError` naming it. `adopt` runs them in ONE
transaction with the dependent views re-created (`pg_views`) and the table's step row
written, so a kill at any instant leaves the table either as the client left it or adopted.
Views comparing an enum column with a literal are re-created with that literal cast to text
(ordering by such a column becomes alphabetical). Enum types the conversion leaves unused
are kept (a user's own objects may name them).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING, Any

from psycopg import sql

from dapctl.databases import evolve, pg_sql, pg_views
from dapctl.databases.columns import Column, ColumnType, table_columns
from dapctl.databases.engine import DapSync, DatabaseError, TableName
from dapctl.databases.pg_load import UPSERT_STEP

if TYPE_CHECKING:
    from dapctl.databases.postgres import PostgresDatabase

_SYNC_TABLES = """
SELECT to_regclass('instructure_dap.table_sync') IS NOT NULL,
       ARRAY(SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relname = 'dap_meta' AND c.relkind IN ('r', 'p'))
"""
_SYNCS = """
SELECT coalesce(target_schema, source_namespace), target_table, source_namespace,
       source_table, "timestamp", schema_version, schema_description
FROM instructure_dap.table_sync
"""
_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, t.typtype = 'e'
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid
WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


@dataclass(frozen=True)
class Existing:
    """One column of the table as it is: its type (``format_type`` spelling), NOT NULL,
    whether that type is an enum."""

    type: str
    not_null: bool
    enum: bool = False


@dataclass(frozen=True)
class Conversion:
    """One change to a column: added, retyped (``old`` -> ``new``) or made nullable."""

    kind: str  # "add" | "retype" | "nullable"
    column: Column
    old: str | None = None
    enum: bool = False

    @property
    def new(self) -> str:
        return pg_sql.TYPES.spell(self.column.type)

    def describe(self) -> str:
        if self.kind == "add":
            return f"add column {self.column.name} {self.new} (NULL until a row changes)"
        if self.kind == "nullable":
            return f"{self.column.name}: drop NOT NULL (a dapctl table keeps it on keys only)"
        return f"change type of {self.column.name}: {self.old} -> {self.new}"

    def clause(self) -> sql.Composable:
        name = sql.Identifier(self.column.name)
        if self.kind == "add":
            return sql.SQL("ADD COLUMN {} {}").format(name, sql.SQL(self.new))
        if self.kind == "nullable":
            return sql.SQL("ALTER COLUMN {} DROP NOT NULL").format(name)
        return sql.SQL("ALTER COLUMN {} TYPE {} USING {}").format(
            name, sql.SQL(self.new), _using(self, name)
        )


def _using(change: Conversion, name: sql.Identifier) -> sql.Composable:
    old = change.old or ""
    if old.startswith("timestamp without time zone"):
        return sql.SQL("{} AT TIME ZONE 'UTC'").format(name)
    if old.endswith("[]"):
        return sql.SQL("to_jsonb({})").format(name)
    return sql.SQL("{}::{}").format(name, sql.SQL(change.new))


def conversions(
    where: str, existing: Mapping[str, Existing], columns: Sequence[Column]
) -> list[Conversion]:
    """What brings ``existing`` to ``columns`` as dapctl spells them (see the module doc);
    `DatabaseError` naming the first column that cannot convert without loss."""
    out = []
    for column in columns:
        have = existing.get(column.name)
        if have is None:
            out.append(Conversion("add", column))
            continue
        if have.type != pg_sql.TYPES.spell(column.type):
            if not _lossless(have.type, column):
                raise DatabaseError(
                    f"{where}: column {column.name} is {have.type}, which does not convert to "
                    f"{pg_sql.TYPES.spell(column.type)} without loss; not adopted"
                )
            out.append(Conversion("retype", column, have.type, have.enum))
        if have.not_null and not column.key:
            out.append(Conversion("nullable", column))
    return out


def _lossless(old: str, column: Column) -> bool:
    if old.endswith("[]"):
        return column.type is ColumnType.JSON
    # Any type converts to text (enum types included); the rest by evolve's rules.
    return evolve.widens(old, column.type, pg_sql.TYPES)


def read_syncs(db: PostgresDatabase) -> dict[TableName, DapSync]:
    """The client's sync rows by table (see the module doc)."""
    with db.transaction("cannot read instructure_dap.table_sync") as cur:
        row = cur.execute(_SYNC_TABLES).fetchone()
        has_sync, old = (row[0], row[1]) if row else (False, [])
        if not has_sync:
            if old:
                raise DatabaseError(
                    f"{', '.join(f'{s}.dap_meta' for s in old)}: kept by an old `dap` client, "
                    "which dapctl cannot import; run a current `dap syncdb` (2.x) once for "
                    "these tables, then `dapctl import` again"
                )
            return {}
        rows = cur.execute(_SYNCS).fetchall()
    return {(s, t): _sync((s, t), ns, src, ts, v, d) for s, t, ns, src, ts, v, d in rows}


def _sync(table: TableName, ns: str, src: str, ts: Any, version: int, text: str) -> DapSync:
    try:
        described = json.loads(text)
    except ValueError:
        raise DatabaseError(
            f"instructure_dap.table_sync: the schema_description of {'.'.join(table)} is not "
            "JSON; run `dap syncdb` for it once, then `dapctl import` again"
        ) from None
    since = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    return DapSync(table, f"{ns}.{src}", since, int(version), described)


def plan_adoption(
    db: PostgresDatabase, table: TableName, dap_schema: Mapping[str, Any]
) -> list[Conversion]:
    where = ".".join(table)
    with db.transaction("cannot read the table's columns") as cur:
        existing = _columns(cur, table)
    if not existing:
        raise DatabaseError(f"{where} is not in the database")
    return conversions(where, existing, table_columns(dap_schema))


def adopt(
    db: PostgresDatabase,
    table: TableName,
    dap_schema: Mapping[str, Any],
    *,
    address: str,
    record: str,
) -> list[str]:
    """Convert ``table`` and write its step row in one transaction; return the changes."""
    where = ".".join(table)
    with db.transaction(f"cannot adopt {where}") as cur:
        # Columns read inside the transaction, under a lock no load can share.
        cur.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(pg_sql.ident(table)))
        changes = conversions(where, _columns(cur, table), table_columns(dap_schema))
        if changes:
            retyped = any(c.kind == "retype" for c in changes)
            ident = pg_sql.ident(table)
            views = pg_views.dependent_views(cur, ident.as_string(cur)) if retyped else []
            pg_views.drop_views(cur, views)
            clauses = sql.SQL(", ").join(c.clause() for c in changes)
            cur.execute(sql.SQL("ALTER TABLE {} {}").format(ident, clauses))
            pg_views.create_views(cur, [_without_enums(v, changes) for v in views])
        cur.execute(UPSERT_STEP, (*table, address, record))
    return [c.describe() for c in changes]


def _columns(cur: Any, table: TableName) -> dict[str, Existing]:
    return {n: Existing(t, nn, e) for n, t, nn, e in cur.execute(_COLUMNS, table)}


def _without_enums(view: pg_views.View, changes: Sequence[Conversion]) -> pg_views.View:
    """``view`` with its casts to the enum types that became text (``'active'::canvas.
    courses__workflow_state``, as ``pg_get_viewdef`` writes a comparison) cast to text, so a
    view comparing such a column with a literal still compiles."""
    definition = view.definition
    for change in changes:
        if change.enum and change.old:
            definition = definition.replace(f"::{change.old}", "::text")
    return dataclasses.replace(view, definition=definition)

"""SQL text for DuckDB loads; names are checked by `check_identifier`, then double-quoted.

Staging rows are whole JSON Lines records in a ``JSON`` column ``doc``; the staging table's
``rowid`` follows arrival order (DuckDB preserves insertion order by default), which breaks
ties between records of one key with equal ``meta.ts``: the later line of the later part wins.
`TYPES` is DuckDB's type mapper: how it spells each neutral `ColumnType`.
"""

from __future__ import annotations

from collections.abc import Sequence

from dapctl.databases.columns import META_TS, Column, ColumnType, TypeMapper
from dapctl.databases.engine import SOFT_DELETED

Target = tuple[str, str]
TYPES = TypeMapper(
    {
        ColumnType.INT16: "SMALLINT",
        ColumnType.INT32: "INTEGER",
        ColumnType.INT64: "BIGINT",
        ColumnType.FLOAT32: "FLOAT",
        ColumnType.FLOAT64: "DOUBLE",
        ColumnType.BOOLEAN: "BOOLEAN",
        ColumnType.TIMESTAMP: "TIMESTAMP WITH TIME ZONE",
        ColumnType.DATE: "DATE",
        ColumnType.TIME: "TIME",
        ColumnType.UUID: "UUID",
        ColumnType.TEXT: "VARCHAR",
        ColumnType.JSON: "JSON",
    },
    # A table another tool made may hold UTC wall-clock times without a zone; REAL is FLOAT.
    adopted={
        "timestamp": ColumnType.TIMESTAMP,
        "timestamp without time zone": ColumnType.TIMESTAMP,
        "real": ColumnType.FLOAT32,
    },
)


# dapctl's own schema, its step rows (keyed by table), and the tables outside it.
SETUP = """
CREATE SCHEMA IF NOT EXISTS dapctl;
CREATE TABLE IF NOT EXISTS dapctl.table_steps (
    schema_name VARCHAR NOT NULL, table_name VARCHAR NOT NULL, address VARCHAR NOT NULL,
    record VARCHAR NOT NULL, updated_at TIMESTAMPTZ DEFAULT now(),
    PRIMARY KEY (schema_name, table_name)
);
"""
UPSERT_STEP = """
INSERT INTO dapctl.table_steps (schema_name, table_name, address, record) VALUES (?, ?, ?, ?)
ON CONFLICT (schema_name, table_name) DO UPDATE
SET address = EXCLUDED.address, record = EXCLUDED.record, updated_at = now()
"""
TABLES = """
SELECT table_schema, table_name FROM information_schema.tables
WHERE table_type = 'BASE TABLE' AND table_schema <> 'dapctl'
"""


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def ident(target: Target) -> str:
    return f"{q(target[0])}.{q(target[1])}"


def _path(*steps: str) -> str:
    return "'$." + ".".join(f'"{step}"' for step in steps) + "'"


def extract(column: Column, doc: str = "doc") -> str:
    """The expression that reads ``column`` out of a staged record."""
    path = _path(*column.path)
    if column.is_json:
        return f"nullif(json_extract({doc}, {path}), 'null')"
    text = f"json_extract_string({doc}, {path})"
    if column.type is ColumnType.TEXT:
        return text
    return f"CAST({text} AS {TYPES.spell(column.type)})"


def spell(column: Column) -> str:
    return TYPES.spell(column.type)


def history_source(latest: str, columns: Sequence[Column]) -> str:
    """``latest``'s records as the table's columns, with ``_action``, for the history."""
    exprs = ", ".join(f"{extract(c)} AS {q(c.name)}" for c in columns)
    return f"(SELECT {exprs}, {action()} AS _action FROM {latest})"  # noqa: S608


def create_table(target: Target, columns: Sequence[Column]) -> str:
    defs = ", ".join(
        f"{q(c.name)} {TYPES.spell(c.type)}{' NOT NULL' if c.key else ''}" for c in columns
    )
    keys = ", ".join(q(c.name) for c in columns if c.key)
    return f"CREATE TABLE IF NOT EXISTS {ident(target)} ({defs}, PRIMARY KEY ({keys}))"


def latest(staging: str, columns: Sequence[Column]) -> str:
    """One staged record per key: the latest by ``meta.ts``, then by arrival."""
    keys = ", ".join(extract(c) for c in columns if c.key)
    ts = f"CAST(json_extract_string(doc, {_path('meta', 'ts')}) AS TIMESTAMPTZ)"
    return (
        f"SELECT doc FROM dapctl.{q(staging)} QUALIFY row_number() OVER "  # noqa: S608
        f"(PARTITION BY {keys} ORDER BY {ts} DESC NULLS LAST, rowid DESC) = 1"
    )


def action(doc: str = "doc") -> str:
    return f"coalesce(json_extract_string({doc}, {_path('meta', 'action')}), 'U')"


def add_soft_deleted(target: Target) -> str:
    return f"ALTER TABLE {ident(target)} ADD COLUMN IF NOT EXISTS {q(SOFT_DELETED)} TIMESTAMPTZ"


def mark_missing(target: Target, source: str, columns: Sequence[Column]) -> str:
    """Mark deleted (at the parameter's time) the live rows ``source`` does not hold."""
    match = " AND ".join(f"t.{q(c.name)} = {extract(c, 's.doc')}" for c in columns if c.key)
    return (
        f"UPDATE {ident(target)} AS t SET {q(SOFT_DELETED)} = ? "  # noqa: S608
        f"WHERE t.{q(SOFT_DELETED)} IS NULL AND NOT EXISTS (SELECT 1 FROM {source} AS s "
        f"WHERE {match})"
    )


def insert(
    target: Target, source: str, columns: Sequence[Column], *, upsert: bool, soft: bool = False
) -> str:
    """Insert every non-delete record of ``source`` (a table holding ``doc``)."""
    names = ", ".join(q(c.name) for c in columns)
    exprs = ", ".join(extract(c) for c in columns)
    text = (
        f"INSERT INTO {ident(target)} ({names}) SELECT {exprs} FROM {source} "  # noqa: S608
        f"WHERE {action()} <> 'D'"
    )
    if not upsert:
        return text
    keys = ", ".join(q(c.name) for c in columns if c.key)
    sets = [f"{q(c.name)} = EXCLUDED.{q(c.name)}" for c in columns if not c.key]
    if soft:
        sets.append(f"{q(SOFT_DELETED)} = NULL")  # a key that comes back lives again
    return f"{text} ON CONFLICT ({keys}) DO UPDATE SET {', '.join(sets)}"


def delete(target: Target, source: str, columns: Sequence[Column], *, soft: bool = False) -> str:
    match = " AND ".join(f"t.{q(c.name)} = {extract(c, 's.doc')}" for c in columns if c.key)
    if soft:  # marked at the change's time; a row deleted before keeps its first mark
        [ts] = [c for c in columns if c.name == META_TS]
        return (
            f"UPDATE {ident(target)} AS t SET {q(SOFT_DELETED)} = "  # noqa: S608
            f"coalesce({extract(ts, 's.doc')}, now()) FROM {source} AS s "
            f"WHERE {action('s.doc')} = 'D' AND {match} AND t.{q(SOFT_DELETED)} IS NULL"
        )
    return (
        f"DELETE FROM {ident(target)} AS t USING {source} AS s "  # noqa: S608
        f"WHERE {action('s.doc')} = 'D' AND {match}"
    )

"""SQL text for PostgreSQL loads, built with `psycopg.sql` so every identifier is quoted.

Staging rows are whole JSON Lines records in a ``jsonb`` column ``doc`` with an arrival
number ``seq``; `extract` turns a `Column`'s path into an expression over ``doc``, so
PostgreSQL, not Python, parses the JSON. "Latest" means: one row per key, the one with the
greatest ``meta.ts`` and, among equals, the greatest ``seq`` (the later line of the later part).
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

from dapctl.databases.columns import Column

Target = tuple[str, str]


def ident(target: Target) -> sql.Composed:
    return sql.SQL(".").join(map(sql.Identifier, target))


def extract(column: Column, doc: str = "doc") -> sql.Composable:
    """The expression that reads ``column`` out of a staged record."""
    # One path lookup (#>>) is measurably cheaper than chained -> ->> on a million rows.
    path = sql.Literal("{" + ",".join(column.path) + "}")
    if column.is_json:
        # Records omit nulls, but an explicit JSON null must still become SQL NULL.
        return sql.SQL("nullif({} #> {}, 'null'::jsonb)").format(sql.Identifier(doc), path)
    text = sql.SQL("({} #>> {})").format(sql.Identifier(doc), path)
    if column.pg_type == "text":
        return text
    return sql.SQL("{}::{}").format(text, sql.SQL(column.pg_type))


def create_staging(name: str) -> sql.Composed:
    # UNLOGGED: staging is disposable, so it need not pay for WAL.
    return sql.SQL(
        "CREATE UNLOGGED TABLE dapctl.{} "
        "(seq bigint GENERATED ALWAYS AS IDENTITY, doc jsonb NOT NULL)"
    ).format(sql.Identifier(name))


def copy_staging(name: str) -> sql.Composed:
    # CSV with 0x01 as quote and 0x02 as delimiter: valid JSON never holds either raw byte,
    # so each line reaches jsonb untouched (backslashes included, unlike FORMAT text).
    return sql.SQL(
        "COPY dapctl.{} (doc) FROM STDIN WITH (FORMAT csv, QUOTE e'\\x01', DELIMITER e'\\x02')"
    ).format(sql.Identifier(name))


def create_table(target: Target, columns: Sequence[Column]) -> sql.Composed:
    defs = [
        sql.SQL("{} {}{}").format(
            sql.Identifier(c.name), sql.SQL(c.pg_type), sql.SQL(" NOT NULL" if c.key else "")
        )
        for c in columns
    ]
    keys = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns if c.key)
    return sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))").format(
        ident(target), sql.SQL(", ").join(defs), keys
    )


def _names(columns: Sequence[Column]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)


def _latest(staging: str, columns: Sequence[Column]) -> sql.Composed:
    keys = [c for c in columns if c.key]
    key_exprs = sql.SQL(", ").join(extract(c) for c in keys)
    return sql.SQL(
        "SELECT DISTINCT ON ({k}) doc FROM dapctl.{s} "
        "ORDER BY {k}, (doc #>> '{{meta,ts}}')::timestamptz DESC NULLS LAST, seq DESC"
    ).format(k=key_exprs, s=sql.Identifier(staging))


def snapshot_insert(
    target: Target, staging: str, columns: Sequence[Column], *, dedupe: bool
) -> sql.Composed:
    """Fill the (emptied) target from staging; ``dedupe`` keeps the latest row per key."""
    source = (
        sql.SQL("({}) AS latest").format(_latest(staging, columns))
        if dedupe
        else sql.SQL("dapctl.{}").format(sql.Identifier(staging))
    )
    return sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(
        ident(target), _names(columns), sql.SQL(", ").join(map(extract, columns)), source
    )


def incremental_apply(target: Target, staging: str, columns: Sequence[Column]) -> sql.Composed:
    """Delete the latest ``D`` records' keys, upsert the rest; yields the rows applied."""
    keys = [c for c in columns if c.key]
    match = sql.SQL(" AND ").join(
        sql.SQL("t.{} = {}").format(sql.Identifier(c.name), extract(c)) for c in keys
    )
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c.name)) for c in columns if not c.key
    )
    return sql.SQL(
        "WITH latest AS MATERIALIZED ({latest}), "
        "gone AS (DELETE FROM {t} AS t USING latest "
        "WHERE latest.doc->'meta'->>'action' = 'D' AND {match} RETURNING 1), "
        "put AS (INSERT INTO {t} ({names}) SELECT {exprs} FROM latest "
        "WHERE latest.doc->'meta'->>'action' IS DISTINCT FROM 'D' "
        "ON CONFLICT ({keys}) DO UPDATE SET {updates} RETURNING 1) "
        "SELECT (SELECT count(*) FROM gone) + (SELECT count(*) FROM put)"
    ).format(
        latest=_latest(staging, columns),
        t=ident(target),
        match=match,
        names=_names(columns),
        exprs=sql.SQL(", ").join(map(extract, columns)),
        keys=_names(keys),
        updates=updates or sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(keys[0].name)),
    )


def alter(
    target: Target, changes: Sequence[tuple[str, Column, sql.Composable | None]]
) -> sql.Composed:
    """One ALTER TABLE: ``("add", column, None)`` or ``("retype", column, using)`` items."""
    parts = []
    for kind, column, using in changes:
        name, kind_sql = sql.Identifier(column.name), sql.SQL(column.pg_type)
        if kind == "add":
            parts.append(sql.SQL("ADD COLUMN IF NOT EXISTS {} {}").format(name, kind_sql))
        else:
            parts.append(
                sql.SQL("ALTER COLUMN {} TYPE {} USING {}").format(
                    name, kind_sql, using or sql.SQL("NULL")
                )
            )
    return sql.SQL("ALTER TABLE {} {}").format(ident(target), sql.SQL(", ").join(parts))

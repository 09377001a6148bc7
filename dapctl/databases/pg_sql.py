"""SQL text for PostgreSQL loads, built with `psycopg.sql` so every identifier is quoted.

Raw staging rows are whole JSON Lines records in a ``text`` column ``doc``; `convert_raw`
parses each to ``jsonb`` once and `extract` turns a `Column`'s path into an expression over
it, so PostgreSQL, not Python, parses the JSON. TSV parts skip all that: `copy_typed` COPYs
their rows straight into typed staging (PostgreSQL's own text format, as DAP writes it). Typed
staging rows carry the target's columns plus `PART`, `LINE` (the raw row's ctid), `ACTION` and
`SEQ` (COPYed rows' order, from a sequence), names no DAP column can have. "Latest" means: one
row per key, the one with the greatest ``meta_ts`` and, among equals, the later line of the
later part. `TYPES` is PostgreSQL's type mapper: how it spells each neutral `ColumnType`.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

from dapctl.databases.columns import META_TS, Column, ColumnType, TypeMapper
from dapctl.databases.engine import SOFT_DELETED

Target = tuple[str, str]
TYPES = TypeMapper(
    {
        ColumnType.INT16: "smallint",
        ColumnType.INT32: "integer",
        ColumnType.INT64: "bigint",
        ColumnType.FLOAT32: "real",
        ColumnType.FLOAT64: "double precision",
        ColumnType.BOOLEAN: "boolean",
        ColumnType.TIMESTAMP: "timestamp with time zone",
        ColumnType.DATE: "date",
        ColumnType.TIME: "time without time zone",
        ColumnType.UUID: "uuid",
        ColumnType.TEXT: "text",
        ColumnType.JSON: "jsonb",
    },
    # `dap initdb` tables hold UTC wall-clock times without a zone (at any precision: the
    # spelling is read without its modifier), and a plain json column converts to jsonb.
    adopted={
        "timestamp without time zone": ColumnType.TIMESTAMP,
        "timestamp": ColumnType.TIMESTAMP,
        "json": ColumnType.JSON,
    },
)
# Staging lives minutes and is read once: autovacuum there would only burn CPU the load needs.
_NO_VACUUM = sql.SQL("WITH (autovacuum_enabled = off)")
PART, LINE, ACTION, SEQ = (sql.Identifier(f"dapctl.{n}") for n in ("part", "line", "action", "seq"))
SEQUENCE_SUFFIX = "__seq"


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
    if column.type is ColumnType.TEXT:
        return text
    return sql.SQL("{}::{}").format(text, type_sql(column))


def type_sql(column: Column) -> sql.SQL:
    """``column``'s type as PostgreSQL spells it."""
    return sql.SQL(TYPES.spell(column.type))


def qualified(name: str) -> sql.Identifier:
    """``dapctl.<name>``, quoted."""
    return sql.Identifier("dapctl", name)


def create_raw(name: str) -> sql.Composed:
    # UNLOGGED: staging is disposable, so it need not pay for WAL. text, not json: the lines
    # are parsed once, by the conversion; validating them here too costs ~1 s per 1M rows.
    return sql.SQL("CREATE UNLOGGED TABLE dapctl.{} (doc text NOT NULL) {}").format(
        sql.Identifier(name), _NO_VACUUM
    )


def copy_raw(name: str) -> sql.Composed:
    # CSV with 0x01 as quote and 0x02 as delimiter: valid JSON never holds either raw byte,
    # so each line arrives untouched (backslashes included, unlike FORMAT text).
    return sql.SQL(
        "COPY dapctl.{} (doc) FROM STDIN WITH (FORMAT csv, QUOTE e'\\x01', DELIMITER e'\\x02')"
    ).format(sql.Identifier(name))


def create_staging(name: str, columns: Sequence[Column]) -> sql.Composed:
    """The typed staging table: the target's columns, then part, line, ``meta.action`` and seq.

    A COPY (of a TSV piece) leaves part and seq to their defaults: the ``dapctl.part`` setting
    of its transaction, and the next number of a sequence, which counts one COPY's rows in
    order. The sequence belongs to the table, so it goes when the table does.
    """
    defs = [sql.SQL("{} {}").format(sql.Identifier(c.name), type_sql(c)) for c in columns]
    seq = sql.Identifier("dapctl", name + SEQUENCE_SUFFIX)
    return sql.SQL(
        "CREATE SEQUENCE {seq} CACHE 1000; "
        "CREATE UNLOGGED TABLE dapctl.{t} ({defs}, "
        "{part} integer DEFAULT current_setting('dapctl.part', true)::integer, "
        "{line} tid, {action} text, {seqcol} bigint DEFAULT nextval({seqname})) {options}; "
        "ALTER SEQUENCE {seq} OWNED BY dapctl.{t}.{seqcol}"
    ).format(
        seq=seq,
        t=sql.Identifier(name),
        defs=sql.SQL(", ").join(defs),
        part=PART,
        line=LINE,
        action=ACTION,
        seqcol=SEQ,
        seqname=sql.Literal(f'dapctl."{name}{SEQUENCE_SUFFIX}"'),  # names are plain identifiers
        options=_NO_VACUUM,
    )


def copy_typed(staging: str, names: Sequence[sql.Identifier]) -> sql.Composed:
    """COPY rows in PostgreSQL's text format (TSV, ``\\N`` for NULL) into typed staging."""
    return sql.SQL("COPY dapctl.{} ({}) FROM STDIN").format(
        sql.Identifier(staging), sql.SQL(", ").join(names)
    )


def convert_raw(
    staging: str, raw: str, part: int, columns: Sequence[Column], pages: tuple[int, int]
) -> sql.Composed:
    """Parse the lines on ``raw``'s pages [first, end) once each, append them to staging."""
    # The raw table is filled by one COPY and never updated, so its ctid order is line order;
    # a ctid range is a cheap TID Range Scan, so helpers can share one part.
    return sql.SQL(
        "INSERT INTO dapctl.{s} SELECT {exprs}, {part}, line, doc #>> '{{meta,action}}', NULL "
        "FROM (SELECT ctid AS line, doc::jsonb AS doc FROM dapctl.{r} "
        "WHERE ctid >= {first}::tid AND ctid < {end}::tid OFFSET 0) AS parsed"
    ).format(
        s=sql.Identifier(staging),
        exprs=sql.SQL(", ").join(map(extract, columns)),
        part=sql.Literal(part),
        r=sql.Identifier(raw),
        first=sql.Literal(f"({pages[0]},0)"),
        end=sql.Literal(f"({pages[1]},0)"),
    )


def create_table(
    target: Target, columns: Sequence[Column], *, partition_on: str | None = None
) -> sql.Composed:
    """The target table, if it is not there yet. Its pages are filled to 90 % (``fillfactor``):
    an incremental's update then mostly finds room on its row's page and skips the index
    (a HOT update), which makes applying one about a third cheaper; a table made before, or
    by someone else, keeps its own setting. ``partition_on``: partitioned by range on that
    column instead (`dapctl.databases.pg_partitions`), which joins the key and is NOT NULL
    (a partitioned table has no pages of its own to fill)."""
    defs = [
        sql.SQL("{} {}{}").format(
            sql.Identifier(c.name),
            type_sql(c),
            sql.SQL(" NOT NULL" if c.key or c.name == partition_on else ""),
        )
        for c in columns
    ]
    keys = [c.name for c in columns if c.key] + ([partition_on] if partition_on else [])
    layout = (
        sql.SQL("PARTITION BY RANGE ({})").format(sql.Identifier(partition_on))
        if partition_on
        else sql.SQL("WITH (fillfactor = 90)")
    )
    return sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({})) {}").format(
        ident(target),
        sql.SQL(", ").join(defs),
        sql.SQL(", ").join(sql.Identifier(k) for k in keys),
        layout,
    )


def _names(columns: Sequence[Column]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)


def _latest(staging: str, columns: Sequence[Column]) -> sql.Composed:
    keys = _names([c for c in columns if c.key])
    return sql.SQL(
        "SELECT DISTINCT ON ({k}) * FROM dapctl.{s} "
        "ORDER BY {k}, {ts} DESC NULLS LAST, {part} DESC, {line} DESC, {seq} DESC"
    ).format(
        k=keys, s=sql.Identifier(staging), ts=sql.Identifier(META_TS), part=PART, line=LINE, seq=SEQ
    )


def latest(staging: str, columns: Sequence[Column]) -> sql.Composed:
    """Staging's latest record of each key (by ``meta.ts``, then arrival)."""
    return _latest(staging, columns)


def has_duplicates(staging: str, columns: Sequence[Column]) -> sql.Composed:
    """A query yielding one row if some key occurs more than once in staging."""
    return sql.SQL("SELECT 1 FROM dapctl.{} GROUP BY {} HAVING count(*) > 1 LIMIT 1").format(
        sql.Identifier(staging), _names([c for c in columns if c.key])
    )


def _source(staging: str, columns: Sequence[Column], dedupe: bool) -> sql.Composed:
    if dedupe:
        return sql.SQL("({}) AS latest").format(_latest(staging, columns))
    return sql.SQL("dapctl.{} AS latest").format(sql.Identifier(staging))


def snapshot_insert(
    target: Target, staging: str, columns: Sequence[Column], *, dedupe: bool
) -> sql.Composed:
    """Fill the (emptied) target from staging; ``dedupe`` keeps the latest row per key."""
    return sql.SQL("INSERT INTO {t} ({names}) SELECT {names} FROM {source}").format(
        t=ident(target), names=_names(columns), source=_source(staging, columns, dedupe)
    )


def _same_key(columns: Sequence[Column]) -> sql.Composed:
    """``t`` (the target) and ``latest`` (a staged row) have the same key."""
    return sql.SQL(" AND ").join(
        sql.SQL("t.{0} = latest.{0}").format(sql.Identifier(c.name)) for c in columns if c.key
    )


# One row if a foreign key of any table references the table (schema, name).
REFERENCED = """
SELECT 1 FROM pg_constraint k
JOIN pg_class c ON c.oid = k.confrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE k.contype = 'f' AND n.nspname = %s AND c.relname = %s LIMIT 1
"""


def delete_missing(target: Target, staging: str, columns: Sequence[Column]) -> sql.Composed:
    """Delete the target's rows whose key staging (a snapshot) does not hold."""
    return sql.SQL(
        "DELETE FROM {t} AS t WHERE NOT EXISTS (SELECT 1 FROM dapctl.{s} AS latest WHERE {m})"
    ).format(t=ident(target), s=sql.Identifier(staging), m=_same_key(columns))


def add_soft_deleted(target: Target) -> sql.Composed:
    """The column a soft-deleting table marks deleted rows with, if it is not there yet."""
    return sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} timestamptz").format(
        ident(target), sql.Identifier(SOFT_DELETED)
    )


def mark_missing(target: Target, staging: str, columns: Sequence[Column]) -> sql.Composed:
    """Mark deleted (at the parameter's time) the live rows a snapshot no longer holds."""
    return sql.SQL(
        "UPDATE {t} AS t SET {d} = %s WHERE t.{d} IS NULL AND NOT EXISTS "
        "(SELECT 1 FROM dapctl.{s} AS latest WHERE {m})"
    ).format(
        t=ident(target),
        d=sql.Identifier(SOFT_DELETED),
        s=sql.Identifier(staging),
        m=_same_key(columns),
    )


def incremental_apply(
    target: Target,
    staging: str,
    columns: Sequence[Column],
    *,
    dedupe: bool,
    soft: bool = False,
    keep: bool = False,
    also_key: str | None = None,
) -> sql.Composed:
    """Delete the latest ``D`` records' keys (``soft``: mark them deleted at their
    ``meta.ts``), upsert the rest (``soft``: live again; ``also_key``: a table partitioned on
    that column, whose key holds it too); yields the rows applied."""
    keys = [c for c in columns if c.key or c.name == also_key]
    sets = [
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c.name))
        for c in columns
        if c not in keys
    ]
    if soft:
        sets.append(sql.SQL("{} = NULL").format(sql.Identifier(SOFT_DELETED)))
    updates = sql.SQL(", ").join(sets)
    latest: sql.Composable = sql.SQL("")
    source: sql.Composable = sql.SQL("dapctl.{} AS latest").format(sql.Identifier(staging))
    if dedupe:
        latest = sql.SQL("latest AS MATERIALIZED ({}), ").format(_latest(staging, columns))
        source = sql.SQL("latest")
    parts = {
        "t": ident(target),
        "source": source,
        "action": ACTION,
        "match": _same_key(columns),
        "d": sql.Identifier(SOFT_DELETED),
        "ts": sql.Identifier(META_TS),
    }
    gone = (_KEPT if keep else _SOFT_GONE if soft else _HARD_GONE).format(**parts)
    return sql.SQL(
        "WITH {latest}gone AS ({gone} RETURNING 1), "
        "put AS (INSERT INTO {t} ({names}) SELECT {names} FROM {source} "
        "WHERE latest.{action} IS DISTINCT FROM 'D' "
        "ON CONFLICT ({keys}) DO UPDATE SET {updates} RETURNING 1) "
        "SELECT (SELECT count(*) FROM gone) + (SELECT count(*) FROM put)"
    ).format(
        latest=latest,
        gone=gone,
        t=parts["t"],
        source=source,
        action=ACTION,
        names=_names(columns),
        keys=_names(keys),
        updates=updates or sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(keys[0].name)),
    )


_KEPT = sql.SQL("DELETE FROM {t} AS t WHERE FALSE")  # append-only: a delete removes nothing
_HARD_GONE = sql.SQL("DELETE FROM {t} AS t USING {source} WHERE latest.{action} = 'D' AND {match}")
# A soft delete keeps the row, marked at the change's time (the first delete's, if repeated).
_SOFT_GONE = sql.SQL(
    "UPDATE {t} AS t SET {d} = coalesce(latest.{ts}, now()) FROM {source} "
    "WHERE latest.{action} = 'D' AND {match} AND t.{d} IS NULL"
)


def alter(
    target: Target, changes: Sequence[tuple[str, Column, sql.Composable | None]]
) -> sql.Composed:
    """One ALTER TABLE: ``("add", column, None)`` or ``("retype", column, using)`` items."""
    parts = []
    for kind, column, using in changes:
        name, kind_sql = sql.Identifier(column.name), type_sql(column)
        if kind == "add":
            parts.append(sql.SQL("ADD COLUMN IF NOT EXISTS {} {}").format(name, kind_sql))
        else:
            parts.append(
                sql.SQL("ALTER COLUMN {} TYPE {} USING {}").format(
                    name, kind_sql, using or sql.SQL("NULL")
                )
            )
    return sql.SQL("ALTER TABLE {} {}").format(ident(target), sql.SQL(", ").join(parts))

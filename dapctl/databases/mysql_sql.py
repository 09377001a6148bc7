"""SQL text and the part converter for MySQL / MariaDB loads; names are checked, then backquoted.

MySQL has no schemas inside a database, so a DAP table ``canvas.accounts`` is the table
``canvas__accounts`` in the connection's database, as ``dap initdb`` names it (`table_name`);
dapctl's own tables are ``dapctl__table_steps`` and ``dapctl__staging_*``.
`TYPES` spells each neutral `ColumnType`: timestamps are ``DATETIME(6)`` holding UTC (not
``TIMESTAMP(6)``, which converts through the session's time zone and ends in 2038); text is
``LONGTEXT`` (a DAP string may exceed ``TEXT``'s 64 KiB), except in a primary key, which needs
a length: ``VARCHAR(255)`` (255 characters of utf8mb4 fit InnoDB's 3072-byte key limit);
JSON is ``JSON`` (MariaDB keeps it as ``LONGTEXT`` with a validity check); booleans are
``BOOLEAN`` (``TINYINT(1)``); UUIDs ``CHAR(36)``. Tables are utf8mb4 with the binary
collation, so keys compare case-sensitively as DAP's do (``PAD SPACE``: keys differing only by
trailing spaces collide). `to_tsv` turns a JSON Lines part into the tab-separated text
``LOAD DATA LOCAL INFILE`` reads (default escapes, ``\\N`` for NULL), typed, with the record's
action first; the staging table's ``_dapctl_seq`` follows arrival order and breaks ties
between records of one key with equal ``meta.ts``: the later line of the later part wins.
The SQL keeps to what MariaDB 10.11 and MySQL 8 both accept.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import IO, Any

from dapctl.databases.columns import Column, ColumnType, TypeMapper
from dapctl.databases.engine import SOFT_DELETED

TYPES = TypeMapper(
    {
        ColumnType.INT16: "SMALLINT",
        ColumnType.INT32: "INTEGER",
        ColumnType.INT64: "BIGINT",
        ColumnType.FLOAT32: "FLOAT",
        ColumnType.FLOAT64: "DOUBLE",
        ColumnType.BOOLEAN: "BOOLEAN",
        ColumnType.TIMESTAMP: "DATETIME(6)",
        ColumnType.DATE: "DATE",
        ColumnType.TIME: "TIME(6)",
        ColumnType.UUID: "CHAR(36)",
        ColumnType.TEXT: "LONGTEXT",
        ColumnType.JSON: "JSON",
    },
    # information_schema's DATA_TYPE spellings of the types above (`existing_type`).
    adopted={
        "datetime": ColumnType.TIMESTAMP,
        "timestamp": ColumnType.TIMESTAMP,
        "time": ColumnType.TIME,
        "char": ColumnType.UUID,
        "varchar": ColumnType.TEXT,
        "text": ColumnType.TEXT,
        "mediumtext": ColumnType.TEXT,
        # `existing_type`'s names for the same types with fewer digits (dap's `DATETIME`)
        "datetime without microseconds": ColumnType.TIMESTAMP,
        "timestamp without microseconds": ColumnType.TIMESTAMP,
        "time without microseconds": ColumnType.TIME,
    },
)
KEY_TEXT = "VARCHAR(255)"
ACTION, SEQ = "_dapctl_action", "_dapctl_seq"
TABLE_OPTIONS = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
_DATA_TYPES = {"int": "integer", "tinyint": "boolean"}
_PRECISE = ("datetime", "timestamp", "time")  # DAP's times carry microseconds: (6)


def q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def lock_name(database: str, name: str) -> str:
    """A GET_LOCK name (at most 64 characters) for ``name`` in ``database``."""
    text = f"dapctl:{database}.{name}"
    return text if len(text) <= 64 else "dapctl:" + hashlib.sha256(text.encode()).hexdigest()[:56]


def table_name(schema: str, table: str) -> str:
    """The MySQL table holding DAP table ``schema.table``: ``schema__table``."""
    return f"{schema}__{table}"


def spell(column: Column) -> str:
    """A column's type as a table defines it (a text key needs a length)."""
    if column.key and column.type is ColumnType.TEXT:
        return KEY_TEXT
    return TYPES.spell(column.type)


def existing_type(data_type: str, wanted: Column | None, column_type: str = "") -> str:
    """information_schema's DATA_TYPE as `evolve.diff` compares it with `spell`'s. Given
    its COLUMN_TYPE too, a time with fewer digits than ``(6)`` (``DATETIME``: whole seconds)
    reads as "... without microseconds", so a load widens it (in place) before it would
    cut DAP's microseconds off."""
    kind = _DATA_TYPES.get(data_type.lower(), data_type.lower())
    if kind in _PRECISE and column_type and not column_type.lower().endswith("(6)"):
        return f"{kind} without microseconds"
    if wanted is None:
        return kind
    if wanted.key and wanted.type is ColumnType.TEXT and kind == "varchar":
        return TYPES.spell(ColumnType.TEXT)  # a text key is VARCHAR(255) on purpose
    if wanted.type is ColumnType.JSON and kind == "longtext":
        return "json"  # MariaDB's JSON is LONGTEXT with a JSON_VALID check
    return kind


def definition(column: Column) -> str:
    return f"{q(column.name)} {spell(column)}{' NOT NULL' if column.key else ''}"


def create_table(table: str, columns: Sequence[Column]) -> str:
    defs = ", ".join(definition(c) for c in columns)
    keys = ", ".join(q(c.name) for c in columns if c.key)
    return f"CREATE TABLE IF NOT EXISTS {q(table)} ({defs}, PRIMARY KEY ({keys})) {TABLE_OPTIONS}"


def create_staging(staging: str, columns: Sequence[Column]) -> str:
    defs = ", ".join(f"{q(c.name)} {TYPES.spell(c.type)}" for c in columns)
    return (
        f"CREATE TABLE {q(staging)} ({q(SEQ)} BIGINT AUTO_INCREMENT PRIMARY KEY, "
        f"{q(ACTION)} CHAR(1) NOT NULL, {defs}) {TABLE_OPTIONS}"
    )


def load_data(staging: str, columns: Sequence[Column]) -> str:
    names = ", ".join(q(n) for n in [ACTION, *(c.name for c in columns)])
    return (
        f"LOAD DATA LOCAL INFILE %s INTO TABLE {q(staging)} CHARACTER SET utf8mb4 "
        f"FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({names})"
    )


def keep_latest(staging: str, columns: Sequence[Column]) -> str:
    """Delete every staged record but the latest of its key (by ``meta.ts``, then arrival)."""
    keys = ", ".join(q(c.name) for c in columns if c.key)
    return (
        f"DELETE s FROM {q(staging)} s JOIN (SELECT {q(SEQ)}, ROW_NUMBER() OVER "  # noqa: S608
        f"(PARTITION BY {keys} ORDER BY `meta_ts` DESC, {q(SEQ)} DESC) AS rn "
        f"FROM {q(staging)}) r ON r.{q(SEQ)} = s.{q(SEQ)} WHERE r.rn > 1"
    )


HAS_COLUMN = (
    "SELECT 1 FROM information_schema.columns "
    "WHERE table_schema = DATABASE() AND table_name = %s AND column_name = %s"
)
HAS_INDEX = (
    "SELECT 1 FROM information_schema.statistics "
    "WHERE table_schema = DATABASE() AND table_name = %s AND index_name = %s LIMIT 1"
)


def add_soft_deleted(table: str) -> str:
    return f"ALTER TABLE {q(table)} ADD COLUMN {q(SOFT_DELETED)} DATETIME(6) NULL"


def mark_missing(table: str, staging: str, columns: Sequence[Column]) -> str:
    """Mark deleted (at the parameter's time) the live rows ``staging`` does not hold."""
    keys = [c for c in columns if c.key]
    match = " AND ".join(f"t.{q(c.name)} = s.{q(c.name)}" for c in keys)
    return (
        f"UPDATE {q(table)} t LEFT JOIN {q(staging)} s ON {match} "  # noqa: S608
        f"SET t.{q(SOFT_DELETED)} = %s WHERE s.{q(keys[0].name)} IS NULL "
        f"AND t.{q(SOFT_DELETED)} IS NULL"
    )


def soft_delete(table: str, staging: str, columns: Sequence[Column]) -> str:
    """Mark the ``D`` records' rows deleted at the change's time (the first mark kept)."""
    match = " AND ".join(f"t.{q(c.name)} = s.{q(c.name)}" for c in columns if c.key)
    return (
        f"UPDATE {q(table)} t JOIN {q(staging)} s ON {match} "  # noqa: S608
        f"SET t.{q(SOFT_DELETED)} = coalesce(s.`meta_ts`, UTC_TIMESTAMP(6)) "
        f"WHERE s.{q(ACTION)} = 'D' AND t.{q(SOFT_DELETED)} IS NULL"
    )


def insert(
    table: str, staging: str, columns: Sequence[Column], *, upsert: bool, soft: bool = False
) -> str:
    names = ", ".join(q(c.name) for c in columns)
    text = (
        f"INSERT INTO {q(table)} ({names}) SELECT {names} FROM {q(staging)} "  # noqa: S608
        f"WHERE {q(ACTION)} <> 'D'"
    )
    if not upsert:
        return text
    # VALUES() is deprecated in MySQL 8.0.20+ but the row alias that replaces it is not
    # MariaDB's: VALUES() is what both accept.
    sets = [f"{q(c.name)} = VALUES({q(c.name)})" for c in columns if not c.key]
    if soft:
        sets.append(f"{q(SOFT_DELETED)} = NULL")  # a key that comes back lives again
    return f"{text} ON DUPLICATE KEY UPDATE {', '.join(sets)}"


def delete(table: str, staging: str, columns: Sequence[Column]) -> str:
    match = " AND ".join(f"t.{q(c.name)} = s.{q(c.name)}" for c in columns if c.key)
    return f"DELETE t FROM {q(table)} t JOIN {q(staging)} s ON {match} WHERE s.{q(ACTION)} = 'D'"


def to_tsv(lines: Iterable[str], columns: Sequence[Column], out: IO[str]) -> int:
    """Write each JSON Lines record as one typed TSV row; return the number of records."""
    count = 0
    for line in lines:
        if not line.strip():
            continue
        record = json.loads(line)
        action = (record.get("meta") or {}).get("action") or "U"
        fields = [_escape(str(action)[:1])]
        fields += [_field(_value(record, c.path), c.type) for c in columns]
        out.write("\t".join(fields) + "\n")
        count += 1
    return count


def _value(record: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = record
    for step in path:
        if not isinstance(node, dict):
            return None
        node = node.get(step)
    return node


def _field(value: Any, kind: ColumnType) -> str:
    if value is None:
        return "\\N"
    if kind is ColumnType.JSON:
        return _escape(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    if kind is ColumnType.TIMESTAMP:
        return utc_text(str(value))
    if kind is ColumnType.BOOLEAN:
        return "1" if value else "0"
    if kind is ColumnType.FLOAT32 or kind is ColumnType.FLOAT64:
        return repr(float(value))
    return _escape(str(value))


def utc_text(value: str) -> str:
    """An ISO 8601 time (``Z`` or an offset; none means UTC) as UTC ``DATETIME(6)`` text."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(sep=" ", timespec="microseconds")


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0"})


def _escape(text: str) -> str:
    return text.translate(_ESCAPES)

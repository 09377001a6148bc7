"""Parts staged for a lake table: a private DuckDB, the latest record per key out as Arrow.

A lake has no SQL engine to stage into, so each load gets one of its own: an in-memory
DuckDB (spilling to a private temporary folder past its memory limit) that reads the parts
as they arrive, with the DuckDB engine's rule (`duck_sql`: the latest ``meta.ts``, then the
later record). A lake asks DAP for condensed Parquet (the registry's wire format): columns
named by their dotted paths (``key.id``, ``value.name``, ``meta.ts``), nested objects as
JSON text, read by ``read_parquet`` and cast to the table's types, with nothing to parse but
timestamps. JSON Lines parts (a target that also writes files asks for those) go through
``read_json``, told each record's shape. A part is told by its first bytes, so a load takes
either. `Stage.latest` reads the result out as one Arrow table (an incremental's merge);
`Stage.live` streams a snapshot's rows in batches, so its writer never holds the table (the
staging table itself spills to the private folder past DuckDB's memory limit).

Types (`TYPES`, Delta's names): integers, floats, booleans, dates and timestamps (UTC,
microseconds) keep their type; nested objects are JSON text, as are UUIDs and times of day
(Delta has neither type). JSON text rather than structs because DAP's objects are open
(their keys vary by record and over time): a struct would need a schema change for each new
key, and every engine that reads Delta parses JSON text (DuckDB ``->>``, Spark
``from_json``/``get_json_object``, Databricks ``:`` paths, Snowflake ``PARSE_JSON``).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa  # type: ignore[import-untyped]

from dapctl.databases import duck_sql
from dapctl.databases.columns import META_TS, Column, ColumnType, TypeMapper

TYPES = TypeMapper(
    {
        ColumnType.INT16: "short",
        ColumnType.INT32: "integer",
        ColumnType.INT64: "long",
        ColumnType.FLOAT32: "float",
        ColumnType.FLOAT64: "double",
        ColumnType.BOOLEAN: "boolean",
        ColumnType.TIMESTAMP: "timestamp",
        ColumnType.DATE: "date",
        ColumnType.TEXT: "string",
        ColumnType.TIME: "string",
        ColumnType.UUID: "string",
        ColumnType.JSON: "string",
    }
)
_AS_TEXT = {ColumnType.TIME, ColumnType.UUID, ColumnType.JSON}
ACTION = "_action"  # each record's action in `Stage.latest`: 'D' for a delete, else 'U'
BATCH = 262_144  # rows per batch a snapshot's writer is handed (`Stage.live`)
# DuckDB's memory for one load's stage, past which the staging table and the queries on it
# spill to the private folder. Its default, 80 % of the machine's, is for one database per
# process; an apply runs a stage per table load at once, beside the writers. (Not lower:
# read_json reserves twice its largest record, 1 GB, as it starts.)
MEMORY = "4GB"
_PARQUET = b"PAR1"  # a Parquet file's first (and last) bytes


class Stage:
    """One load's staged records (JSON Lines parts), in a DuckDB of its own."""

    def __init__(self, columns: Sequence[Column]) -> None:
        self.columns = list(columns)
        self._spill = Path(tempfile.mkdtemp(prefix="dapctl-lake-"))  # 0700, this user's
        try:
            self._conn = duckdb.connect(":memory:")
            self._conn.execute(
                f"SET temp_directory = '{self._spill}'; SET TimeZone = 'UTC'; "
                f"SET memory_limit = '{MEMORY}'"
            )
            defs = ", ".join(f"{duck_sql.q(c.name)} {_duck_type(c)}" for c in self.columns)
            self._conn.execute(f"CREATE TABLE staging ({defs}, {ACTION} VARCHAR)")
        except BaseException:
            shutil.rmtree(self._spill, ignore_errors=True)
            raise
        self._read = _reader(self.columns)

    def add_part(self, path: Path) -> int:
        """Stage a Parquet or JSON Lines part (see the module doc); return its records."""
        with path.open("rb") as head:
            parquet = head.read(len(_PARQUET)) == _PARQUET
        statement = self._parquet(path) if parquet else self._read
        ((count,),) = self._conn.execute(statement, [str(path)]).fetchall()
        return int(count)

    def _parquet(self, path: Path) -> str:
        """The statement that stages one Parquet part: each column by its dotted name, cast
        to the table's type; NULL for one the part does not have."""
        found = {
            str(name)
            for (name,) in self._conn.execute(
                "SELECT name FROM parquet_schema(?)", [str(path)]
            ).fetchall()
        }

        def pick(name: str, kind: str) -> str:
            return f"CAST({duck_sql.q(name)} AS {kind})" if name in found else f"NULL::{kind}"

        picks = [pick(".".join(c.path), _duck_type(c)) for c in self.columns]
        picks.append(pick("meta.action", "VARCHAR"))
        return f"INSERT INTO staging SELECT {', '.join(picks)} FROM read_parquet(?)"  # noqa: S608

    def latest(self, *, action: bool) -> Any:
        """One Arrow table: the latest record per key (by ``meta.ts``, then arrival), in the
        table's columns and types (see the module doc), and with ``action`` an `ACTION`
        column ('D' for a delete, else 'U')."""
        return self._conn.sql(self._latest(action=action)).to_arrow_table()

    def live(self) -> Live:
        """The latest record of each key that is not a delete, streamed in batches of
        `BATCH` rows (`Live`): a snapshot's writer holds one batch at a time, not the table."""
        query = f"SELECT * EXCLUDE ({ACTION}) FROM ({self._latest(action=True)}) "  # noqa: S608
        return Live(self._conn.sql(query + f"WHERE {ACTION} <> 'D'").to_arrow_reader(BATCH))

    def _latest(self, *, action: bool) -> str:
        names = [duck_sql.q(c.name) for c in self.columns]
        keys = ", ".join(duck_sql.q(c.name) for c in self.columns if c.key)
        if action:
            names.append(f"coalesce({ACTION}, 'U') AS {ACTION}")
        query = f"SELECT {', '.join(names)} FROM staging"  # noqa: S608
        ((twice,),) = self._conn.execute(
            f"SELECT EXISTS (SELECT 1 FROM staging GROUP BY {keys} HAVING count(*) > 1)"  # noqa: S608
        ).fetchall()
        if twice:  # the slower keep-the-latest only when some key is there twice
            query += (
                f" QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY "
                f"{duck_sql.q(META_TS)} DESC NULLS LAST, rowid DESC) = 1"
            )
        return query

    def close(self) -> None:
        self._conn.close()
        shutil.rmtree(self._spill, ignore_errors=True)


class Live:
    """A stream of Arrow record batches (``reader``) that counts the rows it has given."""

    def __init__(self, reader: Any) -> None:
        self.schema, self.rows, self._reader = reader.schema, 0, reader

    def batches(self) -> Iterator[Any]:
        for batch in self._reader:
            self.rows += batch.num_rows
            yield batch

    def reader(self) -> Any:
        """As one ``pyarrow.RecordBatchReader``, for writers that take a stream."""
        return pa.RecordBatchReader.from_batches(self.schema, self.batches())


def _duck_type(column: Column) -> str:
    return "VARCHAR" if column.type in _AS_TEXT else duck_sql.TYPES.spell(column.type)


def _reader(columns: Sequence[Column]) -> str:
    """The statement that stages one part: DuckDB's ``read_json`` told each record's shape
    (the columns' paths as nested structs, JSON objects as ``JSON``), so it parses straight
    into typed values, about three times as fast as extracting each column from a JSON value."""
    tree: dict[str, Any] = {"meta": {"action": "VARCHAR"}}
    for column in columns:
        node = tree
        for step in column.path[:-1]:
            node = node.setdefault(step, {})
        node[column.path[-1]] = "JSON" if column.is_json else _duck_type(column)

    def spell(node: dict[str, Any] | str) -> str:
        if isinstance(node, str):
            return node
        return "STRUCT(" + ", ".join(f"{duck_sql.q(k)} {spell(v)}" for k, v in node.items()) + ")"

    shape = "{" + ", ".join(f"'{k}': '{spell(v)}'" for k, v in tree.items()) + "}"
    picks = [_pick(c.path) + (" :: VARCHAR" if c.is_json else "") for c in columns]
    return (
        f"INSERT INTO staging SELECT {', '.join(picks)}, meta.action FROM read_json(?, "  # noqa: S608
        f"format = 'newline_delimited', columns = {shape}, maximum_object_size = 1073741824)"
    )


def _pick(path: tuple[str, ...]) -> str:
    return ".".join(duck_sql.q(step) for step in path)

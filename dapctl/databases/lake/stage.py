"""Parts staged for a lake table: a private DuckDB, the latest record per key out as Arrow.

A lake has no SQL engine to stage into, so each load gets one of its own: an in-memory
DuckDB (spilling to a private temporary folder past its memory limit) whose JSON reader takes
the parts as they arrive, exactly as the DuckDB engine does (`duck_sql`: the same record
extraction, the same "latest ``meta.ts``, then the later line" rule). `Stage.latest` reads
the result out as one Arrow table the lake writer commits.

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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from dapctl.databases import duck_sql
from dapctl.databases.columns import Column, ColumnType, TypeMapper

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


class Stage:
    """One load's staged records (JSON Lines parts), in a DuckDB of its own."""

    def __init__(self, columns: Sequence[Column]) -> None:
        self.columns = list(columns)
        self._spill = Path(tempfile.mkdtemp(prefix="dapctl-lake-"))  # 0700, this user's
        self._conn = duckdb.connect(":memory:")
        self._conn.execute(f"SET temp_directory = '{self._spill}'; SET TimeZone = 'UTC'")
        self._conn.execute("CREATE SCHEMA dapctl; CREATE TABLE dapctl.staging (doc JSON)")

    def add_part(self, path: Path) -> int:
        """Stage a part through DuckDB's JSON reader; return its records."""
        query = (
            "INSERT INTO dapctl.staging SELECT json FROM read_json_objects("
            "?, format = 'newline_delimited', maximum_object_size = 1073741824)"
        )
        row = self._conn.execute(query, [str(path)]).fetchone()
        return int(row[0]) if row else 0

    def latest(self, *, action: bool) -> Any:
        """One Arrow table: the latest record per key, in the table's columns and types (see
        the module doc), and with ``action`` an `ACTION` column."""
        exprs = [f"{_typed(c)} AS {duck_sql.q(c.name)}" for c in self.columns]
        if action:
            exprs.append(f"{duck_sql.action()} AS {ACTION}")
        latest = duck_sql.latest("staging", self.columns)
        query = f"SELECT {', '.join(exprs)} FROM ({latest})"  # noqa: S608
        return self._conn.sql(query).to_arrow_table()

    def close(self) -> None:
        self._conn.close()
        shutil.rmtree(self._spill, ignore_errors=True)


def _typed(column: Column) -> str:
    read = duck_sql.extract(column)
    return f"CAST({read} AS VARCHAR)" if column.type in _AS_TEXT else read

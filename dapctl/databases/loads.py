"""``dapctl.runs`` and ``dapctl.loads`` in a table target's own database: which apply loaded
what, committed with each load (as dlt's ``_dlt_loads``), so analysts can join their data to
when and how it was loaded.

A load's commit adds its run's row (once per run: run id, config, host, pid, start) and one
row per load (run id, schema, table, job, address, kind, watermark, schema version, rows) in
the SAME transaction as the data and the step row: a load that is not there never has a
row, and a row never lacks its load. MySQL names them ``dapctl__runs`` and
``dapctl__loads``. `setup` is each engine's DDL; `run_params` and `load_params` the values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from dapctl.databases.engine import TableName

Dialect = Literal["postgresql", "duckdb", "mysql"]


@dataclass(frozen=True)
class RunRow:
    """The apply a load belongs to."""

    run_id: str
    config: str
    host: str
    pid: int
    started: datetime


_TEXT = {"postgresql": "text", "duckdb": "VARCHAR", "mysql": "VARCHAR(64)"}  # MySQL: keys fit
_TIME = {"postgresql": "timestamptz", "duckdb": "TIMESTAMPTZ", "mysql": "DATETIME(6)"}
_NAMES = {
    "postgresql": ("dapctl.runs", "dapctl.loads"),
    "duckdb": ("dapctl.runs", "dapctl.loads"),
    "mysql": ("dapctl__runs", "dapctl__loads"),
}


def setup(dialect: Dialect) -> list[str]:
    """The statements that create both tables if they are missing."""
    runs, loads = _NAMES[dialect]
    text, time = _TEXT[dialect], _TIME[dialect]
    mysql = dialect == "mysql"
    options = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin" if mysql else ""
    long = "LONGTEXT" if dialect == "mysql" else text
    return [
        f"CREATE TABLE IF NOT EXISTS {runs} (run_id {text} NOT NULL PRIMARY KEY, "
        f"config {long}, host {long}, pid BIGINT, started {time}){options}",
        f"CREATE TABLE IF NOT EXISTS {loads} (run_id {text} NOT NULL, schema_name {text} NOT "
        f"NULL, table_name {text} NOT NULL, job_id {text} NOT NULL, address {long}, kind "
        f"{text}, watermark {time}, schema_version BIGINT, records BIGINT, committed_at {time}, "
        f"PRIMARY KEY (run_id, schema_name, table_name, job_id)){options}",
    ]


def insert_run(dialect: Dialect) -> str:
    runs = _NAMES[dialect][0]
    mark = "?" if dialect == "duckdb" else "%s"
    values = ", ".join([mark] * 5)
    columns = "(run_id, config, host, pid, started)"
    if dialect == "mysql":
        return f"INSERT IGNORE INTO {runs} {columns} VALUES ({values})"  # noqa: S608
    return f"INSERT INTO {runs} {columns} VALUES ({values}) ON CONFLICT DO NOTHING"  # noqa: S608


def insert_load(dialect: Dialect) -> str:
    loads = _NAMES[dialect][1]
    mark = "?" if dialect == "duckdb" else "%s"
    columns = (
        "(run_id, schema_name, table_name, job_id, address, kind, watermark, schema_version, "
        "records, committed_at)"
    )
    values = ", ".join([mark] * 10)
    if dialect == "mysql":
        return f"INSERT IGNORE INTO {loads} {columns} VALUES ({values})"  # noqa: S608
    return f"INSERT INTO {loads} {columns} VALUES ({values}) ON CONFLICT DO NOTHING"  # noqa: S608


def run_params(run: RunRow, *, naive: bool = False) -> tuple[Any, ...]:
    return (run.run_id, run.config, run.host, run.pid, _time(run.started, naive))


def load_params(
    run: RunRow, table: TableName, address: str, record: str, rows: int, *, naive: bool = False
) -> tuple[Any, ...]:
    """A load's row from its step record (the JSON the commit writes as the step row)."""
    step = json.loads(record)
    watermark = step.get("watermark")
    mark = datetime.fromisoformat(watermark.replace("Z", "+00:00")) if watermark else None
    completed = step.get("completed_at")
    done = datetime.fromisoformat(completed.replace("Z", "+00:00")) if completed else None
    return (
        run.run_id, *table, step.get("job_id") or "", address, step.get("kind"),
        _time(mark, naive), step.get("schema_version"), rows, _time(done, naive),
    )  # fmt: skip


def _time(value: datetime | None, naive: bool) -> datetime | None:
    """MySQL's DATETIME holds UTC wall-clock time without a zone."""
    if value is None or not naive:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)

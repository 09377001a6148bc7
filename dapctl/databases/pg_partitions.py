"""PostgreSQL append-only tables partitioned by day (issue 24: logs kept past DAP's 30 days).

An append-only table whose target names a timestamp column (``partition_by``; ``timestamp``
for ``canvas_logs``) is made, when dapctl creates it, as a table partitioned by range on that
column, one partition per UTC day, named ``<table>_pYYYYMMDD``. A year of ``web_logs`` then
stays quick to query by time (the planner skips the other days), and an old day leaves the
table with ``ALTER TABLE ... DETACH PARTITION`` (then ``DROP TABLE`` or an archive), at no
cost to the rest.

PostgreSQL wants the partition column in the primary key, so the key is the DAP key plus
that column, and a record is upserted on both. A log row is written once and never changes,
so a window loaded again finds each of its rows by the same pair: nothing is added twice.
The partition column is therefore NOT NULL; a record without a time stops the load with a
message that says how to go on. Each load first makes the partitions of the days its staged
records fall on, in its own transaction, so a kill leaves at worst an empty partition.
A table made before, or unpartitioned, stays as it is: what is partitioned is read off the
table (`partition_column`), never assumed from the config.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from psycopg import sql

from dapctl.databases.columns import Column, ColumnType
from dapctl.databases.pg_sql import ACTION, Target, ident
from dapctl.errors import DatabaseError

_PARTITION_COLUMN = """
SELECT a.attname FROM pg_partitioned_table p
JOIN pg_class c ON c.oid = p.partrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = p.partattrs[0]
WHERE n.nspname = %s AND c.relname = %s
"""


def partition_column(cur: Any, target: Target) -> str | None:
    """The column ``target`` is partitioned on, or None for a plain (or missing) table."""
    row = cur.execute(_PARTITION_COLUMN, target).fetchone()
    return str(row[0]) if row else None


def check_column(target: Target, columns: Sequence[Column], name: str) -> None:
    """`DatabaseError` naming the table's timestamp value columns unless ``name`` is one."""
    found = next((c for c in columns if c.name == name and not c.key), None)
    if found is None or found.type is not ColumnType.TIMESTAMP:
        stamps = [c.name for c in columns if c.type is ColumnType.TIMESTAMP and not c.key]
        raise DatabaseError(
            f"partition_by = {name!r}: {'.'.join(target)} has no timestamp column of that name "
            f"(its timestamp columns: {', '.join(stamps) or 'none'}); name one, or set "
            "partition_by = false"
        )


def make_days(cur: Any, target: Target, staging: str, on: str) -> None:
    """Create the missing partitions of the days the staged records fall on; `DatabaseError`
    if a staged record has no time, or its day's partition was detached."""
    column = sql.Identifier(on)
    days = sql.SQL(
        "SELECT DISTINCT date_trunc('day', {c} AT TIME ZONE 'UTC') FROM dapctl.{s} "
        "WHERE {a} IS DISTINCT FROM 'D'"
    ).format(c=column, s=sql.Identifier(staging), a=ACTION)
    for (day,) in cur.execute(days).fetchall():
        if day is None:
            raise DatabaseError(
                f"{'.'.join(target)} is partitioned by day on {on}, and a record of this load "
                f"has no {on}: it cannot be kept. Load it into a table that is not partitioned "
                "(partition_by = false, and a new db_table) or report it to Instructure"
            )
        name = f"{target[1]}_p{day:%Y%m%d}"
        attached = _attached(cur, target, name)
        if attached:
            continue
        if attached is False:
            raise DatabaseError(
                f"this load has records of {day:%Y-%m-%d} for {'.'.join(target)}, whose "
                f"partition {target[0]}.{name} is there but detached: attach it again, or "
                "rename it so that dapctl makes a new one"
            )
        start, end = _bounds(day)  # DDL takes no parameters: the bounds are literals
        cur.execute(
            sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                ident((target[0], name)), ident(target), sql.Literal(start), sql.Literal(end)
            )
        )


def _bounds(day: datetime) -> tuple[str, str]:
    start = day.replace(tzinfo=None)
    return f"{start:%Y-%m-%d} 00:00:00+00", f"{start + timedelta(days=1):%Y-%m-%d} 00:00:00+00"


def _attached(cur: Any, target: Target, name: str) -> bool | None:
    """Whether table ``name`` (in the target's schema) is a partition of the target: None if
    there is no such table, False if it is one but no partition of it (detached)."""
    query = (
        "SELECT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid "
        "AND i.inhparent = %s::regclass) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s"
    )
    parent = ident(target).as_string(cur)
    row = cur.execute(query, (parent, target[0], name)).fetchone()
    return None if row is None else bool(row[0])

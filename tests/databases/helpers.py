"""Helpers for the database tests: parts from emulator records, expected rows, and a
`Backend` that opens databases and reads tables back in a comparable form."""

from __future__ import annotations

import copy
import json
import re
import shutil
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from dapctl.databases import Column, Database, open_database, table_columns
from dapctl.databases.columns import ColumnType
from dapctl.databases.registry import engine_of
from dapctl.emulator.catalog import TABLES, TableSpec, json_schema


def spec(namespace: str, table: str) -> TableSpec:
    return next(t for t in TABLES if t.namespace == namespace and t.name == table)


def dap_schema(namespace: str, table: str) -> dict[str, Any]:
    return json_schema(spec(namespace, table), 1)


def with_value_field(schema: dict[str, Any], name: str, field: dict[str, Any] | None):
    """A copy of ``schema`` with value field ``name`` set to ``field`` (None: removed)."""
    out = copy.deepcopy(schema)
    props = out["schema"]["properties"]["value"]["properties"]
    if field is None:
        props.pop(name)
    else:
        props[name] = field
    return out


def write_part(path: Path, records: Iterable[dict[str, Any]]) -> Path:
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    path.write_text("".join(dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def expected_rows(records: Sequence[dict[str, Any]], columns: Sequence[Column]) -> list[tuple]:
    """The rows a table should hold for ``records``, sorted, in ``columns`` order."""
    rows = []
    for record in records:
        row = []
        for column in columns:
            value = record.get(column.path[0], {}).get(column.path[1])
            if value is not None and column.type is ColumnType.TIMESTAMP:
                value = _ts(value)
            row.append(value)
        rows.append(tuple(row))
    return sorted(rows, key=lambda r: str(r[0]))


def _norm(value: Any, column: Column) -> Any:
    if value is None:
        return None
    if column.is_json and isinstance(value, str):
        return json.loads(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return value


def query_postgresql(backend: Backend, text: str) -> list[tuple]:
    """A statement on a connection of the test's own (what a person's psql would see)."""
    with psycopg.connect(backend.url, autocommit=True) as conn:
        cur = conn.execute(text.encode())
        return list(cur.fetchall()) if cur.description else []


def query_duckdb(backend: Backend, text: str) -> list[tuple]:
    """A statement on the file's one connection (DuckDB has one writer process)."""
    db = backend.opened[0] if backend.opened else backend.open()
    cur = db.conn.execute(text)  # type: ignore[attr-defined]
    return [tuple(r) for r in cur.fetchall()] if cur.description else []


def query_lake(backend: Backend, text: str) -> list[tuple]:
    """A read of a lake's tables by a second engine: every table, as the format's own reader
    (delta-rs, pyiceberg) reads it, in a fresh in-memory DuckDB under its own schema and
    name; ``dapctl.table_steps`` is the step records as the engine reads them (schema_name,
    table_name, address, record).
    ``DROP TABLE schema.table`` removes the table's folder, as a user would."""
    import duckdb

    db = backend.opened[0] if backend.opened else backend.open()
    if (dropped := re.fullmatch(r"DROP TABLE (\w+)\.(\w+)", text)) is not None:
        if hasattr(db, "catalog"):  # Iceberg: dropped from its catalog
            db.catalog.drop_table(dropped.groups())
        else:  # Delta: a table is its folder
            shutil.rmtree(db.location(dropped.groups()))  # type: ignore[attr-defined]
        return []
    conn = duckdb.connect(":memory:")
    conn.execute("SET TimeZone = 'UTC'; CREATE SCHEMA dapctl")
    for schema, table in sorted(db.tables()):
        data = db.arrow((schema, table))  # type: ignore[attr-defined]
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        conn.register("data", data)
        conn.execute(f'CREATE TABLE "{schema}"."{table}" AS SELECT * FROM data')  # noqa: S608
        conn.unregister("data")
    steps = [(s, t, row.address, row.record) for (s, t), row in db.read_steps().items()]
    conn.execute(
        "CREATE TABLE dapctl.table_steps (schema_name VARCHAR, table_name VARCHAR, "
        "address VARCHAR, record VARCHAR)"
    )
    if steps:
        conn.executemany("INSERT INTO dapctl.table_steps VALUES (?, ?, ?, ?)", steps)
    cur = conn.execute(text)
    return [tuple(r) for r in cur.fetchall()] if cur.description else []


Query = Callable[["Backend", str], list[tuple]]


class Backend:
    """One database under test: ``open()`` a `Database`, ``rows(...)``, ``query(...)`` (by
    the engine's own ``Query``, from its line in ``tests/databases/conftest.py``)."""

    def __init__(self, kind: str, url: str, base_dir: Path, query: Query) -> None:
        self.kind, self.url, self.base_dir = kind, url, base_dir
        self._query = query
        self.opened: list[Database] = []

    @property
    def sql(self) -> bool:
        """Whether the engine is a SQL database (not a lake)."""
        return engine_of(self.url).capabilities.sql

    def open(self) -> Database:
        db = open_database(self.url, base_dir=self.base_dir)
        self.opened.append(db)
        return db

    def close(self) -> None:
        for db in self.opened:
            db.close()

    def query(self, text: str) -> list[tuple]:
        return self._query(self, text)

    def rows(self, table: str, schema: dict[str, Any]) -> list[tuple]:
        columns = table_columns(schema)
        names = ", ".join(f'"{c.name}"' for c in columns)
        return self.rows_of(self.query(f"SELECT {names} FROM {table}"), schema)  # noqa: S608

    def rows_of(self, got: Iterable[Sequence[Any]], schema: dict[str, Any]) -> list[tuple]:
        """Rows read in the schema's column order, as `expected_rows` spells them, sorted."""
        columns = table_columns(schema)
        normed = [tuple(_norm(v, c) for v, c in zip(row, columns, strict=True)) for row in got]
        return sorted(normed, key=lambda r: str(r[0]))

    def staging_tables(self) -> list[str]:
        found = self.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'dapctl'"
        )
        return sorted(n for (n,) in found if n.startswith("staging_"))


def load(
    db: Database,
    table: str,
    schema: dict[str, Any],
    parts: Sequence[Path],
    *,
    kind: str = "snapshot",
    address: str = "step",
    record: str = "{}",
) -> int:
    """Run one whole load of ``parts`` into ``canvas.<table>``."""
    loading = db.begin_load(schema="canvas", table=table, dap_schema=schema, kind=kind)  # type: ignore[arg-type]
    for part in parts:
        loading.add_part(part)
    return loading.commit(address=address, record=record)


def apply_lake_chain(
    emu: Any,
    write_config: Callable[[str], Path],
    run_cli: Callable[..., Any],
    url: str,
    *,
    tables: Sequence[str],
    rounds: int,
    env: dict[str, str] | None = None,
    secret: str | None = None,
) -> Path:
    """A config whose one target keeps ``tables`` in the lake at ``url``, applied ``rounds``
    times with the emulator's data changing between (users: updates, inserts and a delete;
    accounts: an update), then once more. Every apply exits 0; none of the ``rounds`` shows
    ``secret``. Returns the config's path."""
    from tests.apply_helpers import config_text, environ

    names = ", ".join(f'"{t}"' for t in tables)
    text = config_text(emu, tables=f"[{names}]", extra_target='database = "lake"')
    text = text.replace('output = "out/', '# output = "out/')
    path = write_config(f'[databases.lake]\nurl = "{url}"\n\n{text}')
    variables = {**environ(emu), **(env or {})}
    for _ in range(rounds):
        done = run_cli("apply", str(path), environ=variables)
        assert done.code == 0, done.stderr
        if secret is not None:
            assert secret not in done.stdout + done.stderr
        emu.advance(600)
        emu.change("canvas", "users", updates=3, inserts=2, deletes=1)
        if "accounts" in tables:
            emu.change("canvas", "accounts", updates=1)
    done = run_cli("apply", str(path), environ=variables)
    assert done.code == 0, done.stderr
    return path


def assert_lake_matches(lake: Backend, emu: Any, tables: Sequence[str]) -> None:
    """Each of ``tables`` in ``lake`` holds the emulator's current rows."""
    for table in tables:
        schema = dap_schema("canvas", table)
        want = expected_rows(emu.expected_snapshot("canvas", table), table_columns(schema))
        assert lake.rows(f"canvas.{table}", schema) == want, table

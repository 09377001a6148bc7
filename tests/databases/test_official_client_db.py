"""Fidelity: the official client's ``dap initdb`` then ``dap syncdb`` against the emulator.

Both commands must succeed into a PostgreSQL database of the test's own, and leave each table
equal, row for row and column for column, to the emulator's data (nested objects, enums, nulls,
unicode and escapes included). That is what lets the benchmark compare dapctl with the official
client on the same data. The emulator's free-form JSON columns (``accounts.settings``) are left
out: client 2.3.1 cannot type a JSON Schema ``object`` without ``properties`` (it fails with
``NameError: name 'JsonType' is not defined`` before it touches the database).

Needs ``instructure-dap-client[postgresql]`` (in the ``test`` extra); without it the test is
skipped, saying so, except under ``CI=true``, where it fails (``tests/needs.py``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dapctl.emulator import Emulator
from tests.needs import unavailable

DAP = Path(sys.executable).with_name("dap")
TABLES = ("courses", "submissions")


def _missing() -> str | None:
    if not DAP.exists():
        return f"no {DAP}: pip install 'instructure-dap-client[postgresql]' (the test extra)"
    if importlib.util.find_spec("asyncpg") is None:
        return "asyncpg is not installed: pip install 'instructure-dap-client[postgresql]'"
    return None


@pytest.fixture
def official() -> None:
    reason = _missing()
    if reason is not None:
        unavailable("the official client", reason)


def dap(emu: Emulator, cwd: Path, *args: str) -> None:
    client_id, secret = emu.credentials
    env = {**os.environ, "DAP_TRACKING": "false", "DAP_CLIENT_ID": client_id,
           "DAP_CLIENT_SECRET": secret, "NO_COLOR": "1", "COLUMNS": "200"}  # fmt: skip
    command = [str(DAP), "--base-url", emu.base_url, "--non-interactive", *args]
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


def _timestamp(text: str) -> datetime:
    """A UTC instant from the emulator's ``...Z`` or PostgreSQL's zoneless JSON rendering."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _normal(value: Any, node: dict[str, Any]) -> Any:
    """``value`` as the schema ``node`` types it; nulls dropped from objects."""
    if isinstance(value, dict):
        props = node.get("properties", {})
        out = {k: _normal(v, props.get(k, {})) for k, v in value.items() if v is not None}
        return out or None
    if node.get("format") == "date-time":
        return _timestamp(value)
    if node.get("type") == "number":
        return float(value)
    return value


def _row(record: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A row of the table as ``dap initdb`` lays it out: key and value fields, no meta."""
    value_schema = schema["properties"]["value"]
    flat = {**record["key"], **record.get("value", {})}
    return {k: v for k, v in _normal(flat, value_schema).items()}


def _table(url: str, table: str, schema: dict[str, Any]) -> list[dict[str, Any]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(f"SELECT row_to_json(t)::text FROM canvas.{table} t ORDER BY id")  # noqa: S608
        return [_row({"key": {}, "value": json.loads(text)}, schema) for (text,) in rows]


def _expected(records: list[dict[str, Any]], schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [_row(r, schema) for r in sorted(records, key=lambda r: r["key"]["id"])]


def _schema(emu: Emulator, table: str) -> dict[str, Any]:
    from dapctl.emulator.catalog import json_schema

    found = emu.data.table("canvas", table)
    assert found is not None
    return json_schema(found.spec, 1)["schema"]


def test_initdb_then_syncdb_leave_tables_equal_to_the_emulator(
    official: None, make_emulator, pg_url: str, tmp_path: Path
) -> None:
    emu = make_emulator(part_size=15)  # several parts per table
    schemas = {table: _schema(emu, table) for table in TABLES}
    where = ["--namespace", "canvas", "--table", ",".join(TABLES), "--connection-string", pg_url]
    dap(emu, tmp_path, "initdb", *where)
    for table, schema in schemas.items():
        expected = _expected(emu.expected_snapshot("canvas", table), schema)
        assert _table(pg_url, table, schema) == expected, table
    emu.advance(600)
    for table in TABLES:
        emu.change("canvas", table, inserts=4, updates=5, deletes=3)
    dap(emu, tmp_path, "syncdb", *where)
    for table, schema in schemas.items():
        expected = _expected(emu.expected_snapshot("canvas", table), schema)
        assert len(expected) == 41  # 40 rows, 4 inserted, 3 deleted
        assert _table(pg_url, table, schema) == expected, table

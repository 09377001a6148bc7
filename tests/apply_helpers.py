"""Helpers for apply tests: configs pointed at a test emulator, fast connections, and
reading outputs back to compare with the emulator's data."""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dapctl.api.session import Connection
from dapctl.apply import ApplyOptions
from dapctl.emulator import Emulator
from dapctl.loading import load_config
from dapctl.results import StepResult
from dapctl.wiring import run_apply

SECRET_VAR = "TEST_DAP_SECRET"

# Polls and backoffs in milliseconds, so fault tests take no wall time worth the name.
FAST = Connection(poll_initial=0.01, poll_max=0.05, timeout=(2.0, 5.0))


# The test emulator has no rate limits; the client's own would make a many-table test wait
# minutes. Tests of the limits themselves pass their own profile_extra.
GENEROUS = (
    "rate_limits = {jobs_per_minute = 60000, job_status_per_minute = 60000, "
    "tables_per_minute = 60000, schema_per_minute = 60000, urls_per_minute = 60000}"
)


def config_text(
    emu: Emulator,
    *,
    tables: str = '["accounts", "users"]',
    fmt: str = "jsonl",
    output: str = "out/{profile}/{table}/{kind}-{timestamp}.{format}.gz",
    extra_target: str = "",
    settings: str = "",
    profile_extra: str = "",
) -> str:
    client_id, _ = emu.credentials
    return f"""
[settings]
state = "state/dapctl.state.json"
{settings}

[retry]
attempts = 5
initial_backoff = 0.01
max_backoff = 0.05

[profiles.univ_a]
base_url = "{emu.base_url}"
client_id = "{client_id}"
client_secret_env = "{SECRET_VAR}"
{profile_extra or GENEROUS}

[[targets]]
name = "core"
tables = {tables}
format = "{fmt}"
output = "{output}"
{extra_target}
"""


def duckdb_target_config(emu: Emulator, extra_target: str) -> str:
    """`config_text` whose target keeps its tables in DuckDB database ``wh`` (no files),
    with ``extra_target`` lines."""
    text = config_text(emu, extra_target=f'database = "wh"\n{extra_target}')
    text = text.replace('output = "out/', '# output = "out/')
    return f'[databases.wh]\nurl = "duckdb:///wh.duckdb"\n\n{text}'


def environ(emu: Emulator) -> dict[str, str]:
    return {SECRET_VAR: emu.credentials[1]}


def apply(
    path: Path, emu: Emulator, *, connection: Connection = FAST, **options: Any
) -> list[StepResult]:
    lock_timeout = options.pop("lock_timeout", 0.0)
    return run_apply(
        load_config(path),
        environ=environ(emu),
        options=ApplyOptions(**options),
        connection=connection,
        lock_timeout=lock_timeout,
    )


def by_table(results: list[StepResult]) -> dict[str, StepResult]:
    return {result.table: result for result in results}


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    data = Path(path).read_bytes()
    if str(path).endswith(".gz"):
        data = gzip.decompress(data)
    return [json.loads(line) for line in data.decode().splitlines() if line]


def replay(files: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """Fold a snapshot and its incrementals into the table's current rows, by key."""
    rows: dict[str, Any] = {}
    for records in files:
        for record in records:
            key = json.dumps(record["key"], sort_keys=True)
            if record["meta"].get("action") == "D":
                rows.pop(key, None)
            else:
                rows[key] = record.get("value")
    return rows


def expected_rows(records: list[Mapping[str, Any]]) -> dict[str, Any]:
    return {json.dumps(r["key"], sort_keys=True): r.get("value") for r in records}

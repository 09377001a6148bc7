"""Lake loads from condensed Parquet parts (what a table-only lake target asks DAP for: typed
columns, nothing to parse but timestamps): they leave a table exactly as JSON Lines parts of
the same records do, and as the emulator's data, on both formats."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dapctl.apply import ApplyOptions
from dapctl.databases import table_columns
from dapctl.emulator import Emulator, EmulatorSettings
from dapctl.emulator.formats import encode_part
from dapctl.loading import load_config
from dapctl.wiring import run_apply
from tests.apply_helpers import FAST, config_text, environ
from tests.databases.helpers import Backend, dap_schema, expected_rows, load, query_lake, spec
from tests.databases.helpers import write_part as write_jsonl

FORMATS = ("delta", "iceberg")


@pytest.fixture(params=FORMATS)
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    made = Backend(f"{request.param}+file", f"{request.param}+file://{tmp_path}/lake",
                   tmp_path, query_lake)  # fmt: skip
    yield made
    made.close()


def write_parquet(path: Path, table: str, records: list[dict[str, Any]], *, snapshot: bool):
    """A part as DAP serves condensed Parquet (dotted column names, objects as JSON text)."""
    spec_ = spec("canvas", table)
    path.write_bytes(encode_part(records, spec_, "parquet", "condensed", 6, snapshot=snapshot))
    return path


@pytest.mark.parametrize("table", ["courses", "accounts", "users", "submissions"])
def test_parquet_snapshot_then_chained_incrementals_match_the_server(lake, tmp_path, table):
    # courses: a nested object; accounts: free-form JSON; every table: enums, nulls, tricky
    # text as the emulator generates it.
    with Emulator(EmulatorSettings.for_tests(rows_per_table=300)) as emu:
        db = lake.open()
        schema = dap_schema("canvas", table)
        snap = emu.expected_snapshot("canvas", table)
        parts = [
            write_parquet(tmp_path / f"s{i}.parquet", table, snap[i : i + 70], snapshot=True)
            for i in range(0, len(snap), 70)
        ]
        assert load(db, table, schema, parts) == 300
        for round_ in range(3):
            since = emu.now
            emu.change("canvas", table, inserts=7, updates=11, deletes=5)
            emu.advance(60)
            changes = emu.expected_changes("canvas", table, since)
            part = write_parquet(tmp_path / f"i{round_}.parquet", table, changes, snapshot=False)
            assert load(db, table, schema, [part], kind="incremental") == 23
            want = expected_rows(emu.expected_snapshot("canvas", table), table_columns(schema))
            assert lake.rows(f"canvas.{table}", schema) == want


def test_parquet_and_jsonl_parts_of_the_same_records_leave_equal_tables(lake, tmp_path):
    schema = dap_schema("canvas", "courses")
    records = [
        {"key": {"id": 1},
         "value": {"name": "x\\y\u00e9\U0001f393\t\n", "settings": {"theme": "\\N"}},
         "meta": {"ts": "2026-01-01T00:00:00Z", "action": "U"}},
        {"key": {"id": 2}, "value": {"name": 'a\tb\\n"c" NULL 中文', "course_code": ""},
         "meta": {"ts": "2026-01-01T00:00:00.5+02:00", "action": "U"}},
        {"key": {"id": 3}, "value": {"name": "\\", "settings": {"hide_grades": False}},
         "meta": {"ts": "2026-01-01T00:00:00Z", "action": "U"}},
    ]  # fmt: skip
    db = lake.open()
    load(db, "courses", schema, [write_jsonl(tmp_path / "p.jsonl", records)])
    from_jsonl = lake.rows("canvas.courses", schema)
    load(db, "courses", schema, [write_parquet(tmp_path / "p.parquet", "courses", records,
                                               snapshot=True)])  # fmt: skip
    assert lake.rows("canvas.courses", schema) == from_jsonl
    assert from_jsonl == expected_rows(records, table_columns(schema))


def test_the_later_row_of_a_key_wins_across_and_within_parquet_parts(lake, tmp_path):
    schema = dap_schema("canvas", "users")
    db = lake.open()

    def rec(i, name, ts="2026-01-02T00:00:00Z", action="U"):
        value = {} if action == "D" else {"value": {"name": name, "workflow_state": "registered"}}
        return {"key": {"id": i}, **value, "meta": {"ts": ts, "action": action}}

    base = [rec(i, "v0") for i in (1, 2, 3)]
    load(db, "users", schema, [write_parquet(tmp_path / "s.parquet", "users", base, snapshot=True)])
    first = [rec(1, "late", "2026-01-03T00:00:00Z"), rec(2, "a"), rec(3, "x"), rec(4, "new")]
    second = [rec(1, "early"), rec(2, "", action="D"), rec(3, "y", action="D"), rec(3, "z")]
    parts = [
        write_parquet(tmp_path / "a.parquet", "users", first, snapshot=False),
        write_parquet(tmp_path / "b.parquet", "users", second, snapshot=False),
    ]
    load(db, "users", schema, parts, kind="incremental")
    got = {row[0]: row[1] for row in lake.rows("canvas.users", schema)}
    assert got == {1: "late", 3: "z", 4: "new"}


def test_a_column_a_part_does_not_have_is_null(lake, tmp_path):
    """A part written before DAP added a column (or without one the table has)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = dap_schema("canvas", "users")
    part = tmp_path / "old.parquet"
    pq.write_table(
        pa.table({"key.id": [1], "value.name": ["a"], "meta.ts": ["2026-01-01T00:00:00Z"]}), part
    )
    load(lake.open(), "users", schema, [part])
    row = lake.rows("canvas.users", schema)[0]
    assert row[:2] == (1, "a") and set(row[2:-1]) == {None}


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_table_only_lake_target_asks_for_condensed_parquet(fmt, make_emulator, write_config):
    emu = make_emulator()
    text = config_text(emu, extra_target='database = "lake"').replace('output = "out/', "# ")
    path = write_config(f'[databases.lake]\nurl = "{fmt}+file:lake"\n\n{text}')
    results = run_apply(
        load_config(path), environ=environ(emu), options=ApplyOptions(), connection=FAST
    )
    assert [r.status for r in results] == ["ok", "ok"], results
    lake = Backend(f"{fmt}+file", f"{fmt}+file:lake", path.parent, query_lake)
    for result in results:
        job = emu.jobs.get(str(result.job_id), emu.clock())
        assert job is not None and (job.query.format, job.query.mode) == ("parquet", "condensed")
        schema = dap_schema("canvas", result.table)
        want = expected_rows(emu.expected_snapshot("canvas", result.table), table_columns(schema))
        assert lake.rows(f"canvas.{result.table}", schema) == want
    lake.close()


def test_a_snapshot_streams_to_the_writer_and_its_stage_spills(lake, tmp_path, monkeypatch):
    """A stage capped far below its rows spills to its private folder; the writer takes the
    rows a batch at a time (Iceberg: a data file per chunk), and every row lands once."""
    from dapctl.databases.lake import iceberg_cow, stage

    monkeypatch.setattr(stage, "MEMORY", "64MB")
    monkeypatch.setattr(stage, "BATCH", 50_000)
    monkeypatch.setattr(iceberg_cow, "CHUNK", 4 * 1024 * 1024)
    schema = dap_schema("canvas", "users")
    records = [
        {"key": {"id": i}, "value": {"name": f"user {i}" * 40, "workflow_state": "registered"},
         "meta": {"ts": "2026-01-01T00:00:00Z", "action": "U"}}
        for i in range(300_000)
    ]  # fmt: skip
    part = write_parquet(tmp_path / "big.parquet", "users", records, snapshot=True)
    assert load(lake.open(), "users", schema, [part]) == 300_000
    got = lake.open().arrow(("canvas", "users"))  # type: ignore[attr-defined]
    assert got.num_rows == 300_000 and len(set(got["id"].to_pylist())) == 300_000
    if lake.kind.startswith("iceberg"):
        table = lake.open().open_table(("canvas", "users"))  # type: ignore[attr-defined]
        assert len(list(table.scan().plan_files())) > 1  # chunked, not one file of it all

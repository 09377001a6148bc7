"""PostgreSQL append-only tables partitioned by day (issue 24, item 3): a year of web_logs
stays queryable, an old day detaches, a window loaded twice adds nothing twice, and a kill
at any instant loses no row. PostgreSQL only: the other engines keep one table."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from dapctl.apply import ApplyOptions
from dapctl.config import Target
from dapctl.databases import DatabaseError, open_database, table_columns
from dapctl.databases.engine import TableOptions
from dapctl.loading import load_config
from dapctl.wiring import run_apply
from tests.apply_helpers import FAST, config_text, duckdb_target_config, environ
from tests.databases.helpers import dap_schema, expected_rows, write_part

ROOT = Path(__file__).resolve().parents[2]
LOGS = TableOptions(append_only=True, partition_by="timestamp")
SCHEMA = dap_schema("canvas_logs", "web_logs")


def _log(key: str, ts: str | None, action: str = "U", status: int = 200) -> dict:
    if action == "D":
        return {"key": {"id": key}, "meta": {"ts": "2026-02-01T00:00:00Z", "action": "D"}}
    value = {"url": f"/{key}", "http_method": "GET", "http_status": status, "timestamp": ts}
    return {"key": {"id": key}, "value": value, "meta": {"ts": "2026-02-01T00:00:00Z"}}


def _load(db, tmp_path, records, *, kind="incremental", name="w", options=LOGS):
    loading = db.begin_load(
        schema="canvas_logs", table="web_logs", dap_schema=SCHEMA, kind=kind, options=options
    )
    loading.add_part(write_part(tmp_path / f"{name}.jsonl", records))
    return loading.commit(address="logs", record=json.dumps({"job_id": name}))


def _query(url: str, text: str) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(text.encode())
        return list(cur.fetchall()) if cur.description else []


def _rows(url: str) -> list[tuple]:
    return sorted(_query(url, "SELECT id, http_status FROM canvas_logs.web_logs"))


def _partitions(url: str) -> list[str]:
    return sorted(
        name
        for (name,) in _query(
            url,
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'canvas_logs.web_logs'::regclass",
        )
    )


DAY1, DAY2, DAY3 = "2026-01-01T10:00:00Z", "2026-01-02T23:59:59.999999Z", "2026-01-03T00:00:00Z"


def test_rows_land_in_their_days_partition_and_a_window_twice_adds_nothing(pg_url, tmp_path):
    db = open_database(pg_url, base_dir=tmp_path)
    _load(db, tmp_path, [_log("a", DAY1), _log("b", DAY2)], kind="snapshot", name="s")
    window = [_log("c", DAY3), _log("b", DAY2, status=500), _log("a", None, "D")]
    _load(db, tmp_path, window, name="i")
    _load(db, tmp_path, window, name="i-again")

    assert _rows(pg_url) == [("a", 200), ("b", 500), ("c", 200)]  # a stays; b replaced once
    assert _partitions(pg_url) == ["web_logs_p20260101", "web_logs_p20260102", "web_logs_p20260103"]
    by_day = _query(pg_url, "SELECT tableoid::regclass::text, id FROM canvas_logs.web_logs")
    assert sorted(by_day) == [
        ("canvas_logs.web_logs_p20260101", "a"),
        ("canvas_logs.web_logs_p20260102", "b"),
        ("canvas_logs.web_logs_p20260103", "c"),
    ]
    assert ("canvas_logs", "web_logs_p20260101") not in db.tables()  # a partition is no table
    assert ("canvas_logs", "web_logs") in db.tables()
    db.close()


def test_a_detached_day_leaves_the_table_and_later_loads_go_on(pg_url, tmp_path):
    db = open_database(pg_url, base_dir=tmp_path)
    _load(db, tmp_path, [_log("a", DAY1), _log("b", DAY2)], kind="snapshot", name="s")
    _query(
        pg_url, "ALTER TABLE canvas_logs.web_logs DETACH PARTITION canvas_logs.web_logs_p20260101"
    )

    _load(db, tmp_path, [_log("c", DAY3)], name="i")
    assert _rows(pg_url) == [("b", 200), ("c", 200)]
    assert _query(pg_url, "SELECT id FROM canvas_logs.web_logs_p20260101") == [("a",)]

    with pytest.raises(DatabaseError, match=r"2026-01-01.*detached: attach it again"):
        _load(db, tmp_path, [_log("d", DAY1), _log("e", DAY3)], name="late")
    assert _rows(pg_url) == [("b", 200), ("c", 200)]  # nothing of that load
    assert json.loads(db.read_steps()[("canvas_logs", "web_logs")].record)["job_id"] == "i"
    db.close()


def test_a_record_without_its_time_stops_the_load_saying_what_to_do(pg_url, tmp_path):
    db = open_database(pg_url, base_dir=tmp_path)
    _load(db, tmp_path, [_log("a", DAY1)], kind="snapshot", name="s")

    with pytest.raises(DatabaseError, match=r"has no timestamp.*partition_by = false"):
        _load(db, tmp_path, [_log("b", None)], name="i")
    assert _rows(pg_url) == [("a", 200)]
    db.close()


def test_partition_by_must_name_a_timestamp_value_column(pg_url, tmp_path):
    db = open_database(pg_url, base_dir=tmp_path)
    wrong = TableOptions(append_only=True, partition_by="url")

    with pytest.raises(DatabaseError, match=r"partition_by = 'url'.*timestamp columns: timestamp"):
        _load(db, tmp_path, [_log("a", DAY1)], name="s", options=wrong)
    db.close()


def test_a_table_made_before_stays_unpartitioned_and_keeps_working(pg_url, tmp_path):
    db = open_database(pg_url, base_dir=tmp_path)
    plain = TableOptions(append_only=True)
    _load(db, tmp_path, [_log("a", DAY1)], kind="snapshot", name="s", options=plain)
    _load(db, tmp_path, [_log("a", DAY1), _log("b", DAY2)], name="i")  # now asks for days

    assert _rows(pg_url) == [("a", 200), ("b", 200)]
    assert _partitions(pg_url) == []
    db.close()


def test_canvas_logs_targets_partition_on_timestamp_unless_they_say_otherwise():
    logs = Target(name="l", namespace="canvas_logs", tables=["web_logs"], database="wh")
    off = Target(
        name="l", namespace="canvas_logs", tables=["web_logs"], database="wh", partition_by=False
    )
    mine = Target(name="m", tables=["users"], database="wh", append_only=True,
                  partition_by="created_at")  # fmt: skip
    merged = Target(name="l", namespace="canvas_logs", tables=["web_logs"], database="wh",
                    append_only=False)  # fmt: skip

    assert logs.partition_column == "timestamp" and off.partition_column is None
    assert mine.partition_column == "created_at" and merged.partition_column is None


def test_partition_by_without_append_only_is_refused_by_field(make_emulator, write_config, run_cli):
    emu = make_emulator()
    path = write_config(duckdb_target_config(emu, 'partition_by = "created_at"'))

    result = run_cli("validate", str(path))

    assert result.code == 1 and "targets[0].partition_by" in result.stderr
    assert "needs append_only = true" in result.stderr


def test_a_sigkill_at_any_instant_loses_no_log_row_and_adds_none_twice(pg_url, tmp_path):
    rng = random.Random(2024)
    for _ in range(4):
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.databases.append_child", pg_url, tmp_path, tmp_path,
             "web_logs"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert child.stdout is not None
        assert child.stdout.readline(), child.stderr.read() if child.stderr else ""
        time.sleep(rng.uniform(0.0, 0.6))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()

        db = open_database(pg_url, base_dir=tmp_path)
        last = json.loads(db.read_steps()[("canvas_logs", "web_logs")].record)["window"]
        keys = [k for (k,) in _query(pg_url, "SELECT id FROM canvas_logs.web_logs")]
        assert sorted(keys) == [f"{k:08d}" for k in range((last + 1) * 100)], last
        db.sweep_staging()
        db.close()
    assert len(_partitions(pg_url)) == 5


def test_an_apply_chain_of_web_logs_keeps_every_row_in_day_partitions(
    pg_url, make_emulator, write_config
):
    emu = make_emulator()
    text = config_text(emu, tables='["web_logs"]', extra_target='database = "wh"')
    text = text.replace('name = "core"', 'name = "core"\nnamespace = "canvas_logs"')
    text = text.replace('output = "out/', '# output = "out/')
    path = write_config(f'[databases.wh]\nurl = "{pg_url}"\n\n{text}')
    seen: dict[str, tuple] = {}
    columns = table_columns(SCHEMA)
    for round_ in range(3):
        if round_:
            emu.advance(86400)
            emu.change("canvas_logs", "web_logs", inserts=5, updates=0, deletes=0)
        results = run_apply(
            load_config(path), environ=environ(emu), options=ApplyOptions(), connection=FAST
        )
        assert [r.status for r in results] == ["ok"], results
        for row in expected_rows(emu.expected_snapshot("canvas_logs", "web_logs"), columns):
            seen[row[0]] = row

    names = ", ".join(f'"{c.name}"' for c in columns)
    got = _query(pg_url, f"SELECT {names} FROM canvas_logs.web_logs")  # noqa: S608
    assert sorted(got, key=lambda r: r[0]) == sorted(seen.values(), key=lambda r: r[0])
    assert _partitions(pg_url), "no day partition was made"

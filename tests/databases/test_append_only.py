"""Append-only tables (issue 24, item 3): logs kept past DAP's 30 days, on every engine.

A row is never removed, neither by a delete record nor by a snapshot that no longer holds
it (DAP drops logs older than 30 days from its snapshots); records are upserted by key, so a
window loaded again (a crash, a ``--replace``) adds nothing twice. ``canvas_logs`` targets
are append-only unless they say ``append_only = false``."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from dapctl.config import Target
from dapctl.databases.engine import TableOptions
from tests.apply_helpers import duckdb_target_config
from tests.databases.helpers import dap_schema, write_part

ROOT = Path(__file__).resolve().parents[2]
APPEND = TableOptions(append_only=True)
T0, T1, T2 = "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"


def _rec(i, name, ts, action="U"):
    value = {} if action == "D" else {"value": {"name": name}}
    return {"key": {"id": i}, **value, "meta": {"ts": ts, "action": action}}


def _load(db, tmp_path, records, *, kind, name):
    schema = dap_schema("canvas", "users")
    loading = db.begin_load(
        schema="canvas", table="users", dap_schema=schema, kind=kind, options=APPEND
    )
    loading.add_part(write_part(tmp_path / f"{name}.jsonl", records))
    return loading.commit(address="a", record=json.dumps({"watermark": T0, "job_id": name}))


def _rows(backend):
    return sorted(backend.query('SELECT "id", "name" FROM canvas.users'))


def test_rows_are_only_added_or_replaced_never_removed(backend, tmp_path):
    db = backend.open()
    _load(db, tmp_path, [_rec(i, f"v{i}", T0) for i in (1, 2, 3)], kind="snapshot", name="s")
    window = [_rec(2, "", T1, "D"), _rec(4, "v4", T1)]
    _load(db, tmp_path, window, kind="incremental", name="i")
    assert _rows(backend) == [(1, "v1"), (2, "v2"), (3, "v3"), (4, "v4")]  # 2 stays

    _load(db, tmp_path, window, kind="incremental", name="i-again")  # the window again
    assert _rows(backend) == [(1, "v1"), (2, "v2"), (3, "v3"), (4, "v4")]  # nothing twice

    later = [_rec(3, "v3b", T2), _rec(5, "v5", T2)]  # a snapshot without 1, 2 and 4
    _load(db, tmp_path, later, kind="snapshot", name="s2")
    assert _rows(backend) == [(1, "v1"), (2, "v2"), (3, "v3b"), (4, "v4"), (5, "v5")]


def test_canvas_logs_targets_append_unless_they_say_otherwise():
    logs = Target(name="logs", namespace="canvas_logs", tables=["web_logs"], database="wh")
    plain = Target(name="core", tables=["users"], database="wh")
    off = Target(
        name="logs", namespace="canvas_logs", tables=["web_logs"], database="wh",
        append_only=False,
    )  # fmt: skip

    assert logs.appends and not plain.appends and not off.appends


def test_append_only_refuses_soft_deletes(make_emulator, write_config, run_cli):
    emu = make_emulator()
    path = write_config(duckdb_target_config(emu, 'append_only = true\ndeletes = "soft"'))

    result = run_cli("validate", str(path))

    assert result.code == 1 and "targets[0].deletes" in result.stderr


def test_a_sigkill_at_any_instant_loses_no_log_row_and_adds_none_twice(backend, tmp_path):
    rng = random.Random(24)
    for _ in range(4):
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.databases.append_child", backend.url, tmp_path,
             tmp_path],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert child.stdout is not None
        child.stdout.readline()  # at least one window committed in this round
        time.sleep(rng.uniform(0.0, 0.6))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()

        db = backend.open()
        last = json.loads(db.read_steps()[("canvas", "users")].record)["window"]
        keys = [k for (k,) in backend.query('SELECT "id" FROM canvas.users')]
        assert sorted(keys) == list(range((last + 1) * 100)), last  # each once, none missing
        db.sweep_staging()
        db.close()
        backend.opened.remove(db)

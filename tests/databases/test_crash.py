"""SIGKILL at any instant leaves the table and its step row consistent, and staging sweepable."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.databases.helpers import dap_schema, expected_rows, load, table_columns, write_part

ROOT = Path(__file__).resolve().parents[2]


def _dataset(tag: str, count: int) -> list[dict]:
    return [
        {"key": {"id": i}, "value": {"name": f"{tag}-{i}", "locale": "de"},
         "meta": {"ts": "2026-01-01T00:00:00Z"}}
        for i in range(1, count + 1)
    ]  # fmt: skip


@pytest.mark.slow
def test_sigkill_mid_load_leaves_table_and_step_consistent(backend, tmp_path):
    data = {"a": _dataset("a", 20_000), "b": _dataset("b", 15_000)}
    parts = [str(write_part(tmp_path / f"{k}.jsonl", v)) for k, v in data.items()]
    schema = dap_schema("canvas", "users")
    rng = random.Random(7)
    for _ in range(4):
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.databases.crash_child", backend.url, tmp_path, *parts],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert child.stdout is not None
        child.stdout.readline()  # at least one commit happened
        time.sleep(rng.uniform(0.0, 0.8))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()

        db = backend.open()
        step = json.loads(db.read_steps()[("canvas", "users")].record)
        # Three copies of each record per load: the deduplicating path keeps one.
        assert backend.rows("canvas.users", schema) == expected_rows(
            data[step["data"]], table_columns(schema)
        )
        db.sweep_staging()
        assert backend.staging_tables() == []
        db.close()
        backend.opened.remove(db)

    db = backend.open()
    load(db, "users", schema, [Path(parts[0])], address="canvas.users", record='{"data": "a"}')
    assert backend.rows("canvas.users", schema) == expected_rows(data["a"], table_columns(schema))
    assert backend.staging_tables() == []

"""The quickstart's second run (issue 14 #20): the embedded emulator's data moves with the
clock, so a run minutes after the first continues with incrementals that hold real inserts,
updates and deletes, and the snapshot and its incrementals replay to the demo's data then.
Each run has its own embedded emulator, as two processes would; their clocks are pinned."""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import shutil
from pathlib import Path

from dapctl.apply import ApplyOptions
from dapctl.emulator import Emulator, EmulatorSettings
from dapctl.loading import load_config
from dapctl.results import StepResult
from dapctl.wiring import run_apply
from tests.apply_helpers import FAST, expected_rows, read_jsonl, replay
from tests.clock import T0, FakeClock

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def apply_at(config: Path, now: float) -> dict[str, StepResult]:
    """One `dapctl apply` of the quickstart, in a process whose clock says ``now``."""
    connection = dataclasses.replace(FAST, clock=FakeClock(now))
    results = run_apply(
        load_config(config), environ={}, options=ApplyOptions(), connection=connection
    )
    assert {r.status for r in results} == {"ok"}, results
    return {r.table: r for r in results}


def test_a_second_run_minutes_later_sees_inserts_updates_and_deletes(tmp_path):
    config = tmp_path / "quickstart.toml"
    shutil.copy(EXAMPLES / "quickstart.toml", config)

    first = apply_at(config, T0)
    second = apply_at(config, T0 + 300)

    then = Emulator(EmulatorSettings.embedded(), clock=FakeClock(T0 + 300))
    for table in ("accounts", "courses", "users"):
        assert first[table].kind == "snapshot" and second[table].kind == "incremental"
        changes = read_jsonl(second[table].files[0])
        assert {r["meta"]["action"] for r in changes} == {"U", "D"}, table
        snapshot = read_jsonl(first[table].files[0])
        assert {str(r["key"]) for r in changes} - {str(r["key"]) for r in snapshot}  # inserts
        assert replay([snapshot, changes]) == expected_rows(then.expected_snapshot("canvas", table))
    assert second["enrollments"].records > 0
    assert "D" in _csv_actions(second["enrollments"].files[0])


def _csv_actions(path: str) -> set[str]:
    data = Path(path).read_bytes()
    text = gzip.decompress(data).decode() if path.endswith(".gz") else data.decode()
    return {row["meta.action"] for row in csv.DictReader(io.StringIO(text))}

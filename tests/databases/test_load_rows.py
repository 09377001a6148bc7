"""``dapctl.runs`` / ``dapctl.loads`` in a table target's database (issue 23, item 2), on
every engine: each load's row is committed with it, naming its run, job, kind, watermark and
rows, and the run's row is written once; the run history (``dapctl runs``) names the same
run and jobs, so analysts can join their data to when and how it was loaded."""

from __future__ import annotations

import json

import pytest

from tests.apply_helpers import apply, config_text

_LOADS = (
    "SELECT run_id, schema_name, table_name, job_id, kind, records FROM dapctl.loads "
    "ORDER BY table_name, committed_at"
)


def _config(emu, url: str) -> str:
    text = config_text(emu, extra_target='database = "wh"\ndb_schema = "canvas"')
    return f'[databases.wh]\nurl = "{url}"\n\n' + text.replace('output = "out/', '# output = "out/')


@pytest.mark.sql_only
def test_every_load_is_recorded_with_its_run_in_the_database(
    backend, make_emulator, write_config, run_cli
):
    emu = make_emulator()
    path = write_config(_config(emu, backend.url))
    first = apply(path, emu)
    emu.advance(600)
    emu.change("canvas", "accounts", inserts=2, updates=1, deletes=1)
    second = apply(path, emu)
    backend.close()  # DuckDB: one writer per file

    rows = backend.query(_LOADS)
    runs = backend.query("SELECT run_id, config FROM dapctl.runs ORDER BY run_id")
    history = json.loads(run_cli("runs", str(path), "--json").stdout)["runs"]

    assert [r[1:3] for r in rows] == [("canvas", "accounts")] * 2 + [("canvas", "users")] * 2
    assert [r[4] for r in rows] == ["snapshot", "incremental", "snapshot", "incremental"]
    jobs = {r.job_id for r in first + second}
    assert {r[3] for r in rows} == jobs
    by_job = {r.job_id: r.records for r in first + second}
    assert all(r[5] == by_job[r[3]] for r in rows)  # the rows the load applied
    assert [r[0] for r in runs] == sorted(h["run_id"] for h in history)
    assert {r[1] for r in runs} == {"dapctl.toml"}
    assert {r[0] for r in rows} == {r[0] for r in runs}

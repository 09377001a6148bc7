"""Database targets through a whole apply: a snapshot and chained incrementals from the
emulator leave each PostgreSQL and DuckDB table equal to the emulator's data, with the
step record in the database; a target with both output and database feeds both from one
job; a bad database URL, or a schema or table name that is no identifier, fails at
validate (no password shown, no job spent)."""

from __future__ import annotations

import json

import pytest

from dapctl.apply import ApplyOptions
from dapctl.databases import table_columns
from dapctl.loading import load_config
from dapctl.wiring import run_apply
from tests.apply_helpers import FAST, config_text, environ
from tests.databases.helpers import dap_schema, expected_rows

TABLES = ("accounts", "users")


def _config(emu, url: str, *, output: bool = False) -> str:
    text = config_text(emu, extra_target='database = "wh"')
    if not output:
        text = text.replace('output = "out/', '# output = "out/')
    return f'[databases.wh]\nurl = "{url}"\n\n{text}'


def _apply(path, emu):
    return run_apply(
        load_config(path), environ=environ(emu), options=ApplyOptions(), connection=FAST
    )


def test_a_chain_of_applies_keeps_each_table_equal_to_the_emulators(
    backend, make_emulator, write_config
):
    emu = make_emulator()
    path = write_config(_config(emu, backend.url))
    path.parent.joinpath("data").mkdir(exist_ok=True)
    for round_ in range(3):
        if round_:
            emu.advance(3600)
            emu.change("canvas", "accounts", inserts=3, updates=2, deletes=1)
            emu.change("canvas", "users", inserts=2, updates=1, deletes=1)
        results = _apply(path, emu)
        assert [r.status for r in results] == ["ok", "ok"], results
    for table in TABLES:
        schema = dap_schema("canvas", table)
        want = expected_rows(emu.expected_snapshot("canvas", table), table_columns(schema))
        assert backend.rows(f"canvas.{table}", schema) == want, table
    records = dict(backend.query("SELECT address, record FROM dapctl.table_steps"))
    step = json.loads(records["univ_a/core/canvas.accounts"])
    assert step["kind"] == "incremental" and step["pending"] is None
    assert not (path.parent / "out").exists(), "a database-only target wrote files"
    assert backend.staging_tables() == []


def test_output_and_database_are_fed_by_one_job(backend, make_emulator, write_config):
    emu = make_emulator()
    path = write_config(_config(emu, backend.url, output=True))
    path.parent.joinpath("data").mkdir(exist_ok=True)
    created = emu.stats.jobs_created

    results = _apply(path, emu)

    assert [r.status for r in results] == ["ok", "ok"], results
    assert emu.stats.jobs_created - created == 2  # one job per table, not two
    for result in results:
        (file, table) = result.files
        assert file.endswith(".jsonl.gz") and table == f"database://wh/canvas.{result.table}"
        schema = dap_schema("canvas", result.table)
        want = expected_rows(emu.expected_snapshot("canvas", result.table), table_columns(schema))
        assert backend.rows(f"canvas.{result.table}", schema) == want


def test_a_url_with_a_password_is_refused_without_showing_it(write_config, run_cli):
    path = write_config(
        '[databases.wh]\nurl = "postgresql://u:hunter2@127.0.0.1/db"\n'
        '[profiles.p]\nemulator = true\n[[targets]]\nname = "t"\ntables = ["a"]\n'
        'database = "wh"\n'
    )
    result = run_cli("validate", str(path))
    assert result.code == 1
    assert "holds a password" in result.stderr and "hunter2" not in result.stderr + result.stdout


def test_a_name_that_is_no_identifier_is_refused_before_any_job(
    make_emulator, write_config, run_cli
):
    emu = make_emulator()
    text = _config(emu, "duckdb:///data/wh.duckdb").replace(
        'database = "wh"', 'database = "wh"\ndb_schema = \'x"; drop table y; --\''
    )
    path = str(write_config(text))
    for argv in (["validate", path], ["plan", path, "--json"], ["apply", path]):
        result = run_cli(*argv, environ=environ(emu))
        assert result.code == 1, (argv, result)
        assert "targets[0].db_schema: 'x\"; drop table y; --', the db_schema of step" in (
            result.stderr
        )
    assert emu.stats.jobs_created == 0


@pytest.mark.sql_only
def test_a_change_no_incremental_can_make_is_a_snapshot_in_the_same_run(
    backend, make_emulator, write_config
):
    emu = make_emulator()
    path = write_config(_config(emu, backend.url).replace('["accounts", "users"]', '["accounts"]'))
    path.parent.joinpath("data").mkdir(exist_ok=True)
    assert [r.status for r in _apply(path, emu)] == ["ok"]
    # The table's column is now wider than the server's (text, where DAP says bigint): no
    # incremental can go back in place, so the run takes a snapshot, which rebuilds it.
    if backend.kind == "mysql":
        backend.query("ALTER TABLE canvas.accounts MODIFY parent_account_id LONGTEXT")
    else:
        backend.query("ALTER TABLE canvas.accounts ALTER COLUMN parent_account_id TYPE text")
    backend.close()
    backend.opened.clear()  # DuckDB: the apply needs the file to itself
    emu.advance(600)
    emu.change("canvas", "accounts", updates=2)

    (result,) = _apply(path, emu)

    assert result.status == "ok" and result.kind == "snapshot", result
    schema = dap_schema("canvas", "accounts")
    want = expected_rows(emu.expected_snapshot("canvas", "accounts"), table_columns(schema))
    assert backend.rows("canvas.accounts", schema) == want

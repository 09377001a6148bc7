"""A table target trusts only the watermark committed with its table (issue 20, items 1, 2, 7).

Each chain ends with every table equal to the emulator's data, row for row: a table dropped
by hand, a database replaced by an empty one, a changed ``db_schema`` and two configs loading
one database into two schemas are each refilled by a snapshot, never by one window of
changes over nothing. The state file's copy of a watermark never stands in for the database's.
A database that cannot be reached fails only the targets that use it.
"""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from dapctl.apply import ApplyOptions
from dapctl.databases import table_columns
from dapctl.loading import load_config
from dapctl.wiring import run_apply
from tests.apply_helpers import FAST, config_text, environ
from tests.databases.helpers import dap_schema, expected_rows
from tests.mysql_fixtures import create_database, drop_database

TABLES = ("accounts", "users")


def _config(emu, url: str, *, db_schema: str = "canvas", output: bool = False) -> str:
    text = config_text(emu, extra_target=f'database = "wh"\ndb_schema = "{db_schema}"').replace(
        'output = "out/', '# output = "out/'
    )
    return f'[databases.wh]\nurl = "{url}"\n\n{text}'


def _apply(path, emu):
    results = run_apply(
        load_config(path), environ=environ(emu), options=ApplyOptions(), connection=FAST
    )
    return {r.table: r for r in results}


def _change(emu):
    emu.advance(3600)
    emu.change("canvas", "accounts", inserts=3, updates=2, deletes=1)
    emu.change("canvas", "users", inserts=2, updates=1, deletes=1)


def _assert_equal_to_emulator(backend, emu, schema="canvas"):
    for table in TABLES:
        dap = dap_schema("canvas", table)
        want = expected_rows(emu.expected_snapshot("canvas", table), table_columns(dap))
        assert len(want) > 20  # far more than one window of changes
        assert backend.rows(f"{schema}.{table}", dap) == want, f"{schema}.{table}"


def _release(backend):
    """Let go of the test's own connections (DuckDB: one writer per file)."""
    backend.close()
    backend.opened.clear()


def _loaded_then_changed(backend, emu, write_config):
    """A config whose tables were loaded once, the emulator's data changed since, and the
    test's own connections let go: ready for the change under test."""
    path = write_config(_config(emu, backend.url))
    _apply(path, emu)
    _change(emu)
    _release(backend)
    return path


def _kinds(results):
    return {table: (r.status, r.kind) for table, r in results.items()}


def test_a_dropped_table_is_refilled_by_a_snapshot_not_one_window(
    backend, make_emulator, write_config, run_cli
):
    emu = make_emulator()
    path = write_config(_config(emu, backend.url))
    _apply(path, emu)
    state_file = path.parent / "state" / "dapctl.state.json"
    cached = json.loads(state_file.read_text())["steps"]["univ_a/core/canvas.users"]
    assert cached["watermark"]  # the state file has a watermark for the dropped table
    backend.query("DROP TABLE canvas.users")
    _release(backend)
    _change(emu)

    plan = run_cli("plan", str(path), environ=environ(emu))
    assert plan.code == 0, plan.stderr
    users = next(line for line in plan.stdout.splitlines() if "canvas.users" in line)
    assert "+" in users and "canvas.users is not in the database" in users
    planned = json.loads(run_cli("plan", str(path), "--json", environ=environ(emu)).stdout)
    actions = {s["table"]: s["action"] for s in planned["steps"]}
    assert actions == {"accounts": "incremental", "users": "snapshot"}

    results = _apply(path, emu)
    assert _kinds(results) == {
        "accounts": ("ok", "incremental"),
        "users": ("ok", "snapshot"),
    }
    _assert_equal_to_emulator(backend, emu)


def test_a_replaced_database_is_refilled_by_snapshots(
    backend, make_emulator, write_config, pg_admin_url
):
    emu = make_emulator()
    path = _loaded_then_changed(backend, emu, write_config)
    if backend.kind == "duckdb":
        for file in (path.parent / "data").iterdir():
            file.unlink()  # the .duckdb file (and any .wal): a new empty one comes in its place
        results = _apply(path, emu)
        assert _kinds(results) == {t: ("ok", "snapshot") for t in TABLES}
        _assert_equal_to_emulator(backend, emu)
        return
    name = f"dapctl_new_{uuid.uuid4().hex[:12]}"
    if backend.kind == "mysql":
        create_database(name)
    else:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        fresh = backend.url.rsplit("/", 1)[0] + f"/{name}"
        path.write_text(path.read_text().replace(backend.url, fresh))
        results = _apply(path, emu)
        assert _kinds(results) == {t: ("ok", "snapshot") for t in TABLES}
        backend.url = fresh
        _assert_equal_to_emulator(backend, emu)
    finally:
        if backend.kind == "mysql":
            drop_database(name)
        else:
            with psycopg.connect(pg_admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def test_a_changed_db_schema_takes_a_snapshot_into_the_new_schema(
    backend, make_emulator, write_config, run_cli
):
    emu = make_emulator()
    path = _loaded_then_changed(backend, emu, write_config)
    path.write_text(_config(emu, backend.url, db_schema="moved"))

    plan = run_cli("plan", str(path), environ=environ(emu))
    assert "moved.accounts is not in the database" in plan.stdout, plan.stdout

    results = _apply(path, emu)
    assert _kinds(results) == {t: ("ok", "snapshot") for t in TABLES}
    _assert_equal_to_emulator(backend, emu, schema="moved")


def test_two_configs_on_one_database_keep_their_own_watermarks(
    backend, make_emulator, tmp_path, run_cli
):
    emu = make_emulator()
    paths = {}
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        url = backend.url
        if backend.kind == "duckdb":
            url = f"duckdb:///{tmp_path / 'data' / 'test.duckdb'}"  # one file for both
        paths[name] = folder / "dapctl.toml"
        paths[name].write_text(_config(emu, url, db_schema=f"sch_{name}"))

    first_a = _apply(paths["a"], emu)
    first_b = _apply(paths["b"], emu)
    assert _kinds(first_a) == {t: ("ok", "snapshot") for t in TABLES}
    assert _kinds(first_b) == {t: ("ok", "snapshot") for t in TABLES}, "b used a's watermark"

    plan_a = run_cli("plan", str(paths["a"]), environ=environ(emu))
    assert "no target declares it" not in plan_a.stderr, plan_a.stderr
    assert "sch_b" not in plan_a.stdout + plan_a.stderr
    rows = sorted(backend.query("SELECT schema_name, table_name FROM dapctl.table_steps"))
    assert rows == [(s, t) for s in ("sch_a", "sch_b") for t in TABLES]

    _release(backend)
    _change(emu)
    for name in ("a", "b"):
        results = _apply(paths[name], emu)
        assert _kinds(results) == {t: ("ok", "incremental") for t in TABLES}
    for name in ("a", "b"):
        _assert_equal_to_emulator(backend, emu, schema=f"sch_{name}")


def test_a_row_without_its_table_in_the_state_file_is_not_trusted_either(
    backend, make_emulator, write_config
):
    """The database has the row but the table is gone, and the state file still has both:
    neither copy of the watermark counts."""
    emu = make_emulator()
    path = write_config(_config(emu, backend.url))
    _apply(path, emu)
    backend.query("DROP TABLE canvas.accounts")
    kept = backend.query("SELECT schema_name, table_name FROM dapctl.table_steps")
    # A database keeps the row; a lake table's record is in its own commits, gone with it.
    assert (("canvas", "accounts") in {(s, t) for s, t in kept}) == backend.sql
    _release(backend)
    results = _apply(path, emu)
    assert results["accounts"].kind == "snapshot"
    _assert_equal_to_emulator(backend, emu)


UNREACHABLE = "postgresql://dapctl@127.0.0.1:1/nowhere?connect_timeout=2"


def _two_targets(emu) -> str:
    text = config_text(emu)  # target "core": files only
    return (
        f'[databases.gone]\nurl = "{UNREACHABLE}"\n\n{text}\n'
        '[[targets]]\nname = "wh"\nnamespace = "canvas"\ntables = ["users"]\n'
        'database = "gone"\n'
    )


def test_an_unreachable_database_fails_only_its_targets(make_emulator, write_config, run_cli):
    pytest.importorskip("psycopg")
    emu = make_emulator()
    path = write_config(_two_targets(emu))
    created = emu.stats.jobs_created

    results = run_apply(
        load_config(path), environ=environ(emu), options=ApplyOptions(), connection=FAST
    )
    by_address = {r.address: r for r in results}
    assert {a: r.status for a, r in by_address.items()} == {
        "univ_a/core/canvas.accounts": "ok",
        "univ_a/core/canvas.users": "ok",
        "univ_a/wh/canvas.users": "failed",
    }
    failed = by_address["univ_a/wh/canvas.users"]
    assert failed.error is not None and "database gone" in failed.error.message
    assert emu.stats.jobs_created - created == 2  # no job spent on the unreachable target

    listed = run_cli("state", "list", str(path), environ=environ(emu))
    assert listed.code == 0, listed.stderr
    assert "univ_a/core/canvas.accounts" in listed.stdout
    assert "database gone could not be read" in listed.stdout
    listed_json = run_cli("state", "list", str(path), "--json", environ=environ(emu))
    document = json.loads(listed_json.stdout)
    assert set(document["unreachable_databases"]) == {"gone"}

    plan = run_cli("plan", str(path), environ=environ(emu))
    assert plan.code == 1
    line = next(line for line in plan.stdout.splitlines() if "univ_a/wh/" in line)
    assert line.lstrip().startswith("!") and "database gone" in line
    assert "~ univ_a/core/canvas.accounts" in plan.stdout

"""``dapctl import`` (issue 22, item 2): tables the official client keeps, taken over with no
re-snapshot.

Each test runs the real ``dap initdb`` against the emulator into a PostgreSQL database of its
own (courses and submissions: tables client 2.3.1 can type), then ``dapctl import``. The
chain ends with ``dapctl apply`` continuing from dap's last sync with incrementals only,
every table equal to the emulator's data. Also: ``--dry-run`` changes nothing, a table dap
never synced is skipped, a user's view survives the conversion, a second import changes
nothing, a table behind the server's schema version is snapshotted next, saying why, an old
client's ``dap_meta`` is refused, and DuckDB says import is not for it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dapctl.apply import ApplyOptions
from dapctl.databases import DatabaseError, table_columns
from dapctl.databases.pg_adopt import Existing, conversions
from dapctl.databases.pg_sql import TYPES
from dapctl.loading import load_config
from dapctl.wiring import run_apply
from tests.apply_helpers import FAST, config_text, environ
from tests.databases.helpers import dap_schema, expected_rows
from tests.databases.test_official_client_db import TABLES, dap
from tests.databases.test_official_client_db import official as official  # the fixture

_TYPES = """
SELECT column_name, data_type FROM information_schema.columns
WHERE table_schema = 'canvas' AND table_name = %s ORDER BY ordinal_position
"""


def _config(emu, url: str, tables=TABLES) -> str:
    listed = json.dumps(list(tables))
    text = config_text(emu, tables=listed, extra_target='database = "wh"\ndb_schema = "canvas"')
    text = text.replace('output = "out/', '# output = "out/')
    return f'[databases.wh]\nurl = "{url}"\n\n{text}'


def _initdb(emu, url: str, tmp_path: Path, tables=TABLES) -> None:
    where = ["--namespace", "canvas", "--table", ",".join(tables), "--connection-string", url]
    dap(emu, tmp_path, "initdb", *where)


def _sql(url: str, text: str, params: Any = ()) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(text.encode(), params)
        return list(cur.fetchall()) if cur.description else []


def _types(url: str, table: str) -> dict[str, str]:
    return dict(_sql(url, _TYPES, (table,)))  # type: ignore[arg-type]


def _steps(url: str) -> dict[str, dict[str, Any]]:
    rows = _sql(url, "SELECT table_name, record FROM dapctl.table_steps")
    return {table: json.loads(record) for table, record in rows}


def _import(run_cli, path: Path, emu, *flags: str):
    return run_cli("import", str(path), "--json", *flags, environ=environ(emu))


def _statuses(result) -> dict[str, str]:
    document = json.loads(result.stdout)
    return {t["address"].rsplit(".", 1)[1]: t["status"] for t in document["tables"]}


def _assert_equal_to_emulator(url: str, emu) -> None:
    """Each table's rows (all but meta_ts, NULL on rows dap loaded) equal the emulator's."""
    for table in TABLES:
        columns = [c for c in table_columns(dap_schema("canvas", table)) if c.name != "meta_ts"]
        want = expected_rows(emu.expected_snapshot("canvas", table), columns)
        names = ", ".join(f'"{c.name}"' for c in columns)
        got = _sql(url, f"SELECT {names} FROM canvas.{table}")  # noqa: S608
        normed = [tuple(_normal(v) for v in row) for row in got]
        assert sorted(normed, key=lambda r: str(r[0])) == want, table


def _normal(value: Any) -> Any:
    return value.astimezone(UTC) if isinstance(value, datetime) else value


def test_import_then_apply_continues_from_dap_with_incrementals_only(
    official, make_emulator, pg_url, tmp_path, write_config, run_cli
):
    emu = make_emulator(part_size=15)
    _initdb(emu, pg_url, tmp_path)
    synced = dict(_sql(pg_url, 'SELECT target_table, "timestamp" FROM instructure_dap.table_sync'))
    path = write_config(_config(emu, pg_url))

    result = _import(run_cli, path, emu)

    assert result.code == 0, result.stderr
    assert _statuses(result) == {"courses": "adopted", "submissions": "adopted"}
    assert _types(pg_url, "courses") == {
        "id": "bigint", "name": "text", "course_code": "text", "account_id": "bigint",
        "is_public": "boolean", "settings": "jsonb", "workflow_state": "text",
        "start_at": "timestamp with time zone", "meta_ts": "timestamp with time zone",
    }  # fmt: skip
    for table, record in _steps(pg_url).items():
        assert record["kind"] == "snapshot" and record["schema_version"] == 1
        assert datetime.fromisoformat(record["watermark"]) == synced[table].replace(tzinfo=UTC)
    _assert_equal_to_emulator(pg_url, emu)  # timestamps read as UTC, not shifted

    emu.advance(600)
    for table in TABLES:
        emu.change("canvas", table, inserts=4, updates=5, deletes=3)
    jobs = emu.stats.jobs_created
    results = run_apply(
        load_config(path), environ=environ(emu), options=ApplyOptions(), connection=FAST
    )

    assert {(r.table, r.status, r.kind) for r in results} == {
        ("courses", "ok", "incremental"),
        ("submissions", "ok", "incremental"),
    }
    assert emu.stats.jobs_created == jobs + 2  # the two incrementals: no snapshot job
    _assert_equal_to_emulator(pg_url, emu)
    assert _sql(pg_url, "SELECT count(*) FROM instructure_dap.table_sync") == [(2,)]  # dap's


def test_dry_run_says_what_would_change_and_changes_nothing(
    official, make_emulator, pg_url, tmp_path, write_config, run_cli
):
    emu = make_emulator()
    _initdb(emu, pg_url, tmp_path)
    path = write_config(_config(emu, pg_url))
    before = {t: _types(pg_url, t) for t in TABLES}

    result = _import(run_cli, path, emu, "--dry-run")

    assert result.code == 0, result.stderr
    assert _statuses(result) == {"courses": "would adopt", "submissions": "would adopt"}
    changes = json.loads(result.stdout)["tables"][0]["changes"]
    assert "change type of workflow_state: canvas.courses__workflow_state -> text" in changes
    assert "change type of start_at: timestamp without time zone -> timestamp with time zone" in (
        changes
    )
    assert any(c.startswith("add column meta_ts") for c in changes)
    assert {t: _types(pg_url, t) for t in TABLES} == before
    assert _steps(pg_url) == {}


def test_a_table_dap_never_synced_is_skipped_and_the_rest_adopted(
    official, make_emulator, pg_url, tmp_path, write_config, run_cli
):
    emu = make_emulator()
    _initdb(emu, pg_url, tmp_path)
    _sql(pg_url, "DELETE FROM instructure_dap.table_sync WHERE target_table = 'submissions'")
    path = write_config(_config(emu, pg_url, tables=(*TABLES, "accounts")))

    result = _import(run_cli, path, emu)

    assert result.code == 0, result.stderr
    assert _statuses(result) == {
        "courses": "adopted", "submissions": "skipped", "accounts": "skipped",
    }  # fmt: skip
    details = {t["address"]: t["detail"] for t in json.loads(result.stdout)["tables"]}
    assert "`dap` never synced it" in details["univ_a/core/canvas.submissions"]
    assert "no such table" in details["univ_a/core/canvas.accounts"]
    assert set(_steps(pg_url)) == {"courses"}
    assert _types(pg_url, "submissions")["workflow_state"] == "USER-DEFINED"  # untouched


def test_a_users_view_on_an_adopted_table_survives(
    official, make_emulator, pg_url, tmp_path, write_config, run_cli
):
    emu = make_emulator()
    _initdb(emu, pg_url, tmp_path)
    if not _sql(pg_url, "SELECT 1 FROM pg_roles WHERE rolname = 'import_reader'"):
        _sql(pg_url, "CREATE ROLE import_reader")  # roles are the server's, not the test's
    _sql(
        pg_url,
        "CREATE VIEW canvas.active_courses AS SELECT id, name, start_at FROM canvas.courses "
        "WHERE workflow_state = 'active'; GRANT SELECT ON canvas.active_courses TO import_reader",
    )
    before = _sql(pg_url, "SELECT id, name FROM canvas.active_courses ORDER BY id")
    path = write_config(_config(emu, pg_url))

    result = _import(run_cli, path, emu)

    assert result.code == 0, result.stdout
    assert _statuses(result)["courses"] == "adopted"
    assert _sql(pg_url, "SELECT id, name FROM canvas.active_courses ORDER BY id") == before
    assert len(before) > 0
    assert _sql(
        pg_url, "SELECT has_table_privilege('import_reader', 'canvas.active_courses', 'SELECT')"
    ) == [(True,)]


def test_import_twice_the_second_changes_nothing(
    official, make_emulator, pg_url, tmp_path, write_config, run_cli
):
    emu = make_emulator()
    _initdb(emu, pg_url, tmp_path)
    path = write_config(_config(emu, pg_url))
    assert _import(run_cli, path, emu).code == 0
    steps = _sql(pg_url, "SELECT table_name, record, updated_at FROM dapctl.table_steps")

    again = _import(run_cli, path, emu)

    assert again.code == 0, again.stderr
    assert set(_statuses(again).values()) == {"already adopted"}
    assert _sql(pg_url, "SELECT table_name, record, updated_at FROM dapctl.table_steps") == steps


def test_a_table_behind_the_servers_schema_is_snapshotted_next_and_the_plan_says_why(
    official, make_emulator, pg_url, tmp_path, write_config, run_cli
):
    emu = make_emulator()
    _initdb(emu, pg_url, tmp_path)
    _sql(pg_url, "UPDATE instructure_dap.table_sync SET schema_version = 0")
    path = write_config(_config(emu, pg_url))

    assert _import(run_cli, path, emu).code == 0
    plan = run_cli("plan", str(path), "--json", environ=environ(emu))

    steps = {s["table"]: s for s in json.loads(plan.stdout)["steps"]}
    assert steps["courses"]["action"] == "snapshot"
    assert (
        "adopted from dap at schema version 0, behind the server's 1"
        in (steps["courses"]["reason"])
    )


def test_an_old_clients_dap_meta_is_refused_saying_what_to_run(
    make_emulator, pg_url, write_config, run_cli
):
    emu = make_emulator()
    _sql(pg_url, "CREATE SCHEMA canvas; CREATE TABLE canvas.dap_meta (x int)")
    path = write_config(_config(emu, pg_url))

    result = _import(run_cli, path, emu)

    assert result.code == 1
    assert "canvas.dap_meta" in result.stderr and "run a current `dap syncdb`" in result.stderr


def test_duckdb_says_import_is_for_databases_dap_keeps(make_emulator, write_config, run_cli):
    emu = make_emulator()
    path = write_config(_config(emu, "duckdb:///data/wh.duckdb"))

    result = _import(run_cli, path, emu)

    assert result.code == 0, result.stderr
    assert set(_statuses(result).values()) == {"skipped"}
    assert "import is for PostgreSQL and MySQL" in result.stdout


def test_a_column_that_would_lose_values_stops_that_tables_adoption():
    columns = table_columns(dap_schema("canvas", "courses"))
    existing = {c.name: Existing(TYPES.spell(c.type), c.key) for c in columns}
    existing["account_id"] = Existing("text", True)

    with pytest.raises(DatabaseError, match="account_id is text, which does not convert"):
        conversions("canvas.courses", existing, columns)


def test_an_enum_array_and_a_required_column_convert_as_a_snapshot_would_create_them():
    columns = table_columns(dap_schema("canvas", "courses"))
    by_name = {c.name: c for c in columns}
    existing = {
        "id": Existing("bigint", True),
        "name": Existing("character varying(255)", True),
        "workflow_state": Existing("canvas.courses__workflow_state", True, enum=True),
        "settings": Existing("text[]", False),
    }

    changes = {(c.kind, c.column.name) for c in conversions("c", existing, columns)}

    assert ("retype", "name") in changes and ("nullable", "name") in changes
    assert ("retype", "workflow_state") in changes and ("retype", "settings") in changes
    assert ("nullable", "id") not in changes  # keys stay NOT NULL
    assert ("add", "meta_ts") in changes and by_name["settings"].is_json

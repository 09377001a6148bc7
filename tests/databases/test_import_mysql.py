"""``dapctl import`` into MySQL / MariaDB (issue 22, item 2): tables the real ``dap initdb``
made in MariaDB, taken over with no re-snapshot.

The chain: ``dap initdb`` against the emulator, ``dapctl import``, changes on the emulator,
``dapctl apply``: incrementals only, every table equal to the emulator's data. Also:
``--dry-run`` changes nothing, a user's view on an adopted table still answers, a second
import changes nothing, a table dap never synced and a table the config does not list are
left alone, an apply before any import snapshots with DAP's microseconds, a table behind the
server's schema version is snapshotted next, an old client's ``dap_meta`` is refused, and
the pure conversion rules.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from dapctl.apply import ApplyOptions
from dapctl.databases import DatabaseError, table_columns
from dapctl.databases.mysql_adopt import Existing, conversions
from dapctl.databases.mysql_sql import create_table
from dapctl.loading import load_config
from dapctl.wiring import run_apply
from tests.apply_helpers import FAST, config_text, environ
from tests.databases.helpers import Backend, dap_schema, expected_rows
from tests.databases.test_official_client_db import TABLES, dap
from tests.databases.test_official_client_db import official as official  # the fixture
from tests.mysql_fixtures import query_mysql

_SHAPE = """
SELECT column_name, column_type, is_nullable FROM information_schema.columns
WHERE table_schema = DATABASE() AND table_name = '{}' ORDER BY ordinal_position
"""
_DEFINITIONS = """
SELECT column_name, column_type, is_nullable, column_default, collation_name, column_key, extra
FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = '{}'
ORDER BY ordinal_position
"""


def initdb(emu, url: str, tmp_path: Path, tables=TABLES) -> None:
    where = ["--namespace", "canvas", "--table", ",".join(tables), "--connection-string", url]
    dap(emu, tmp_path, "initdb", *where)


def import_config(emu, url: str, tables=TABLES) -> str:
    listed = json.dumps(list(tables))
    text = config_text(emu, tables=listed, extra_target='database = "wh"\ndb_schema = "canvas"')
    text = text.replace('output = "out/', '# output = "out/')
    return f'[databases.wh]\nurl = "{url}"\n\n{text}'


def statuses(result) -> dict[str, str]:
    document = json.loads(result.stdout)
    return {t["address"].rsplit(".", 1)[1]: t["status"] for t in document["tables"]}


def equal_to_emulator(db: Backend, emu) -> None:
    """Each table's rows equal the emulator's: all but meta_ts (NULL on rows dap loaded),
    timestamps to the second (dap's ``DATETIME`` kept whole seconds)."""
    for table in TABLES:
        schema = dap_schema("canvas", table)
        want = expected_rows(emu.expected_snapshot("canvas", table), table_columns(schema))
        got = db.rows(f"canvas.{table}", schema)
        assert [_seconds(r) for r in got] == [_seconds(r) for r in want], table
        by_key = {r[0]: r for r in want}
        changed = [r for r in got if r[-1] is not None]  # rows dapctl wrote: exact
        assert changed == [by_key[r[0]] for r in changed], table


def _seconds(row: tuple) -> tuple:
    return tuple(v.replace(microsecond=0) if isinstance(v, datetime) else v for v in row[:-1])


@pytest.fixture
def db(mysql_url, tmp_path) -> Backend:
    return Backend("mysql", mysql_url, tmp_path, query_mysql)


def _sql(db: Backend, text: str) -> list[tuple]:
    return db.query(text)


def _shape(db: Backend, table: str) -> list[tuple]:
    return _sql(db, _SHAPE.format(f"canvas__{table}"))


def _steps(db: Backend) -> dict[str, dict]:
    rows = _sql(db, "SELECT table_name, record FROM dapctl__table_steps")
    return {table: json.loads(record) for table, record in rows}


def _columns(db: Backend, name: str) -> list[tuple]:
    """Every column's full definition, as SHOW CREATE TABLE would spell it, and the keys."""
    return _sql(db, _DEFINITIONS.format(name))


def _dapctls(db: Backend, table: str) -> list[tuple]:
    """The columns of the table a dapctl snapshot creates for ``canvas.table``."""
    name = f"dapctl_made_{table}"
    _sql(db, create_table(name, table_columns(dap_schema("canvas", table))))
    try:
        return _columns(db, name)
    finally:
        _sql(db, f"DROP TABLE {name}")


def _import(run_cli, path: Path, emu, *flags: str):
    return run_cli("import", str(path), "--json", *flags, environ=environ(emu))


def test_import_then_apply_continues_from_dap_with_incrementals_only(
    official, make_emulator, db, tmp_path, write_config, run_cli
):
    emu = make_emulator(part_size=15)
    _sql(db, "ALTER DATABASE COLLATE utf8mb4_general_ci")  # a server's usual default
    initdb(emu, db.url, tmp_path)
    synced = dict(_sql(db, "SELECT target_table, `timestamp` FROM instructure_dap__table_sync"))
    path = write_config(import_config(emu, db.url))

    result = _import(run_cli, path, emu)

    assert result.code == 0, result.stderr
    assert statuses(result) == {"courses": "adopted", "submissions": "adopted"}
    assert _shape(db, "courses") == [
        ("id", "bigint(20)", "NO"), ("name", "longtext", "YES"),
        ("course_code", "longtext", "YES"), ("account_id", "bigint(20)", "YES"),
        ("is_public", "tinyint(1)", "YES"), ("settings", "longtext", "YES"),
        ("workflow_state", "longtext", "YES"), ("start_at", "datetime(6)", "YES"),
        ("meta_ts", "datetime(6)", "YES"),
    ]  # fmt: skip
    for table in TABLES:  # exactly the columns a dapctl snapshot creates
        assert _columns(db, f"canvas__{table}") == _dapctls(db, table), table
    collation = (
        "SELECT table_collation FROM information_schema.tables "
        "WHERE table_schema = DATABASE() AND table_name = 'canvas__courses'"
    )
    assert _sql(db, collation) == [("utf8mb4_bin",)]  # was utf8mb4_general_ci
    for table, record in _steps(db).items():
        assert record["kind"] == "snapshot" and record["schema_version"] == 1
        watermark = datetime.fromisoformat(record["watermark"].replace("Z", "+00:00"))
        assert watermark == synced[table]
    equal_to_emulator(db, emu)

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
    equal_to_emulator(db, emu)
    assert _sql(db, "SELECT count(*) FROM canvas__courses WHERE meta_ts IS NOT NULL")[0][0] >= 9
    assert _sql(db, "SELECT count(*) FROM instructure_dap__table_sync") == [(2,)]  # dap's


def test_an_apply_before_any_import_snapshots_daps_tables_keeping_microseconds(
    official, make_emulator, db, tmp_path, write_config
):
    """What a table `dap` made and dapctl never adopted gets from an apply (a kill before
    import reached it, an import never run): a snapshot, and DAP's times to the microsecond,
    though dap's ``DATETIME`` columns kept whole seconds."""
    emu = make_emulator()
    initdb(emu, db.url, tmp_path)
    path = write_config(import_config(emu, db.url))

    results = run_apply(
        load_config(path), environ=environ(emu), options=ApplyOptions(), connection=FAST
    )

    assert {(r.table, r.status, r.kind) for r in results} == {(t, "ok", "snapshot") for t in TABLES}
    assert ("start_at", "datetime(6)", "YES") in _shape(db, "courses")
    assert ("submitted_at", "datetime(6)", "YES") in _shape(db, "submissions")
    equal_to_emulator(db, emu)  # every row dapctl's: compared exactly


def test_dry_run_says_what_would_change_and_changes_nothing(
    official, make_emulator, db, tmp_path, write_config, run_cli
):
    emu = make_emulator()
    initdb(emu, db.url, tmp_path)
    path = write_config(import_config(emu, db.url))
    before = {t: _shape(db, t) for t in TABLES}

    result = _import(run_cli, path, emu, "--dry-run")

    assert result.code == 0, result.stderr
    assert statuses(result) == {"courses": "would adopt", "submissions": "would adopt"}
    changes = json.loads(result.stdout)["tables"][0]["changes"]
    assert (
        "change type of workflow_state: enum('active','deleted','completed') NOT NULL -> "
        "LONGTEXT NULL" in changes
    )
    assert "change type of start_at: datetime -> DATETIME(6)" in changes
    assert any(c.startswith("add column meta_ts") for c in changes)
    assert {t: _shape(db, t) for t in TABLES} == before
    assert _steps(db) == {}


def test_a_users_view_still_answers_and_a_second_import_changes_nothing(
    official, make_emulator, db, tmp_path, write_config, run_cli
):
    emu = make_emulator()
    initdb(emu, db.url, tmp_path)
    view = "SELECT id, name FROM canvas__courses WHERE workflow_state = 'active'"
    _sql(db, f"CREATE VIEW active_courses AS {view}")
    before = _sql(db, "SELECT id, name FROM active_courses ORDER BY id")
    path = write_config(import_config(emu, db.url))
    assert _import(run_cli, path, emu).code == 0
    steps = _sql(db, "SELECT table_name, record, updated_at FROM dapctl__table_steps")

    again = _import(run_cli, path, emu)

    assert _sql(db, "SELECT id, name FROM active_courses ORDER BY id") == before
    assert len(before) > 0
    assert again.code == 0, again.stderr
    assert set(statuses(again).values()) == {"already adopted"}
    assert _sql(db, "SELECT table_name, record, updated_at FROM dapctl__table_steps") == steps


def test_a_table_dap_never_synced_and_one_the_config_omits_are_left_alone(
    official, make_emulator, db, tmp_path, write_config, run_cli
):
    emu = make_emulator()
    initdb(emu, db.url, tmp_path)
    _sql(db, "DELETE FROM instructure_dap__table_sync WHERE target_table = 'submissions'")
    path = write_config(import_config(emu, db.url, tables=("courses", "submissions", "users")))
    omitted = write_config(import_config(emu, db.url, tables=("courses",)), name="one.toml")
    before = _shape(db, "submissions")

    assert statuses(_import(run_cli, omitted, emu)) == {"courses": "adopted"}
    result = _import(run_cli, path, emu)

    assert result.code == 0, result.stderr
    assert statuses(result) == {
        "courses": "already adopted", "submissions": "skipped", "users": "skipped",
    }  # fmt: skip
    assert set(_steps(db)) == {"courses"}
    assert _shape(db, "submissions") == before  # untouched


def test_a_table_behind_the_servers_schema_is_snapshotted_next_and_the_plan_says_why(
    official, make_emulator, db, tmp_path, write_config, run_cli
):
    emu = make_emulator()
    initdb(emu, db.url, tmp_path)
    _sql(db, "UPDATE instructure_dap__table_sync SET schema_version = 0")
    path = write_config(import_config(emu, db.url))

    assert set(statuses(_import(run_cli, path, emu)).values()) == {"adopted"}
    plan = run_cli("plan", str(path), "--json", environ=environ(emu))
    steps = {s["table"]: s for s in json.loads(plan.stdout)["steps"]}
    results = run_apply(
        load_config(path), environ=environ(emu), options=ApplyOptions(), connection=FAST
    )

    assert steps["courses"]["action"] == "snapshot"
    assert (
        "adopted from dap at schema version 0, behind the server's 1"
        in (steps["courses"]["reason"])
    )
    assert {(r.table, r.status, r.kind) for r in results} == {(t, "ok", "snapshot") for t in TABLES}
    equal_to_emulator(db, emu)


def test_an_old_clients_dap_meta_is_refused_saying_what_to_run(
    make_emulator, db, write_config, run_cli
):
    emu = make_emulator()
    _sql(db, "CREATE TABLE canvas__dap_meta (x int)")
    path = write_config(import_config(emu, db.url))

    result = _import(run_cli, path, emu)

    assert result.code == 1
    assert "canvas__dap_meta" in result.stderr and "run a current `dap syncdb`" in result.stderr


def test_a_column_that_would_lose_values_stops_that_tables_adoption():
    columns = table_columns(dap_schema("canvas", "courses"))
    existing = {c.name: Existing("bigint", "bigint(20)", c.key) for c in columns}
    existing["account_id"] = Existing("varchar", "varchar(20)", True)

    with pytest.raises(DatabaseError, match=r"account_id is varchar\(20\), which does not convert"):
        conversions("canvas.courses", "utf8mb4_bin", existing, columns)


def test_a_table_already_in_dapctls_shape_needs_no_change():
    columns = table_columns(dap_schema("canvas", "courses"))
    spelled = {
        "id": ("bigint", "bigint(20)"), "name": ("longtext", "longtext"),
        "course_code": ("longtext", "longtext"), "account_id": ("bigint", "bigint(20)"),
        "is_public": ("tinyint", "tinyint(1)"), "settings": ("longtext", "longtext"),
        "workflow_state": ("longtext", "longtext"), "start_at": ("datetime", "datetime(6)"),
        "meta_ts": ("datetime", "datetime(6)"),
    }  # fmt: skip
    existing = {n: Existing(d, t, n == "id") for n, (d, t) in spelled.items()}

    assert conversions("canvas.courses", "utf8mb4_bin", existing, columns) == []
    assert [c.kind for c in conversions("c", "utf8mb4_general_ci", existing, columns)] == [
        "collation"
    ]
    existing["is_public"] = Existing("tinyint", "tinyint(4)", False)  # as dap makes it
    [boolean] = conversions("canvas.courses", "utf8mb4_bin", existing, columns)
    assert boolean.describe() == "change type of is_public: tinyint(4) -> BOOLEAN"
    assert boolean.clause() == "MODIFY COLUMN `is_public` BOOLEAN NULL"

"""The contract every backend meets, run against PostgreSQL, DuckDB and MySQL alike."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from dapctl.databases import DatabaseError, NeedsReload
from dapctl.emulator import Emulator, EmulatorSettings
from dapctl.errors import ConfigError, LockError
from tests.databases.helpers import (
    Backend,
    dap_schema,
    expected_rows,
    load,
    query_postgresql,
    table_columns,
    with_value_field,
    write_part,
)

TABLES = ["courses", "accounts", "users", "submissions"]


@pytest.fixture
def emu():
    with Emulator(EmulatorSettings.for_tests(rows_per_table=300, part_size=100)) as emu:
        yield emu


def step_records(db):
    """The step rows as ``schema.table`` -> record."""
    return {f"{s}.{t}": row.record for (s, t), row in db.read_steps().items()}


def _snapshot(emu, backend, db, table, tmp_path, schema=None):
    schema = schema or dap_schema("canvas", table)
    records = emu.expected_snapshot("canvas", table)
    parts = [
        write_part(tmp_path / f"{table}-snap-{i}.jsonl", records[i : i + 100])
        for i in range(0, len(records), 100)
    ]
    return load(db, table, schema, parts, address=f"canvas.{table}", record='{"n": 0}')


@pytest.mark.parametrize("table", TABLES)
def test_snapshot_then_chained_incrementals_match_the_server_exactly(emu, backend, tmp_path, table):
    db = backend.open()
    schema = dap_schema("canvas", table)
    assert _snapshot(emu, backend, db, table, tmp_path) == 300
    for round_ in range(3):
        since = emu.now
        emu.change("canvas", table, inserts=7, updates=11, deletes=5)
        emu.advance(60)
        changes = emu.expected_changes("canvas", table, since)
        part = write_part(tmp_path / f"inc-{round_}.jsonl", changes)
        applied = load(db, table, schema, [part], kind="incremental", record=f'{{"n": {round_}}}')
        assert applied == 23
        expected = expected_rows(emu.expected_snapshot("canvas", table), table_columns(schema))
        assert backend.rows(f"canvas.{table}", schema) == expected
    assert step_records(db) == {f"canvas.{table}": '{"n": 2}'}
    assert backend.staging_tables() == []


def test_web_logs_string_keys_and_tricky_text(backend, tmp_path):
    with Emulator(EmulatorSettings.for_tests()) as emu:
        db = backend.open()
        schema = json_schema_of(emu, "web_logs")
        records = emu.expected_snapshot("canvas_logs", "web_logs")
        load(db, "web_logs", schema, [write_part(tmp_path / "w.jsonl", records)])
        assert backend.rows("canvas.web_logs", schema) == expected_rows(
            records, table_columns(schema)
        )


def json_schema_of(emu, table):
    from dapctl.emulator.catalog import json_schema
    from tests.databases.helpers import TABLES as SPECS

    return json_schema(next(s for s in SPECS if s.name == table), 1)


def test_unicode_backslashes_nulls_and_an_oversized_value_survive(backend, tmp_path):
    schema = dap_schema("canvas", "courses")
    big = "x\\y\u00e9\U0001f393" * 300_000  # about 2.1 MB in one value
    records = [
        {
            "key": {"id": 1},
            "value": {"name": big, "settings": {"theme": "\\N"}},
            "meta": {"ts": "2026-01-01T00:00:00Z"},
        },
        {
            "key": {"id": 2},
            "value": {"name": 'a\tb\\n"c" NULL 中文', "course_code": None},
            "meta": {"ts": "2026-01-01T00:00:00.5+02:00"},
        },
        {"key": {"id": 3}, "value": {}, "meta": {"ts": "2026-01-01T00:00:00Z", "action": "U"}},
    ]
    db = backend.open()
    load(db, "courses", schema, [write_part(tmp_path / "p.jsonl", records)])
    assert backend.rows("canvas.courses", schema) == expected_rows(records, table_columns(schema))


def test_last_record_of_a_key_wins_within_one_window(backend, tmp_path):
    schema = dap_schema("canvas", "users")
    db = backend.open()
    base = [
        {"key": {"id": i}, "value": {"name": f"v0-{i}"}, "meta": {"ts": "2026-01-01T00:00:00Z"}}
        for i in (1, 2, 3)
    ]
    load(db, "users", schema, [write_part(tmp_path / "s.jsonl", base)])

    def rec(i, name, ts, action="U"):
        value = {} if action == "D" else {"value": {"name": name}}
        return {"key": {"id": i}, **value, "meta": {"ts": ts, "action": action}}

    first = [
        rec(1, "late", "2026-01-03T00:00:00Z"),
        rec(2, "a", "2026-01-02T00:00:00Z"),
        rec(3, "x", "2026-01-02T00:00:00Z"),
        rec(4, "new", "2026-01-02T00:00:00Z"),
    ]
    second = [
        rec(1, "early", "2026-01-02T00:00:00Z"),
        rec(2, "", "2026-01-02T00:00:00Z", "D"),
        rec(3, "y", "2026-01-02T00:00:00Z", "D"),
        rec(3, "z", "2026-01-02T00:00:00Z"),
    ]
    parts = [write_part(tmp_path / "a.jsonl", first), write_part(tmp_path / "b.jsonl", second)]
    load(db, "users", schema, parts, kind="incremental")
    got = backend.query("SELECT id, name FROM canvas.users ORDER BY id")
    assert got == [(1, "late"), (3, "z"), (4, "new")]


def _users(ids, tag, ts="2026-01-02T00:00:00Z", action=None):
    meta = {"ts": ts, **({"action": action} if action else {})}
    return [
        {"key": {"id": i}, "meta": meta}
        if action == "D"
        else {"key": {"id": i}, "value": {"name": f"{tag}-{i}", "locale": "x" * 60}, "meta": meta}
        for i in ids
    ]


def test_parts_big_enough_for_helper_connections_keep_every_rule(backend, tmp_path):
    schema = dap_schema("canvas", "users")
    db = backend.open()
    # About 4 MB a part, so PostgreSQL converts them in the background, sliced.
    snap = [_users(range(n * 25_000, (n + 1) * 25_000), "s") for n in range(3)]
    snap[2][:10] = _users(range(10), "again")  # a key seen twice: the later line wins
    parts = [write_part(tmp_path / f"s{n}.jsonl", recs) for n, recs in enumerate(snap)]
    assert load(db, "users", schema, parts) == 75_000 - 10
    late = "2026-01-03T00:00:00Z"
    first = _users(range(0, 30_000), "u1", late) + _users(range(30_000, 31_000), "", late, "D")
    second = _users(range(0, 100), "old")  # older meta.ts: loses to the first part
    second += _users(range(100, 200), "", late, "D") + _users(range(80_000, 80_005), "new")
    parts = [write_part(tmp_path / "i1.jsonl", first), write_part(tmp_path / "i2.jsonl", second)]
    load(db, "users", schema, parts, kind="incremental")
    got = dict(backend.query("SELECT id, name FROM canvas.users"))
    assert len(got) == 75_000 - 10 - 1_000 - 100 + 5
    assert got[5] == "u1-5" and got[99] == "u1-99" and got[80_001] == "new-80001"
    assert 150 not in got and 30_500 not in got and 50_007 not in got
    assert got[40_000] == "s-40000" and got[50_010] == "s-50010" and got[31_000] == "s-31000"
    loading = db.begin_load(schema="canvas", table="users", dap_schema=schema, kind="snapshot")
    loading.add_part(parts[0])
    loading.abort()  # while helpers may still be converting
    assert backend.staging_tables() == []
    assert len(backend.query("SELECT id FROM canvas.users")) == len(got)


def _decorate(backend):
    backend.query(
        "CREATE VIEW canvas.course_names AS SELECT id, name, account_id FROM canvas.courses"
    )
    mysql = backend.kind == "mysql"  # a VARCHAR needs a length, an index on text a prefix
    backend.query(f"ALTER TABLE canvas.courses ADD COLUMN note VARCHAR{'(20)' if mysql else ''}")
    backend.query(f"CREATE INDEX courses_by_name ON canvas.courses (name{'(20)' if mysql else ''})")
    backend.query("UPDATE canvas.courses SET note = 'mine'")


def _indexes(backend):
    if backend.kind == "postgresql":
        return backend.query("SELECT indexname FROM pg_indexes WHERE tablename = 'courses'")
    if backend.kind == "mysql":
        return backend.query(
            "SELECT DISTINCT index_name FROM information_schema.statistics "
            "WHERE table_schema = DATABASE() AND table_name = 'canvas__courses'"
        )
    return backend.query("SELECT index_name FROM duckdb_indexes() WHERE table_name = 'courses'")


@pytest.mark.sql_only
def test_views_indexes_and_user_columns_survive_a_snapshot_reload(emu, backend, tmp_path):
    db = backend.open()
    _snapshot(emu, backend, db, "courses", tmp_path)
    _decorate(backend)
    emu.change("canvas", "courses", inserts=5, updates=5, deletes=5)
    assert _snapshot(emu, backend, db, "courses", tmp_path) == 300
    assert backend.query("SELECT count(*) FROM canvas.course_names") == [(300,)]
    assert ("courses_by_name",) in _indexes(backend)
    assert backend.query("SELECT count(note) FROM canvas.courses") == [(0,)]
    schema = dap_schema("canvas", "courses")
    assert backend.rows("canvas.courses", schema) == expected_rows(
        emu.expected_snapshot("canvas", "courses"), table_columns(schema)
    )


@pytest.mark.sql_only
def test_new_columns_are_added_and_dropped_ones_kept(emu, backend, tmp_path):
    db = backend.open()
    _snapshot(emu, backend, db, "courses", tmp_path)
    _decorate(backend)
    schema = with_value_field(dap_schema("canvas", "courses"), "grade", {"type": "string"})
    schema = with_value_field(schema, "course_code", None)
    assert db.pending_schema_changes(schema="canvas", table="courses", dap_schema=schema) == [
        "add column grade "
        + {"postgresql": "text", "mysql": "LONGTEXT"}.get(backend.kind, "VARCHAR")
    ]
    part = write_part(
        tmp_path / "i.jsonl",
        [
            {
                "key": {"id": 1},
                "value": {"name": "n", "grade": "A"},
                "meta": {"ts": "2030-01-01T00:00:00Z", "action": "U"},
            }
        ],
    )
    before = backend.query("SELECT course_code FROM canvas.courses WHERE id = 1")
    load(db, "courses", schema, [part], kind="incremental")
    # The server no longer sends course_code: the column and its values stay as they were.
    assert backend.query("SELECT grade, course_code FROM canvas.courses WHERE id = 1") == [
        ("A", before[0][0])
    ]
    assert backend.query("SELECT count(course_code) FROM canvas.courses")[0][0] > 100
    assert backend.query("SELECT count(*) FROM canvas.course_names") == [(300,)]
    assert backend.query("SELECT count(note) FROM canvas.courses") == [(300,)]


@pytest.mark.sql_only
def test_a_widening_type_change_is_applied_in_place(emu, backend, tmp_path):
    narrow = with_value_field(
        dap_schema("canvas", "courses"), "account_id", {"type": "integer", "format": "int32"}
    )
    db = backend.open()
    _snapshot(emu, backend, db, "courses", tmp_path, narrow)
    backend.query("CREATE VIEW canvas.course_accounts AS SELECT id, account_id FROM canvas.courses")
    if backend.kind == "postgresql":
        backend.query("GRANT SELECT ON canvas.course_accounts TO PUBLIC")
    wide = dap_schema("canvas", "courses")
    (change,) = db.pending_schema_changes(schema="canvas", table="courses", dap_schema=wide)
    assert change.lower() == "change type of account_id: integer -> bigint"
    part = write_part(
        tmp_path / "i.jsonl",
        [
            {
                "key": {"id": 1},
                "value": {"name": "n", "account_id": 2**40},
                "meta": {"ts": "2030-01-01T00:00:00Z", "action": "U"},
            }
        ],
    )
    load(db, "courses", wide, [part], kind="incremental")
    assert backend.query("SELECT account_id FROM canvas.course_accounts WHERE id = 1") == [(2**40,)]
    assert backend.query("SELECT count(*) FROM canvas.course_accounts") == [(300,)]
    if backend.kind == "postgresql":
        assert backend.query(
            "SELECT has_table_privilege('public', 'canvas.course_accounts', 'SELECT')"
        ) in ([(True,)],)


def test_a_lossy_type_change_needs_a_reload_but_a_snapshot_applies_it(emu, backend, tmp_path):
    db = backend.open()
    _snapshot(emu, backend, db, "courses", tmp_path)
    changed = with_value_field(dap_schema("canvas", "courses"), "course_code", {"type": "integer"})
    with pytest.raises(NeedsReload, match="course_code"):
        db.begin_load(schema="canvas", table="courses", dap_schema=changed, kind="incremental")
    part = write_part(
        tmp_path / "s.jsonl",
        [
            {
                "key": {"id": 9},
                "value": {"name": "n", "course_code": 42},
                "meta": {"ts": "2030-01-01T00:00:00Z"},
            }
        ],
    )
    load(db, "courses", changed, [part])
    assert backend.query("SELECT id, course_code FROM canvas.courses") == [(9, 42)]


@pytest.mark.sql_only
def test_after_needs_reload_a_snapshot_succeeds_and_keeps_views(emu, backend, tmp_path):
    db = backend.open()
    _snapshot(emu, backend, db, "courses", tmp_path)
    _decorate(backend)
    backend.query("CREATE VIEW canvas.course_codes AS SELECT id, course_code FROM canvas.courses")
    backend.query("CREATE VIEW canvas.coded AS SELECT id FROM canvas.course_codes")
    changed = with_value_field(dap_schema("canvas", "courses"), "course_code", {"type": "integer"})
    with pytest.raises(NeedsReload, match="course_code"):
        db.begin_load(schema="canvas", table="courses", dap_schema=changed, kind="incremental")
    records = [
        {"key": {"id": i}, "value": {"name": f"n{i}", "course_code": i * 10},
         "meta": {"ts": "2030-01-01T00:00:00Z"}}
        for i in range(1, 6)
    ]  # fmt: skip
    load(db, "courses", changed, [write_part(tmp_path / "s.jsonl", records)], record='{"n": 1}')
    assert backend.query("SELECT id, course_code FROM canvas.course_codes ORDER BY id") == [
        (i, i * 10) for i in range(1, 6)
    ]
    assert backend.query("SELECT count(*) FROM canvas.coded") == [(5,)]
    assert backend.query("SELECT count(*) FROM canvas.course_names") == [(5,)]
    assert ("courses_by_name",) in _indexes(backend)
    change = {"key": {"id": 2}, "value": {"name": "m", "course_code": 7},
              "meta": {"ts": "2030-01-02T00:00:00Z", "action": "U"}}  # fmt: skip
    gone = {"key": {"id": 3}, "meta": {"ts": "2030-01-02T00:00:00Z", "action": "D"}}
    part = write_part(tmp_path / "i.jsonl", [change, gone])
    assert load(db, "courses", changed, [part], kind="incremental", record='{"n": 2}') == 2
    assert backend.query("SELECT id, course_code FROM canvas.course_codes ORDER BY id") == [
        (1, 10), (2, 7), (4, 40), (5, 50)
    ]  # fmt: skip
    assert step_records(db)["canvas.courses"] == '{"n": 2}'
    assert backend.staging_tables() == []


@pytest.mark.sql_only
def test_a_view_that_cannot_follow_a_type_change_stops_the_snapshot_by_name(emu, backend, tmp_path):
    if backend.kind != "postgresql":
        pytest.skip(
            f"{backend.kind} binds a view's SQL when it is queried, not when the table changes: "
            "no type change can break a view there"
        )
    db = backend.open()
    _snapshot(emu, backend, db, "courses", tmp_path)
    backend.query(
        "CREATE VIEW canvas.a_codes AS SELECT id FROM canvas.courses WHERE course_code LIKE 'A%'"
    )
    changed = with_value_field(dap_schema("canvas", "courses"), "course_code", {"type": "integer"})
    record = {"key": {"id": 1}, "value": {"course_code": 1}, "meta": {"ts": "2030-01-01T00:00:00Z"}}
    part = write_part(tmp_path / "s.jsonl", [record])
    with pytest.raises(DatabaseError, match=r"view canvas\.a_codes.*drop or change that view"):
        load(db, "courses", changed, [part], address="canvas.courses", record='{"n": 1}')
    assert backend.query("SELECT count(*) FROM canvas.courses") == [(300,)]
    assert backend.query("SELECT count(*) FROM canvas.a_codes") != []
    assert step_records(db) == {"canvas.courses": '{"n": 0}'}


@pytest.mark.sql_only
def test_abort_drops_staging_and_leaves_the_table_alone(emu, backend, tmp_path):
    db = backend.open()
    _snapshot(emu, backend, db, "courses", tmp_path)
    loading = db.begin_load(
        schema="canvas",
        table="courses",
        dap_schema=dap_schema("canvas", "courses"),
        kind="snapshot",
    )
    loading.add_part(
        write_part(tmp_path / "x.jsonl", emu.expected_snapshot("canvas", "courses")[:3])
    )
    assert backend.staging_tables()
    assert db.sweep_staging() == []  # a live load's staging is never swept
    assert backend.staging_tables()
    loading.abort()
    assert backend.staging_tables() == []
    assert backend.query("SELECT count(*) FROM canvas.courses") == [(300,)]
    assert step_records(db) == {"canvas.courses": '{"n": 0}'}


def test_write_step_upserts_the_row_of_its_table(backend):
    db = backend.open()
    db.write_step(("s", "a"), address="p/t/ns.a", record='{"job": "1"}')
    db.write_step(("s", "a"), address="q/t/ns.a", record='{"job": "2"}')
    db.write_step(("s2", "a"), address="p/t/ns.a", record="{}")
    assert db.read_steps() == {
        ("s", "a"): ("q/t/ns.a", '{"job": "2"}'),
        ("s2", "a"): ("p/t/ns.a", "{}"),
    }


def test_tables_lists_the_databases_tables_not_dapctls_own(emu, backend, tmp_path):
    db = backend.open()
    assert ("canvas", "courses") not in db.tables()
    _snapshot(emu, backend, db, "courses", tmp_path)
    assert ("canvas", "courses") in db.tables()
    assert not {s for s, _ in db.tables()} & {"dapctl", "pg_catalog", "information_schema"}
    backend.query("DROP TABLE canvas.courses")
    assert ("canvas", "courses") not in db.tables()
    if backend.sql:
        assert step_records(db) == {"canvas.courses": '{"n": 0}'}  # stays; the plan asks both
    else:  # a lake table's record is in its own commits: gone with it
        assert step_records(db) == {}


def test_a_second_load_of_a_table_waits_then_fails_with_lock_error(backend):
    first, second = backend.open(), backend.open()
    with first.lock("canvas.courses", timeout=1):
        started = time.monotonic()
        with (
            pytest.raises(LockError, match=r"canvas\.courses.*0\.3 s"),
            second.lock("canvas.courses", timeout=0.3),
        ):
            pass
        assert time.monotonic() - started >= 0.3
        with second.lock("canvas.users", timeout=0.3):
            pass
    with second.lock("canvas.courses", timeout=0.3):
        pass


@pytest.mark.parametrize("name", ["bad-name", "x; drop table y", "", "1abc", "a" * 64])
def test_invalid_identifiers_are_refused(backend, name):
    db = backend.open()
    with pytest.raises(ConfigError, match="invalid"):
        db.begin_load(
            schema=name, table="t", dap_schema=dap_schema("canvas", "users"), kind="snapshot"
        )
    with pytest.raises(ConfigError, match="invalid"):
        db.begin_load(
            schema="canvas", table=name, dap_schema=dap_schema("canvas", "users"), kind="snapshot"
        )


def test_meta_ts_keeps_the_record_timestamp(backend, tmp_path):
    db = backend.open()
    schema = dap_schema("canvas", "users")
    load(
        db,
        "users",
        schema,
        [
            write_part(
                tmp_path / "p.jsonl",
                [
                    {
                        "key": {"id": 1},
                        "value": {"name": "a"},
                        "meta": {"ts": "2026-11-02T12:00:00.250Z"},
                    }
                ],
            )
        ],
    )
    (ts,) = backend.query("SELECT meta_ts FROM canvas.users")[0]
    assert ts == datetime.fromisoformat("2026-11-02T12:00:00.250+00:00")


def test_a_table_another_tables_foreign_key_references_takes_a_snapshot_reload(
    emu, pg_url, tmp_path
):
    """PostgreSQL refuses to TRUNCATE a referenced table: its snapshot is merged instead,
    the referencing rows kept; a key the snapshot drops but a row still references stops
    the load by the constraint's name, leaving table and step as they were."""
    backend = Backend(
        "postgresql", pg_url, tmp_path, query_postgresql
    )  # DuckDB has no such foreign keys
    db = backend.open()
    _snapshot(emu, backend, db, "accounts", tmp_path)
    first = backend.query("SELECT min(id) FROM canvas.accounts")[0][0]
    backend.query(
        "CREATE TABLE public.notes (account_id bigint REFERENCES canvas.accounts (id), note text)"
    )
    backend.query(f"INSERT INTO public.notes VALUES ({first}, 'kept')")  # noqa: S608
    emu.change("canvas", "accounts", inserts=5, updates=5, deletes=5)
    assert _snapshot(emu, backend, db, "accounts", tmp_path) == 300
    schema = dap_schema("canvas", "accounts")
    want = expected_rows(emu.expected_snapshot("canvas", "accounts"), table_columns(schema))
    assert backend.rows("canvas.accounts", schema) == want
    assert backend.query("SELECT note FROM public.notes") == [("kept",)]

    last = backend.query("SELECT max(id) FROM canvas.accounts")[0][0]
    backend.query(f"INSERT INTO public.notes VALUES ({last}, 'blocks')")  # noqa: S608
    records = [r for r in emu.expected_snapshot("canvas", "accounts") if r["key"]["id"] != last]
    loading = db.begin_load(schema="canvas", table="accounts", dap_schema=schema, kind="snapshot")
    loading.add_part(write_part(tmp_path / "without.jsonl", records))
    with pytest.raises(DatabaseError, match="notes_account_id_fkey"):
        loading.commit(address="canvas.accounts", record='{"n": 9}')
    loading.abort()  # as the collector does after a failed commit
    assert backend.rows("canvas.accounts", schema) == want  # nothing half-done
    assert step_records(db)["canvas.accounts"] == '{"n": 0}'
    assert backend.staging_tables() == []

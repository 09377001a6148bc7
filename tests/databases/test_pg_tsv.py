"""PostgreSQL loads from condensed TSV parts (what a table-only target asks DAP for): COPYed
straight into typed staging, they leave the table exactly as JSON Lines parts of the same
records do, and as the emulator's data; a snapshot's indexes are set aside and rebuilt."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from dapctl.apply import ApplyOptions
from dapctl.databases import DatabaseError, table_columns
from dapctl.emulator import Emulator, EmulatorSettings
from dapctl.emulator.formats import encode_text
from dapctl.loading import load_config
from dapctl.wiring import run_apply
from tests.apply_helpers import FAST, config_text, environ
from tests.databases.helpers import (
    Backend,
    dap_schema,
    expected_rows,
    load,
    query_postgresql,
    spec,
    write_part,
)


@pytest.fixture
def pg(pg_url: str, tmp_path: Path):
    made = Backend("postgresql", pg_url, tmp_path, query_postgresql)
    yield made
    made.close()


def write_tsv(path: Path, table: str, records: list[dict[str, Any]], *, snapshot: bool) -> Path:
    """A part as DAP serves condensed TSV (a snapshot's has no meta.action column)."""
    text = encode_text(records, spec("canvas", table), "tsv", "condensed", snapshot=snapshot)
    path.write_text(text, encoding="utf-8")
    return path


def _parts(folder: Path, table: str, records: list[dict], *, snapshot: bool, size: int = 70):
    return [
        write_tsv(folder / f"{table}-{i}.tsv", table, records[i : i + size], snapshot=snapshot)
        for i in range(0, len(records), size)
    ]


@pytest.mark.parametrize("table", ["courses", "accounts", "users", "submissions"])
def test_tsv_snapshot_then_chained_incrementals_match_the_server(pg, tmp_path, table):
    # courses: a nested object; accounts: free-form JSON; every table: enums, nulls, tricky
    # text (tabs, newlines, backslashes, \N, unicode) as the emulator generates it.
    with Emulator(EmulatorSettings.for_tests(rows_per_table=300)) as emu:
        db = pg.open()
        schema = dap_schema("canvas", table)
        snap = emu.expected_snapshot("canvas", table)
        assert load(db, table, schema, _parts(tmp_path, table, snap, snapshot=True)) == 300
        for round_ in range(3):
            since = emu.now
            emu.change("canvas", table, inserts=7, updates=11, deletes=5)
            emu.advance(60)
            changes = emu.expected_changes("canvas", table, since)
            part = write_tsv(tmp_path / f"inc-{round_}.tsv", table, changes, snapshot=False)
            assert load(db, table, schema, [part], kind="incremental") == 23
            want = expected_rows(emu.expected_snapshot("canvas", table), table_columns(schema))
            assert pg.rows(f"canvas.{table}", schema) == want
        assert pg.staging_tables() == []


def test_tsv_and_jsonl_parts_of_the_same_records_leave_equal_tables(pg, tmp_path):
    schema = dap_schema("canvas", "courses")
    big = "x\\y\u00e9\U0001f393\t\n" * 200_000  # about 2 MB in one value
    records = [
        {"key": {"id": 1}, "value": {"name": big, "settings": {"theme": "\\N"}},
         "meta": {"ts": "2026-01-01T00:00:00Z", "action": "U"}},
        {"key": {"id": 2}, "value": {"name": 'a\tb\\n"c" NULL 中文', "course_code": ""},
         "meta": {"ts": "2026-01-01T00:00:00.5+02:00", "action": "U"}},
        {"key": {"id": 3}, "value": {"name": "\\", "settings": {"hide_grades": False}},
         "meta": {"ts": "2026-01-01T00:00:00Z", "action": "U"}},
    ]  # fmt: skip
    db = pg.open()
    jsonl = write_part(tmp_path / "p.jsonl", records)
    load(db, "courses", schema, [jsonl])
    from_jsonl = pg.rows("canvas.courses", schema)
    load(db, "courses", schema, [write_tsv(tmp_path / "p.tsv", "courses", records, snapshot=True)])
    assert pg.rows("canvas.courses", schema) == from_jsonl
    assert from_jsonl == expected_rows(records, table_columns(schema))


def test_the_later_row_of_a_key_wins_across_and_within_tsv_parts(pg, tmp_path):
    schema = dap_schema("canvas", "users")
    db = pg.open()

    def rec(i, name, ts="2026-01-02T00:00:00Z", action="U"):
        value = {} if action == "D" else {"value": {"name": name, "workflow_state": "registered"}}
        return {"key": {"id": i}, **value, "meta": {"ts": ts, "action": action}}

    base = [rec(i, "v0") for i in (1, 2, 3)]
    load(db, "users", schema, [write_tsv(tmp_path / "s.tsv", "users", base, snapshot=True)])
    first = [rec(1, "late", "2026-01-03T00:00:00Z"), rec(2, "a"), rec(3, "x"), rec(4, "new")]
    second = [rec(1, "early"), rec(2, "", action="D"), rec(3, "y", action="D"), rec(3, "z")]
    parts = [
        write_tsv(tmp_path / "a.tsv", "users", first, snapshot=False),
        write_tsv(tmp_path / "b.tsv", "users", second, snapshot=False),
    ]
    load(db, "users", schema, parts, kind="incremental")
    got = pg.query("SELECT id, name FROM canvas.users ORDER BY id")
    assert got == [(1, "late"), (3, "z"), (4, "new")]


def test_a_tsv_column_the_schema_lacks_is_refused_naming_it(pg, tmp_path):
    db = pg.open()
    part = tmp_path / "odd.tsv"
    part.write_text("meta.ts\tkey.id\tvalue.nickname\n2026-01-01T00:00:00Z\t1\tx\n")
    loading = db.begin_load(
        schema="canvas", table="users", dap_schema=dap_schema("canvas", "users"), kind="snapshot"
    )
    with pytest.raises(DatabaseError, match=r"odd\.tsv.*'value\.nickname'"):
        loading.add_part(part)
    loading.abort()
    assert pg.query("SELECT count(*) FROM pg_class WHERE relname = 'users'") == [(0,)]
    assert pg.staging_tables() == []


def test_a_snapshot_rebuilds_the_indexes_it_set_aside_as_they_were(pg, tmp_path):
    schema = dap_schema("canvas", "users")
    db = pg.open()
    rows = [{"key": {"id": i}, "value": {"name": f"n{i}", "locale": "en"},
             "meta": {"ts": "2026-01-01T00:00:00Z"}} for i in range(1, 201)]  # fmt: skip
    part = write_tsv(tmp_path / "s.tsv", "users", rows, snapshot=True)
    load(db, "users", schema, [part])
    pg.query(
        "CREATE INDEX users_name ON canvas.users (lower(name));"
        "CREATE UNIQUE INDEX users_en ON canvas.users (name) WHERE locale = 'en';"
        "COMMENT ON INDEX canvas.users_name IS 'mine';"
        "ALTER TABLE canvas.users CLUSTER ON users_name;"
        "COMMENT ON CONSTRAINT users_pkey ON canvas.users IS 'the key'"
    )
    before = _indexes(pg)
    load(db, "users", schema, [part])
    after = _indexes(pg)
    assert [i[1:] for i in after] == [i[1:] for i in before]  # same definitions, comments, mark
    assert {i[0] for i in after}.isdisjoint(i[0] for i in before)  # each built again
    with pytest.raises(Exception, match="duplicate key"):
        pg.query("INSERT INTO canvas.users (id, name, workflow_state) VALUES (1, 'x', 'r')")


def test_the_replica_identity_index_stays_as_it_is(pg, tmp_path):
    schema = dap_schema("canvas", "users")
    db = pg.open()
    rows = [{"key": {"id": i}, "value": {"name": f"n{i}"}, "meta": {"ts": "2026-01-01T00:00:00Z"}}
            for i in range(1, 51)]  # fmt: skip
    load(db, "users", schema, [write_part(tmp_path / "s.jsonl", rows)])
    pg.query("ALTER TABLE canvas.users REPLICA IDENTITY USING INDEX users_pkey")
    before = _indexes(pg)
    load(db, "users", schema, [write_part(tmp_path / "s.jsonl", rows)])
    assert _indexes(pg) == before  # kept and maintained, not rebuilt
    assert pg.query("SELECT count(*) FROM canvas.users") == [(50,)]
    ident = "SELECT relreplident FROM pg_class WHERE oid = 'canvas.users'::regclass"
    assert pg.query(ident) == [("i",)]


def _indexes(pg: Backend) -> list[tuple]:
    return pg.query(
        "SELECT i.indexrelid, pg_get_indexdef(i.indexrelid), i.indisclustered, "
        "obj_description(i.indexrelid, 'pg_class'), "
        "(SELECT obj_description(c.oid, 'pg_constraint') FROM pg_constraint c "
        " WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid) "
        "FROM pg_index i WHERE i.indrelid = 'canvas.users'::regclass ORDER BY 2"
    )


def test_a_table_only_postgresql_target_asks_for_condensed_tsv(pg, make_emulator, write_config):
    emu = make_emulator()
    text = config_text(emu, extra_target='database = "wh"').replace('output = "out/', "# ")
    path = write_config(f'[databases.wh]\nurl = "{pg.url}"\n\n{text}')
    results = run_apply(
        load_config(path), environ=environ(emu), options=ApplyOptions(), connection=FAST
    )
    assert [r.status for r in results] == ["ok", "ok"], results
    for result in results:
        job = emu.jobs.get(str(result.job_id), emu.clock())
        assert job is not None and (job.query.format, job.query.mode) == ("tsv", "condensed")
        schema = dap_schema("canvas", result.table)
        want = expected_rows(emu.expected_snapshot("canvas", result.table), table_columns(schema))
        assert pg.rows(f"canvas.{result.table}", schema) == want
    assert json.loads(pg.query("SELECT record FROM dapctl.table_steps LIMIT 1")[0][0])["kind"]


def test_cut_keeps_whole_lines_and_counts_them(tmp_path):
    from dapctl.databases.pg_tsv import cut

    path = tmp_path / "p.tsv"
    body = "".join(f"{i}\tname \\\\t{i}\\n\n" for i in range(1000))
    for text in (f"key.id\tvalue.name\n{body}", f"key.id\tvalue.name\n{body}1001\tlast"):
        path.write_text(text)
        with path.open("rb") as source:
            pieces = cut(source, size=500)
        data = path.read_bytes()
        assert len(pieces) > 10 and pieces[0].start == len("key.id\tvalue.name\n")
        assert all(a.end == b.start for a, b in itertools.pairwise(pieces))
        assert pieces[-1].end == len(data)
        assert all(data[p.end - 1 : p.end] == b"\n" for p in pieces[:-1])
        assert sum(p.rows for p in pieces) == text.count("\n") + (not text.endswith("\n")) - 1


def test_a_key_repeated_across_the_pieces_of_one_part_keeps_its_last_row(pg, tmp_path, monkeypatch):
    from dapctl.databases import pg_tsv

    monkeypatch.setattr(pg_tsv, "PIECE", 2_000)  # dozens of pieces, COPYed in parallel
    schema = dap_schema("canvas", "users")
    db = pg.open()
    ts = "2026-01-02T00:00:00Z"
    records = [
        {"key": {"id": i % 50}, "value": {"name": f"v{n}", "workflow_state": "registered"},
         "meta": {"ts": ts, "action": "U"}}
        for n, i in enumerate(range(600))
    ]  # fmt: skip
    part = write_tsv(tmp_path / "p.tsv", "users", records, snapshot=False)
    assert load(db, "users", schema, [part], kind="incremental") == 50
    got = dict(pg.query("SELECT id, name FROM canvas.users"))
    assert got == {i: f"v{550 + i}" for i in range(50)}  # each key's last line wins

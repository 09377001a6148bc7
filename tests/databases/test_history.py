"""History tables (issue 24, item 1) on every engine: every version of every row, written
with each load, so "the table as of T" can be asked of any time a run's watermark names.

After a chain of applies with inserts, updates and deletes, the history as of each run's
watermark equals the emulator's data as of that watermark (``expected_snapshot(at=...)``),
row for row. At the engine level: a
delete closes the version and records the delete, a key that comes back opens a new one, a
snapshot closes the keys it lacks at its time and leaves unchanged rows alone, and history
turned on mid-life starts from the current rows with no new job."""

from __future__ import annotations

import json

import pytest

from dapctl.databases import table_columns
from dapctl.databases.engine import TableOptions
from tests.apply_helpers import apply, config_text
from tests.databases.helpers import dap_schema, expected_rows, write_part

pytestmark = pytest.mark.sql_only  # history / soft deletes need a database

HISTORY = TableOptions(history_table="users__history")
T0, T1, T2, T3 = (f"2026-01-0{d}T00:00:00Z" for d in (1, 2, 3, 4))
_AS_OF = (
    "SELECT {cols} FROM canvas.{h} WHERE valid_from <= {t} "
    "AND (valid_to IS NULL OR valid_to > {t}) AND NOT deleted"
)


def _rec(i, name, ts, action="U"):
    value = {} if action == "D" else {"value": {"name": name}}
    return {"key": {"id": i}, **value, "meta": {"ts": ts, "action": action}}


def _load(db, tmp_path, records, *, kind, watermark, options=HISTORY, job="j"):
    schema = dap_schema("canvas", "users")
    loading = db.begin_load(
        schema="canvas", table="users", dap_schema=schema, kind=kind, options=options
    )
    loading.add_part(write_part(tmp_path / f"{job}.jsonl", records))
    record = json.dumps({"watermark": watermark, "job_id": job})
    return loading.commit(address="a", record=record)


def _as_of(backend, when: str, cols: str = '"id", "name"', h: str = "users__history"):
    text = when.replace("T", " ").replace("Z", "")
    # MySQL's DATETIME holds UTC; the others compare a zoned time.
    t = f"TIMESTAMP '{text}'" if backend.kind == "mysql" else f"TIMESTAMPTZ '{text}+00'"
    return sorted(backend.query(_AS_OF.format(cols=cols, h=h, t=t)))


def test_versions_open_close_and_record_deletes(backend, tmp_path):
    db = backend.open()
    _load(db, tmp_path, [_rec(i, f"v{i}", T0) for i in (1, 2, 3)], kind="snapshot",
          watermark=T0, job="s")  # fmt: skip
    changes = [_rec(1, "v1b", T1), _rec(2, "", T1, "D")]
    _load(db, tmp_path, changes, kind="incremental", watermark=T1, job="i1")
    _load(db, tmp_path, [_rec(2, "back", T2)], kind="incremental", watermark=T2, job="i2")
    later = [_rec(1, "v1b", T1), _rec(2, "back", T2)]  # 3 is gone; 1 and 2 unchanged
    _load(db, tmp_path, later, kind="snapshot", watermark=T3, job="s2")

    assert _as_of(backend, T0) == [(1, "v1"), (2, "v2"), (3, "v3")]
    assert _as_of(backend, T1) == [(1, "v1b"), (3, "v3")]
    assert _as_of(backend, T2) == [(1, "v1b"), (2, "back"), (3, "v3")]
    assert _as_of(backend, T3) == [(1, "v1b"), (2, "back")]
    versions = backend.query('SELECT "id", deleted, load_id FROM canvas.users__history')
    assert sorted(versions) == [
        (1, False, "i1"),
        (1, False, "s"),
        (2, False, "i2"),
        (2, False, "s"),
        (2, True, "i1"),
        (3, False, "s"),
        (3, True, "s2"),
    ]  # fmt: skip  (the second snapshot versioned no unchanged row)


def test_a_delete_told_twice_keeps_the_first_and_a_return_closes_it(backend, tmp_path):
    db = backend.open()
    _load(db, tmp_path, [_rec(1, "v1", T0)], kind="snapshot", watermark=T0, job="s")
    for job, ts in (("i1", T1), ("i2", T2)):  # DAP may tell a delete again
        _load(db, tmp_path, [_rec(1, "", ts, "D")], kind="incremental", watermark=ts, job=job)
    _load(db, tmp_path, [_rec(1, "back", T3)], kind="incremental", watermark=T3, job="i3")

    versions = backend.query(
        "SELECT load_id, deleted, valid_from, valid_to FROM canvas.users__history"
    )
    spans = sorted((j, d, str(f)[:10], str(t)[:10] if t else None) for j, d, f, t in versions)
    assert spans == [
        ("i1", True, "2026-01-02", "2026-01-04"),  # the second delete left it open
        ("i3", False, "2026-01-04", None),
        ("s", False, "2026-01-01", "2026-01-02"),
    ]


def test_the_history_is_indexed_for_the_versions_a_load_closes(backend, tmp_path):
    """PostgreSQL: a partial index on the open versions' keys; MySQL: one on the key, added
    again by the next load to a history table that lacks it (one made before dapctl made
    it). DuckDB joins by hash and needs none."""
    db = backend.open()
    _load(db, tmp_path, [_rec(1, "v1", T0)], kind="snapshot", watermark=T0, job="s")
    if backend.kind == "postgresql":
        found = backend.query(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'users__history_open'"
        )
        assert [d.split(" USING ")[1] for (d,) in found] == ["btree (id) WHERE (valid_to IS NULL)"]
    elif backend.kind == "mysql":
        named = (
            "SELECT column_name FROM information_schema.statistics WHERE table_schema = "
            "DATABASE() AND table_name = 'canvas__users__history' AND index_name = 'dapctl_key'"
        )
        assert backend.query(named) == [("id",)]
        backend.query("ALTER TABLE canvas__users__history DROP KEY dapctl_key")
        _load(db, tmp_path, [_rec(1, "v1b", T1)], kind="incremental", watermark=T1, job="i")
        assert backend.query(named) == [("id",)]
        assert _as_of(backend, T2) == [(1, "v1b")]
    else:
        assert backend.kind == "duckdb"


def test_history_turned_on_mid_life_starts_from_the_current_rows(backend, tmp_path):
    db = backend.open()
    plain = TableOptions()
    _load(db, tmp_path, [_rec(i, f"v{i}", T0) for i in (1, 2)], kind="snapshot",
          watermark=T0, options=plain, job="s")  # fmt: skip

    _load(db, tmp_path, [_rec(2, "v2b", T2)], kind="incremental", watermark=T2, job="i")

    assert _as_of(backend, T1) == [(1, "v1"), (2, "v2")]  # seeded from the table as it was
    assert _as_of(backend, T3) == [(1, "v1"), (2, "v2b")]


def test_as_of_each_runs_watermark_equals_the_servers_data_then(
    backend, make_emulator, write_config
):
    emu = make_emulator()
    target = 'database = "wh"\ndb_schema = "canvas"\nhistory = true'
    text = config_text(emu, tables='["users"]', extra_target=target)
    text = text.replace('output = "out/', '# output = "out/')
    path = write_config(f'[databases.wh]\nurl = "{backend.url}"\n\n{text}')
    schema = dap_schema("canvas", "users")
    columns = table_columns(schema)
    marks = []
    for round_ in range(3):
        if round_:
            emu.advance(600)
            emu.change("canvas", "users", inserts=3, updates=3, deletes=2)
        [result] = apply(path, emu)
        assert result.status == "ok"
        marks.append(result.at or result.until)
    backend.close()

    names = ", ".join(f'"{c.name}"' for c in columns)
    for mark in marks:  # the emulator answers "the table as of T" itself
        want = expected_rows(emu.expected_snapshot("canvas", "users", at=mark), columns)
        when = mark.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        got = _as_of(backend, when, names)
        assert backend.rows_of(got, schema) == want, when


def test_history_needs_a_database(make_emulator, write_config, run_cli):
    emu = make_emulator()
    path = write_config(config_text(emu, extra_target="history = true"))

    result = run_cli("validate", str(path))

    assert result.code == 1
    assert "targets[0].history" in result.stderr and "needs database" in result.stderr

"""``deletes = "soft"`` (issue 24, item 2) on every engine: a deleted row stays with
``dap_deleted_at`` set to its delete's ``meta.ts``; a key that comes back lives again
(``dap_deleted_at`` NULL); a snapshot marks the keys it no longer holds at the snapshot's
time and leaves rows it holds live; and a chain of applies against the emulator keeps live
rows equal to the server's data, the deleted ones all still there."""

from __future__ import annotations

import json
from datetime import UTC

import pytest

from dapctl.databases import table_columns
from dapctl.databases.engine import TableOptions
from tests.apply_helpers import apply, config_text
from tests.databases.helpers import dap_schema, expected_rows, write_part

pytestmark = pytest.mark.sql_only  # history / soft deletes need a database

SOFT = TableOptions(soft_deletes=True)
T0, T1, T2 = "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"


def _rec(i, name, ts, action="U"):
    value = {} if action == "D" else {"value": {"name": name}}
    return {"key": {"id": i}, **value, "meta": {"ts": ts, "action": action}}


def _load(db, parts, *, kind, watermark=T0):
    schema = dap_schema("canvas", "users")
    loading = db.begin_load(
        schema="canvas", table="users", dap_schema=schema, kind=kind, options=SOFT
    )
    for part in parts:
        loading.add_part(part)
    return loading.commit(address="a", record=json.dumps({"watermark": watermark}))


def _state(backend):
    rows = backend.query("SELECT id, name, dap_deleted_at FROM canvas.users ORDER BY id")
    return {r[0]: (r[1], _utc(r[2])) for r in rows}


def _utc(value):
    if value is None:
        return None
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_deleted_row_stays_marked_and_a_key_that_comes_back_lives_again(backend, tmp_path):
    db = backend.open()
    base = [_rec(i, f"v{i}", T0) for i in (1, 2, 3)]
    _load(db, [write_part(tmp_path / "s.jsonl", base)], kind="snapshot")

    _load(db, [write_part(tmp_path / "d.jsonl", [_rec(2, "", T1, "D")])], kind="incremental")
    assert _state(backend) == {1: ("v1", None), 2: ("v2", T1), 3: ("v3", None)}

    again = [_rec(2, "", T2, "D"), _rec(3, "", T1, "D")]  # 2 again: its first mark stays
    _load(db, [write_part(tmp_path / "d2.jsonl", again)], kind="incremental")
    assert _state(backend) == {1: ("v1", None), 2: ("v2", T1), 3: ("v3", T1)}

    _load(db, [write_part(tmp_path / "u.jsonl", [_rec(2, "back", T2)])], kind="incremental")
    assert _state(backend)[2] == ("back", None)


def test_a_snapshot_marks_the_keys_it_no_longer_holds_at_its_time(backend, tmp_path):
    db = backend.open()
    base = [_rec(i, f"v{i}", T0) for i in (1, 2, 3)]
    _load(db, [write_part(tmp_path / "s.jsonl", base)], kind="snapshot")
    _load(db, [write_part(tmp_path / "d.jsonl", [_rec(1, "", T1, "D")])], kind="incremental")

    later = [_rec(1, "v1-again", T2), _rec(3, "v3-new", T2)]  # 2 is gone, 1 came back
    _load(db, [write_part(tmp_path / "s2.jsonl", later)], kind="snapshot", watermark=T2)

    assert _state(backend) == {1: ("v1-again", None), 2: ("v2", T2), 3: ("v3-new", None)}


def test_an_apply_chain_keeps_live_rows_equal_to_the_server_and_deleted_ones_marked(
    backend, make_emulator, write_config
):
    emu = make_emulator()
    text = config_text(
        emu,
        tables='["users"]',
        extra_target='database = "wh"\ndb_schema = "canvas"\ndeletes = "soft"',
    ).replace('output = "out/', '# output = "out/')
    path = write_config(f'[databases.wh]\nurl = "{backend.url}"\n\n{text}')
    apply(path, emu)
    deleted = set()
    for _ in range(2):
        emu.advance(600)
        before = {r["key"]["id"] for r in emu.expected_snapshot("canvas", "users")}
        emu.change("canvas", "users", inserts=3, updates=2, deletes=2)
        after = {r["key"]["id"] for r in emu.expected_snapshot("canvas", "users")}
        deleted |= before - after
        [result] = apply(path, emu)
        assert result.kind == "incremental" and result.status == "ok"
    backend.close()

    schema = dap_schema("canvas", "users")
    columns = ", ".join(f'"{c}"' for c in ("id", "dap_deleted_at"))
    marks = dict(backend.query(f"SELECT {columns} FROM canvas.users"))  # noqa: S608
    assert {k for k, at in marks.items() if at is not None} == deleted and len(deleted) >= 4
    want = expected_rows(emu.expected_snapshot("canvas", "users"), table_columns(schema))
    live = [r for r in backend.rows("canvas.users", schema) if marks[r[0]] is None]
    assert live == want  # the marks' times are the deletes' meta.ts: checked above


def test_soft_deletes_need_a_database(make_emulator, write_config, run_cli):
    emu = make_emulator()
    path = write_config(config_text(emu, extra_target='deletes = "soft"'))

    result = run_cli("validate", str(path))

    assert result.code == 1
    assert "targets[0].deletes" in result.stderr and "needs database" in result.stderr

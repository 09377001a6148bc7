"""What a Delta lake does that a SQL database does not (issue 25). The shared contract
(chains equal to the server, SIGKILL mid-load and mid-apply, append-only logs, locks,
watermark rules) runs on the lake through the ``backend`` fixture; these are the lake's own:
where its step record lives, two writers racing, type changes, ``plan --refresh``, and the
features it refuses."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from dapctl.databases import NeedsReload, open_database
from dapctl.databases.engine import TableOptions
from dapctl.errors import ConfigError, DatabaseError
from tests.apply_helpers import config_text, environ
from tests.databases.helpers import dap_schema, load, write_part

USERS = dap_schema("canvas", "users")


def _lake(tmp_path):
    return open_database(f"delta+file://{tmp_path}/lake", base_dir=tmp_path)


def _rec(i, name, ts="2026-01-01T00:00:00Z", action="U"):
    value = {} if action == "D" else {"value": {"name": name}}
    return {"key": {"id": i}, **value, "meta": {"ts": ts, "action": action}}


def _names(db, table=("canvas", "users")):
    rows = DeltaTable(db.location(table)).to_pyarrow_table(columns=["id", "name"]).to_pylist()
    return sorted((r["id"], r["name"]) for r in rows)


def test_the_record_is_in_the_commit_and_a_pending_one_counts_only_at_its_version(tmp_path):
    db = _lake(tmp_path)
    part = write_part(tmp_path / "a.jsonl", [_rec(1, "a"), _rec(2, "b")])
    load(db, "users", USERS, [part], address="s", record='{"n": 1}')
    history = DeltaTable(db.location(("canvas", "users"))).history(1)[0]
    assert (history["dapctl.address"], history["dapctl.record"]) == ("s", '{"n": 1}')

    db.write_step(("canvas", "users"), address="s", record='{"job": "pending"}')
    assert db.read_steps()[("canvas", "users")].record == '{"job": "pending"}'
    # Anyone's commit moves the table on: the pending record no longer describes it.
    write_deltalake(db.location(("canvas", "users")), pa.table({"id": [9]}), mode="append",
                    schema_mode="merge")  # fmt: skip
    assert db.read_steps()[("canvas", "users")].record == '{"n": 1}'

    db.write_step(("canvas", "courses"), address="c", record='{"job": "first"}')  # no table yet
    assert db.read_steps()[("canvas", "courses")].record == '{"job": "first"}'


def test_two_writers_from_one_version_cannot_both_commit(tmp_path):
    db = _lake(tmp_path)
    load(db, "users", USERS, [write_part(tmp_path / "s.jsonl", [_rec(1, "a")])], record='{"n": 1}')
    first = db.begin_load(schema="canvas", table="users", dap_schema=USERS, kind="incremental")
    second = db.begin_load(schema="canvas", table="users", dap_schema=USERS, kind="snapshot")
    first.add_part(write_part(tmp_path / "i.jsonl", [_rec(2, "from the first")]))
    second.add_part(write_part(tmp_path / "x.jsonl", [_rec(3, "from the stale second")]))
    assert first.commit(address="a", record='{"n": 2}') == 1

    with pytest.raises(DatabaseError, match="another writer committed to the table"):
        second.commit(address="a", record='{"n": "stale"}')

    assert _names(db) == [(1, "a"), (2, "from the first")]
    assert db.read_steps()[("canvas", "users")].record == '{"n": 2}'


def test_an_incremental_refuses_a_type_change_and_the_snapshot_rewrites_it(tmp_path):
    db = _lake(tmp_path)
    load(db, "users", USERS, [write_part(tmp_path / "s.jsonl", [_rec(1, "a")])])
    where = db.location(("canvas", "users"))
    table = DeltaTable(where).to_pyarrow_table()
    narrowed = table.set_column(0, "id", table["id"].cast(pa.int32()))
    write_deltalake(where, narrowed, mode="overwrite", schema_mode="overwrite")

    with pytest.raises(NeedsReload, match="change type of id: integer -> long"):
        db.begin_load(schema="canvas", table="users", dap_schema=USERS, kind="incremental")
    load(db, "users", USERS, [write_part(tmp_path / "t.jsonl", [_rec(1, "a2")])])
    assert DeltaTable(where).schema().fields[0].type.type == "long"
    assert _names(db) == [(1, "a2")]


def test_history_and_soft_deletes_are_refused_by_name(tmp_path):
    db = _lake(tmp_path)
    for options in (TableOptions(history_table="users__history"), TableOptions(soft_deletes=True)):
        with pytest.raises(ConfigError, match=r"canvas\.users: history tables and soft deletes"):
            db.begin_load(
                schema="canvas", table="users", dap_schema=USERS, kind="snapshot", options=options
            )
    assert db.tables() == set()


def test_deletes_updates_and_new_columns_merge_in_one_commit(tmp_path):
    db = _lake(tmp_path)
    load(
        db,
        "users",
        USERS,
        [write_part(tmp_path / "s.jsonl", [_rec(i, f"v{i}") for i in (1, 2, 3)])],
    )
    before = DeltaTable(db.location(("canvas", "users"))).version()
    wider = json.loads(json.dumps(USERS))
    wider["schema"]["properties"]["value"]["properties"]["pronouns"] = {"type": "string"}
    changes = [
        _rec(1, "", action="D"),
        {**_rec(2, "v2b"), "value": {"name": "v2b", "pronouns": "they"}},
    ]
    rows = load(db, "users", wider, [write_part(tmp_path / "i.jsonl", changes)], kind="incremental")

    dt = DeltaTable(db.location(("canvas", "users")))
    assert rows == 2 and dt.version() == before + 1
    got = dt.to_pyarrow_table(columns=["id", "name", "pronouns"]).to_pylist()
    assert sorted((r["id"], r["name"], r["pronouns"]) for r in got) == [
        (2, "v2b", "they"), (3, "v3", None)
    ]  # fmt: skip


def test_plan_refresh_shows_a_column_the_lake_table_lacks(make_emulator, write_config, run_cli,
                                                          tmp_path):  # fmt: skip
    emu = make_emulator()
    url = f"delta+file://{tmp_path}/lake"
    text = config_text(emu, tables='["accounts"]', extra_target='database = "wh"')
    text = text.replace('output = "out/', '# output = "out/')
    path = write_config(f'[databases.wh]\nurl = "{url}"\n\n{text}')
    env = environ(emu)
    first = run_cli("plan", str(path), "--refresh", environ=env)
    assert "schema: create table canvas.accounts" in first.stdout, first.stdout
    assert run_cli("apply", str(path), environ=env).code == 0
    where = f"{tmp_path}/lake/canvas/accounts"
    write_deltalake(where, DeltaTable(where).to_pyarrow_table().drop_columns(["name"]),
                    mode="overwrite", schema_mode="overwrite")  # fmt: skip

    again = run_cli("plan", str(path), "--refresh", "--json", environ=env)
    (step,) = json.loads(again.stdout)["steps"]
    assert [c for c in step["schema_changes"] if c.startswith("add column name")], step


def test_a_lake_url_names_a_folder_or_a_bucket_prefix(tmp_path):
    for bad in ("delta+file:", "delta+file://elsewhere/lake", "delta+s3://bucket",
                "delta+s3://key:secret@bucket/lake"):  # fmt: skip
        with pytest.raises(ConfigError) as caught:
            open_database(bad, base_dir=tmp_path)
        assert "secret" not in str(caught.value)
    assert _lake(tmp_path).root == f"{tmp_path}/lake"
    relative = open_database("delta+file:lake", base_dir=tmp_path)
    assert relative.root == f"{tmp_path}/lake"  # type: ignore[attr-defined]


def test_upkeep_compacts_and_cleans_up_and_changes_no_row(tmp_path):
    url = f"delta+file://{tmp_path}/lake?optimize_every=3&vacuum_after=0h"
    db = open_database(url, base_dir=tmp_path)
    load(db, "users", USERS, [write_part(tmp_path / "s.jsonl", [_rec(1, "a")])], record='{"n": 0}')
    for n in range(1, 6):
        part = write_part(tmp_path / f"i{n}.jsonl", [_rec(n + 1, f"v{n}")])
        load(db, "users", USERS, [part], kind="incremental", record=f'{{"n": {n}}}')

    dt = DeltaTable(db.location(("canvas", "users")))
    operations = [c["operation"] for c in dt.history()]
    assert operations.count("OPTIMIZE") == 2  # after loads 3 and 6
    assert len(dt.file_uris()) <= 2
    on_disk = list((tmp_path / "lake" / "canvas" / "users").glob("*.parquet"))
    assert len(on_disk) == len(dt.file_uris())  # vacuumed: nothing unreferenced left
    assert _names(db) == [(1, "a"), *((n + 1, f"v{n}") for n in range(1, 6))]
    assert db.read_steps()[("canvas", "users")].record == '{"n": 5}'


def test_bad_upkeep_settings_are_refused_by_name(tmp_path):
    for query, named in (("optimize_every=0", "optimize_every"), ("vacuum_after=7", "vacuum_after"),
                         ("vacuum=7d", "unknown setting 'vacuum'")):  # fmt: skip
        with pytest.raises(ConfigError, match=named):
            open_database(f"delta+file://{tmp_path}/lake?{query}", base_dir=tmp_path)


def test_an_incremental_that_changes_nothing_still_commits_its_record(tmp_path):
    """delta-rs commits nothing for a MERGE that changes no row; the watermark must move on
    all the same (else freshness would call a quiet table stale, and each run ask again)."""
    db = _lake(tmp_path)
    load(db, "users", USERS, [write_part(tmp_path / "s.jsonl", [_rec(1, "a")])], record='{"n": 0}')
    gone = _rec(7, "", action="D")  # a delete of a key the table never had
    for n, records in enumerate(([], [gone]), start=1):
        part = write_part(tmp_path / f"i{n}.jsonl", records)
        assert load(db, "users", USERS, [part], kind="incremental", record=f'{{"n": {n}}}') == 0
        assert db.read_steps()[("canvas", "users")].record == f'{{"n": {n}}}'
    assert _names(db) == [(1, "a")]


def test_validate_refuses_history_and_soft_deletes_on_a_lake_naming_the_key(
    make_emulator, write_config, run_cli, tmp_path
):
    emu = make_emulator()
    for extra, key in (("history = true", "history"), ('deletes = "soft"', "deletes")):
        text = config_text(emu, tables='["users"]', extra_target=f'database = "lake"\n{extra}')
        text = text.replace('output = "out/', '# output = "out/')
        path = write_config(f'[databases.lake]\nurl = "delta+file:lake"\n\n{text}')
        done = run_cli("validate", str(path))
        assert done.code != 0
        assert f"targets[0].{key}" in done.stderr or f"targets.0.{key}" in done.stderr, done.stderr
        assert "needs a SQL database" in done.stderr


def test_a_commit_landing_while_a_snapshot_is_read_out_is_never_overwritten(tmp_path):
    """The snapshot passed its check; another writer commits while its rows are read out of
    the stage. Its write is based on the version it checked, so it conflicts and fails."""
    db = _lake(tmp_path)
    load(db, "users", USERS, [write_part(tmp_path / "s.jsonl", [_rec(1, "a")])], record='{"n": 1}')
    slow = db.begin_load(schema="canvas", table="users", dap_schema=USERS, kind="snapshot")
    slow.add_part(write_part(tmp_path / "x.jsonl", [_rec(9, "stale")]))
    other = db.begin_load(schema="canvas", table="users", dap_schema=USERS, kind="incremental")
    other.add_part(write_part(tmp_path / "i.jsonl", [_rec(2, "b")]))
    reading = slow.streamed  # type: ignore[attr-defined]

    def meanwhile():
        other.commit(address="a", record='{"n": 2}')
        return reading()

    slow.streamed = meanwhile  # type: ignore[attr-defined]
    with pytest.raises(DatabaseError, match="cannot apply the snapshot"):
        slow.commit(address="a", record='{"n": "stale"}')
    assert _names(db) == [(1, "a"), (2, "b")]
    assert db.read_steps()[("canvas", "users")].record == '{"n": 2}'


def test_an_upkeep_failure_is_logged_without_secrets(monkeypatch, caplog):
    from dapctl.databases.lake import upkeep

    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", "s3cret-key")

    class Failing:
        def transaction_version(self, app):
            return 1

        @property
        def optimize(self):
            raise OSError("403 for key s3cret-key")

    with caplog.at_level("WARNING", logger="dapctl.lake"):
        upkeep.after_commit(Failing(), upkeep.Upkeep(optimize_every=1), "canvas.users")
    assert "upkeep failed" in caplog.text and "s3cret-key" not in caplog.text

"""What an Iceberg lake does that a SQL database does not (issue 25). The shared contract
runs on it through the ``backend`` fixture (``iceberg+file``); these are its own: where the
step record lives, a reader's own catalog, two writers racing, a commit that changes no
row, type changes (widened in place where Iceberg allows)."""

from __future__ import annotations

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from dapctl.databases import NeedsReload, open_database
from dapctl.errors import ConfigError, DatabaseError
from tests.databases.helpers import dap_schema, load, write_part

USERS = dap_schema("canvas", "users")


def _lake(tmp_path):
    return open_database(f"iceberg+file://{tmp_path}/lake", base_dir=tmp_path)


def _rec(i, name, action="U"):
    value = {} if action == "D" else {"value": {"name": name}}
    return {"key": {"id": i}, **value, "meta": {"ts": "2026-01-01T00:00:00Z", "action": action}}


def _reader(tmp_path):
    """A reader's own catalog on the same SQLite file, as Spark or Trino would be set up."""
    return SqlCatalog(
        "dapctl",  # the catalog name dapctl writes under
        uri=f"sqlite:///{tmp_path}/lake/_dapctl/catalog.db",
        warehouse=f"file://{tmp_path}/lake",
    )


def _names(tmp_path):
    rows = _reader(tmp_path).load_table(("canvas", "users")).scan().to_arrow().to_pylist()
    return sorted((r["id"], r["name"]) for r in rows)


def test_the_record_is_in_the_commit_and_a_reader_sees_the_rows(tmp_path):
    db = _lake(tmp_path)
    load(db, "users", USERS, [write_part(tmp_path / "s.jsonl", [_rec(1, "a"), _rec(2, "b")])],
         address="s", record='{"n": 1}')  # fmt: skip
    changes = [_rec(1, "", "D"), _rec(3, "c")]
    load(db, "users", USERS, [write_part(tmp_path / "i.jsonl", changes)], kind="incremental",
         address="s", record='{"n": 2}')  # fmt: skip

    table = _reader(tmp_path).load_table(("canvas", "users"))
    assert table.properties["dapctl.record"] == '{"n": 2}'
    assert table.current_snapshot().summary.additional_properties["dapctl.record"] == '{"n": 2}'
    assert _names(tmp_path) == [(2, "b"), (3, "c")]
    assert str(table.schema().find_field("created_at").field_type) == "timestamptz"

    db.write_step(("canvas", "users"), address="s", record='{"job": "pending"}')
    assert db.read_steps()[("canvas", "users")].record == '{"job": "pending"}'
    load(db, "users", USERS, [write_part(tmp_path / "j.jsonl", [])], kind="incremental",
         record='{"n": 3}')  # fmt: skip
    assert db.read_steps()[("canvas", "users")].record == '{"n": 3}'  # no row, still moved on


def test_two_writers_from_one_version_cannot_both_commit(tmp_path):
    db = _lake(tmp_path)
    load(db, "users", USERS, [write_part(tmp_path / "s.jsonl", [_rec(1, "a")])], record='{"n": 1}')
    first = db.begin_load(schema="canvas", table="users", dap_schema=USERS, kind="incremental")
    second = db.begin_load(schema="canvas", table="users", dap_schema=USERS, kind="snapshot")
    first.add_part(write_part(tmp_path / "i.jsonl", [_rec(2, "first")]))
    second.add_part(write_part(tmp_path / "x.jsonl", [_rec(3, "stale")]))
    first.commit(address="a", record='{"n": 2}')

    with pytest.raises(DatabaseError, match="another writer committed to the table"):
        second.commit(address="a", record='{"n": "stale"}')

    assert _names(tmp_path) == [(1, "a"), (2, "first")]
    assert db.read_steps()[("canvas", "users")].record == '{"n": 2}'


def _remake(tmp_path, column: str, kind) -> None:
    """The table re-made with ``column`` of another type, as an older server's might be."""
    catalog = _reader(tmp_path)
    data = catalog.load_table(("canvas", "users")).scan().to_arrow()
    catalog.drop_table(("canvas", "users"))
    where = data.schema.get_field_index(column)
    changed = data.set_column(where, column, data[column].cast(kind))
    made = catalog.create_table(("canvas", "users"), schema=changed.schema,
                                location=f"{tmp_path}/lake/canvas/users-{column}")  # fmt: skip
    made.append(changed)  # (an overwrite of a new table warns that it deleted nothing)


def test_a_widening_is_made_in_place_and_another_change_waits_for_the_snapshot(tmp_path):
    db = _lake(tmp_path)
    load(db, "users", USERS, [write_part(tmp_path / "s.jsonl", [_rec(1, "a")])])
    _remake(tmp_path, "id", pa.int32())
    load(db, "users", USERS, [write_part(tmp_path / "i.jsonl", [_rec(2, "b")])], kind="incremental")
    table = _reader(tmp_path).load_table(("canvas", "users"))
    assert str(table.schema().find_field("id").field_type) == "long"  # int -> long, rows kept
    assert _names(tmp_path) == [(1, "a"), (2, "b")]

    _remake(tmp_path, "id", pa.string())
    with pytest.raises(NeedsReload, match="change type of id: string -> long"):
        db.begin_load(schema="canvas", table="users", dap_schema=USERS, kind="incremental")
    load(db, "users", USERS, [write_part(tmp_path / "t.jsonl", [_rec(1, "a2")])])
    table = _reader(tmp_path).load_table(("canvas", "users"))
    assert str(table.schema().find_field("id").field_type) == "long"
    assert _names(tmp_path) == [(1, "a2")]


def test_copy_on_write_deletes_match_every_key_column(tmp_path):
    """DAP's keys are one column today; a key of two still matches whole keys only."""
    from dapctl.databases.lake.iceberg_cow import delete_keys

    (tmp_path / "lake" / "_dapctl").mkdir(parents=True)
    catalog = _reader(tmp_path)
    catalog.create_namespace("t")
    rows = pa.table({"a": pa.array([1, 1, 2, 2], pa.int64()), "b": ["x", "y", "x", "y"]})
    table = catalog.create_table(("t", "pairs"), schema=rows.schema)
    table.append(rows)
    gone = pa.table({"a": pa.array([1, 2], pa.int64()), "b": ["y", "x"]})
    with table.transaction() as tx:
        assert delete_keys(tx, table.io, ["a", "b"], gone, {"why": "test"}) == 2
    left = catalog.load_table(("t", "pairs")).scan().to_arrow().to_pylist()
    assert sorted((r["a"], r["b"]) for r in left) == [(1, "x"), (2, "y")]


def _files(table, snapshots) -> set[str]:
    return {
        entry.data_file.file_path.removeprefix("file://")
        for snapshot in snapshots
        for manifest in snapshot.manifests(table.io)
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True)
    }


def test_upkeep_compacts_and_cleans_up_and_changes_no_row(tmp_path):
    url = f"iceberg+file://{tmp_path}/lake?optimize_every=3&vacuum_after=0h"
    db = open_database(url, base_dir=tmp_path)
    load(db, "users", USERS, [write_part(tmp_path / "s.jsonl", [_rec(1, "a")])], record='{"n": 0}')
    for n in range(1, 6):
        part = write_part(tmp_path / f"i{n}.jsonl", [_rec(n + 1, f"v{n}")])
        load(db, "users", USERS, [part], kind="incremental", record=f'{{"n": {n}}}')

    table = _reader(tmp_path).load_table(("canvas", "users"))
    assert [s.snapshot_id for s in table.metadata.snapshots] == [
        table.current_snapshot().snapshot_id
    ]
    live = _files(table, [table.current_snapshot()])
    assert len(live) <= 2  # compacted after loads 3 and 6, three small files each time
    on_disk = {str(p) for p in (tmp_path / "lake" / "canvas" / "users").rglob("*.parquet")}
    assert on_disk == live  # the expired snapshots' files are gone, none other
    assert _names(tmp_path) == [(1, "a"), *((n + 1, f"v{n}") for n in range(1, 6))]
    assert db.read_steps()[("canvas", "users")].record == '{"n": 5}'
    assert table.properties["dapctl.loads"] == "6"


def test_a_snapshot_current_within_the_retention_is_kept(tmp_path):
    """Iceberg's own "older than" would expire the first snapshot at 01:30 (it was made at
    00:00); a reader may have begun on it until 01:00, so a 1 h retention keeps it."""
    from freezegun import freeze_time

    url = f"iceberg+file://{tmp_path}/lake?vacuum_after=1h"
    db = open_database(url, base_dir=tmp_path)
    with freeze_time("2026-01-01 00:00:00"):
        load(db, "users", USERS, [write_part(tmp_path / "s.jsonl", [_rec(1, "a")])])
    with freeze_time("2026-01-01 01:00:00"):
        load(db, "users", USERS, [write_part(tmp_path / "t.jsonl", [_rec(1, "b")])])
    first = _reader(tmp_path).load_table(("canvas", "users")).metadata.snapshots[0]
    with freeze_time("2026-01-01 01:30:00"):
        load(db, "users", USERS, [write_part(tmp_path / "u.jsonl", [_rec(1, "c")])])
    table = _reader(tmp_path).load_table(("canvas", "users"))
    assert first.snapshot_id in [s.snapshot_id for s in table.metadata.snapshots]
    old = table.scan(snapshot_id=first.snapshot_id).to_arrow()["name"].to_pylist()
    assert old == ["a"]  # its files are all still there
    with freeze_time("2026-01-01 02:30:00"):
        load(db, "users", USERS, [write_part(tmp_path / "v.jsonl", [_rec(1, "d")])])
    table = _reader(tmp_path).load_table(("canvas", "users"))
    assert first.snapshot_id not in [s.snapshot_id for s in table.metadata.snapshots]
    assert _names(tmp_path) == [(1, "d")]


def test_bad_upkeep_settings_are_refused_by_name(tmp_path):
    for query, named in (("optimize_every=0", "optimize_every"), ("vacuum=7d", "unknown setting")):
        with pytest.raises(ConfigError, match=named):
            open_database(f"iceberg+file://{tmp_path}/lake?{query}", base_dir=tmp_path)


def test_a_table_made_before_one_try_gets_it_before_a_load_commits(tmp_path):
    """pyiceberg reads its retry setting from the table as a transaction begins; a table
    without dapctl's setting gets it in a commit of its own first, and a load whose table
    another writer moved meanwhile is refused, not re-applied on top."""
    db = _lake(tmp_path)
    load(db, "users", USERS, [write_part(tmp_path / "s.jsonl", [_rec(1, "a")])], record='{"n": 1}')
    with _reader(tmp_path).load_table(("canvas", "users")).transaction() as tx:
        tx.remove_properties("commit.retry.num-retries")  # as made before dapctl set it
    first = db.begin_load(schema="canvas", table="users", dap_schema=USERS, kind="incremental")
    second = db.begin_load(schema="canvas", table="users", dap_schema=USERS, kind="incremental")
    first.add_part(write_part(tmp_path / "i.jsonl", [_rec(2, "first")]))
    second.add_part(write_part(tmp_path / "x.jsonl", [_rec(3, "stale")]))
    opened = db.open_table  # type: ignore[attr-defined]

    def first_commits_meanwhile(table):
        found = opened(table)
        if not first_commits_meanwhile.done:
            first_commits_meanwhile.done = True
            first.commit(address="a", record='{"n": 2}')
        return found

    first_commits_meanwhile.done = False
    db.open_table = first_commits_meanwhile  # type: ignore[attr-defined]
    with pytest.raises(DatabaseError, match="another writer committed"):
        second.commit(address="a", record='{"n": "stale"}')
    db.open_table = opened  # type: ignore[attr-defined]
    assert _names(tmp_path) == [(1, "a"), (2, "first")]
    assert db.read_steps()[("canvas", "users")].record == '{"n": 2}'
    table = _reader(tmp_path).load_table(("canvas", "users"))
    assert table.properties["commit.retry.num-retries"] == "0"


def test_a_bucket_location_is_never_a_folder_lakes_own(tmp_path, monkeypatch):
    """Resolved from inside the lake's folder, ``s3://...`` would read as a path in it."""
    db = _lake(tmp_path)
    (tmp_path / "lake").mkdir()
    monkeypatch.chdir(tmp_path / "lake")
    assert not db._holds("s3://bucket/lake/canvas/users")  # type: ignore[attr-defined]
    assert db._holds(f"file://{tmp_path}/lake/canvas/users")  # type: ignore[attr-defined]

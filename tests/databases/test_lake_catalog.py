"""An Iceberg lake whose catalog is PostgreSQL (issue 25: ``?catalog=postgresql://...``),
the real server of ``pg_url``: an apply chain equal to the emulator's data, read back by a
reader's own catalog; the compare-and-swap two writers meet; a catalog shared by two lakes;
and the catalog URL's password, refused in a config and never shown."""

from __future__ import annotations

import pytest
from pyiceberg.catalog.sql import SqlCatalog

from dapctl.databases import open_database
from dapctl.errors import ConfigError, DatabaseError
from tests.apply_helpers import config_text
from tests.databases.helpers import (
    Backend,
    apply_lake_chain,
    assert_lake_matches,
    dap_schema,
    load,
    query_lake,
    write_part,
)

USERS = dap_schema("canvas", "users")
TWO = ("accounts", "users")


def _rec(i: int, name: str) -> dict:
    return {"key": {"id": i}, "value": {"name": name}, "meta": {"ts": "2026-01-01T00:00:00Z"}}


def _reader(pg_url: str, tmp_path) -> SqlCatalog:
    """A reader's own catalog on the same PostgreSQL database, as Trino or Spark would be."""
    uri = "postgresql+psycopg://" + pg_url.split("://", 1)[1]
    return SqlCatalog("dapctl", uri=uri, warehouse=f"file://{tmp_path}/lake")


def test_an_apply_chain_keeps_each_table_equal_to_the_emulators(
    pg_url, tmp_path, make_emulator, write_config, run_cli
):
    emu = make_emulator()
    url = f"iceberg+file:lake?catalog={pg_url}"
    path = apply_lake_chain(emu, write_config, run_cli, url, tables=TWO, rounds=3)

    lake = Backend("iceberg+file", url, path.parent, query_lake)
    assert lake.open().tables() == {("canvas", "accounts"), ("canvas", "users")}
    assert_lake_matches(lake, emu, TWO)
    lake.close()
    assert not (path.parent / "lake" / "_dapctl" / "catalog.db").exists()  # no SQLite made
    read = _reader(pg_url, path.parent).load_table(("canvas", "users"))
    assert '"kind":"incremental"' in read.properties["dapctl.record"]
    assert read.scan().to_arrow().num_rows == len(emu.expected_snapshot("canvas", "users"))


def test_two_writers_from_one_version_meet_the_catalogs_compare_and_swap(pg_url, tmp_path):
    """Both pass the load's own check (the table has not moved yet); the catalog's
    compare-and-swap lets one commit through, and pyiceberg does not re-apply the other's."""
    db = open_database(f"iceberg+file://{tmp_path}/lake?catalog={pg_url}", base_dir=tmp_path)
    load(db, "users", USERS, [write_part(tmp_path / "s.jsonl", [_rec(1, "a")])], record='{"n": 1}')
    first = db.begin_load(schema="canvas", table="users", dap_schema=USERS, kind="incremental")
    second = db.begin_load(schema="canvas", table="users", dap_schema=USERS, kind="incremental")
    first.add_part(write_part(tmp_path / "i.jsonl", []))  # no row: the record alone moves
    second.add_part(write_part(tmp_path / "x.jsonl", [_rec(1, "stale")]))
    opened = db.open_table  # type: ignore[attr-defined]

    def first_commits_meanwhile(table):
        found = opened(table)
        if found is not None and not first_commits_meanwhile.done:
            first_commits_meanwhile.done = True
            first.commit(address="a", record='{"n": 2}')
        return found

    first_commits_meanwhile.done = False
    db.open_table = first_commits_meanwhile  # type: ignore[attr-defined]
    with pytest.raises(DatabaseError, match="CommitFailedException"):
        second.commit(address="a", record='{"n": "stale"}')
    db.open_table = opened  # type: ignore[attr-defined]
    assert db.read_steps()[("canvas", "users")].record == '{"n": 2}'
    assert db.arrow(("canvas", "users"))["name"].to_pylist() == ["a"]  # type: ignore[attr-defined]
    db.close()


def test_a_catalog_shared_by_two_lakes_keeps_each_to_its_own_tables(pg_url, tmp_path):
    """Each lake lists only the tables in it; a name the other lake holds is refused,
    never written across."""
    one = open_database(f"iceberg+file://{tmp_path}/one?catalog={pg_url}", base_dir=tmp_path)
    two = open_database(f"iceberg+file://{tmp_path}/two?catalog={pg_url}", base_dir=tmp_path)
    load(one, "users", USERS, [write_part(tmp_path / "s.jsonl", [_rec(1, "a")])])
    load(two, "courses", dap_schema("canvas", "courses"), [write_part(tmp_path / "c.jsonl", [])])
    assert one.tables() == {("canvas", "users")} and two.tables() == {("canvas", "courses")}
    assert set(two.read_steps()) == {("canvas", "courses")}
    with pytest.raises(DatabaseError, match="give each lake a catalog of its own"):
        load(two, "users", USERS, [write_part(tmp_path / "t.jsonl", [_rec(2, "b")])])
    assert one.arrow(("canvas", "users"))["name"].to_pylist() == ["a"]  # type: ignore[attr-defined]
    one.close(), two.close()


def test_a_catalog_password_is_refused_in_a_config_and_never_shown(
    tmp_path, make_emulator, write_config, run_cli
):
    text = config_text(make_emulator(), tables='["users"]', extra_target='database = "lake"')
    text = text.replace('output = "out/', '# output = "out/')
    url = "iceberg+file:lake?catalog=postgresql://u:s3cret@h/db"
    path = write_config(f'[databases.lake]\nurl = "{url}"\n\n{text}')
    refused = run_cli("validate", str(path))
    assert refused.code == 1 and "databases.lake.url: the URL holds a password" in refused.stderr
    assert "s3cret" not in refused.stdout + refused.stderr

    closed = f"iceberg+file://{tmp_path}/lake?catalog=postgresql://u:s3cret@127.0.0.1:9/db"
    db = open_database(closed, base_dir=tmp_path)
    with pytest.raises(DatabaseError) as failed:
        db.tables()
    assert "cannot open the Iceberg catalog postgresql://u:***@127.0.0.1:9/db" in str(failed.value)
    assert "s3cret" not in str(failed.value)


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("catalog=mysql://h/db", "unsupported Iceberg catalog 'mysql://h/db'"),
        ("warehouse=x", "unknown setting 'warehouse'"),
    ],
)
def test_a_bad_catalog_setting_is_named(tmp_path, query, said):
    with pytest.raises(ConfigError, match=said):
        open_database(f"iceberg+file://{tmp_path}/lake?{query}", base_dir=tmp_path)


def test_the_catalog_url_is_read_percent_encoded(pg_url, tmp_path):
    encoded = pg_url.replace(":", "%3A").replace("/", "%2F")
    db = open_database(f"iceberg+file://{tmp_path}/lake?catalog={encoded}", base_dir=tmp_path)
    load(db, "users", USERS, [write_part(tmp_path / "s.jsonl", [_rec(1, "a")])])
    assert _reader(pg_url, tmp_path).load_table(("canvas", "users")).scan().to_arrow().num_rows == 1
    db.close()


def test_the_catalog_url_is_the_rest_of_the_lake_url(pg_url, tmp_path):
    """``catalog=`` comes last and keeps its own query; upkeep settings come before it."""
    catalog = f"{pg_url}?application_name=dapctl-lake&connect_timeout=5"
    url = f"iceberg+file://{tmp_path}/lake?optimize_every=2&catalog={catalog}"
    db = open_database(url, base_dir=tmp_path)
    assert db.upkeep.optimize_every == 2  # type: ignore[attr-defined]
    load(db, "users", USERS, [write_part(tmp_path / "s.jsonl", [_rec(1, "a")])])
    assert _reader(pg_url, tmp_path).load_table(("canvas", "users")).scan().to_arrow().num_rows == 1
    db.close()

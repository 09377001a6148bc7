"""Delta tables in an Azure container (issue 25: ``delta+az://``): Azurite's blob service, the
real emulator of ``tests/object_stores.py``, reached through ``AZURE_STORAGE_CONNECTION_STRING``
as a user reaches Azure, by delta-rs and by dapctl's own bucket work alike. Between them
stands ``tests/azurite_listing.py``, which gives Azurite the one listing parameter it lacks
and delta-rs needs (``startFrom``: without it every commit after a table's second fails on
Azurite, never on Azure)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dapctl.databases import open_database
from dapctl.errors import DatabaseError
from tests.databases.helpers import (
    Backend,
    apply_lake_chain,
    assert_lake_matches,
    dap_schema,
    load,
    query_lake,
    write_part,
)
from tests.object_stores import AZURITE_KEY, Emulator, emulated

ROOT = Path(__file__).resolve().parents[2]
USERS = dap_schema("canvas", "users")
TWO = ("accounts", "users")


@pytest.fixture(scope="module")
def listing(azurite_server: Emulator) -> Iterator[str]:
    """The blob endpoint, through ``tests/azurite_listing.py`` (in a process of its own)."""
    text = azurite_server.environ["AZURE_STORAGE_CONNECTION_STRING"]
    endpoint = text.split("BlobEndpoint=", 1)[1].split(";", 1)[0]
    port = endpoint.split("127.0.0.1:", 1)[1].split("/", 1)[0]
    proxy = subprocess.Popen(
        [sys.executable, "-m", "tests.azurite_listing", port],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proxy.stdout is not None and proxy.stdin is not None
    try:
        yield endpoint.replace(f":{port}/", f":{proxy.stdout.readline().strip()}/")
    finally:
        proxy.stdin.close()
        proxy.wait(timeout=30)


@pytest.fixture
def container(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, listing) -> str:
    made = emulated(request, "azure", monkeypatch)
    text = os.environ["AZURE_STORAGE_CONNECTION_STRING"]
    blob = text.split("BlobEndpoint=", 1)[1].split(";", 1)[0]
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", text.replace(blob, listing))
    return made.bucket


def _rec(i: int, name: str) -> dict:
    return {"key": {"id": i}, "value": {"name": name}, "meta": {"ts": "2026-01-01T00:00:00Z"}}


def test_an_apply_chain_keeps_each_table_equal_to_the_emulators(
    container, make_emulator, write_config, run_cli
):
    emu = make_emulator()
    azure = {"AZURE_STORAGE_CONNECTION_STRING": os.environ["AZURE_STORAGE_CONNECTION_STRING"]}
    path = apply_lake_chain(emu, write_config, run_cli, f"delta+az://{container}/lake",
                            tables=TWO, rounds=3, env=azure, secret=AZURITE_KEY)  # fmt: skip

    lake = Backend("delta+az", f"delta+az://{container}/lake", path.parent, query_lake)
    assert lake.open().tables() == {("canvas", "accounts"), ("canvas", "users")}
    assert_lake_matches(lake, emu, TWO)
    record = json.loads(lake.open().read_steps()[("canvas", "users")].record)
    assert record["kind"] == "incremental", record
    assert lake.open().version(("canvas", "users")) >= 3  # type: ignore[attr-defined]


def test_two_writers_from_one_version_cannot_both_commit_in_a_container(container, tmp_path):
    db = open_database(f"delta+az://{container}/lake", base_dir=tmp_path)
    load(db, "users", USERS, [write_part(tmp_path / "s.jsonl", [_rec(1, "a")])], record='{"n": 1}')
    load(db, "users", USERS, [write_part(tmp_path / "t.jsonl", [_rec(2, "b")])],
         kind="incremental", record='{"n": 2}')  # fmt: skip
    first = db.begin_load(schema="canvas", table="users", dap_schema=USERS, kind="incremental")
    second = db.begin_load(schema="canvas", table="users", dap_schema=USERS, kind="incremental")
    first.add_part(write_part(tmp_path / "i.jsonl", [_rec(3, "first")]))
    second.add_part(write_part(tmp_path / "x.jsonl", [_rec(4, "second")]))
    first.commit(address="a", record='{"n": 3}')
    with pytest.raises(DatabaseError, match="another writer committed"):
        second.commit(address="a", record='{"n": "stale"}')
    names = sorted(db.arrow(("canvas", "users"))["name"].to_pylist())  # type: ignore[attr-defined]
    assert names == ["a", "b", "first"]
    db.write_step(("canvas", "courses"), address="c", record='{"job": "pending"}')
    steps = db.read_steps()
    assert steps[("canvas", "users")].record == '{"n": 3}'
    assert steps[("canvas", "courses")].record == '{"job": "pending"}'


def test_the_connection_string_becomes_delta_rs_options_and_the_key_is_never_shown(
    container, tmp_path, monkeypatch
):
    db = open_database(f"delta+az://{container}/lake", base_dir=tmp_path)
    assert db.options["azure_storage_account_key"] == AZURITE_KEY  # type: ignore[attr-defined]
    assert db.options["azure_allow_http"] == "true"  # type: ignore[attr-defined]
    text = os.environ["AZURE_STORAGE_CONNECTION_STRING"]
    blob = text.split("BlobEndpoint=", 1)[1].split(";", 1)[0]
    closed = text.replace(blob, "http://127.0.0.1:9/devstoreaccount1")  # nothing listens
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", closed)
    broken = open_database(f"delta+az://{container}/lake", base_dir=tmp_path)
    with pytest.raises(DatabaseError) as failed:
        load(broken, "users", USERS, [write_part(tmp_path / "s.jsonl", [_rec(1, "a")])])
    assert AZURITE_KEY not in str(failed.value)


def test_an_iceberg_lake_in_a_container_with_its_catalog_in_postgresql(
    container, pg_url, make_emulator, write_config, run_cli
):
    """Iceberg in Azure (pyiceberg's fsspec IO: adlfs, given the connection string), the
    catalog in PostgreSQL: an apply chain equal to the emulator's data."""
    emu = make_emulator()
    url = f"iceberg+az://{container}/lake?catalog={pg_url}"
    azure = {"AZURE_STORAGE_CONNECTION_STRING": os.environ["AZURE_STORAGE_CONNECTION_STRING"]}
    path = apply_lake_chain(emu, write_config, run_cli, url,
                            tables=("users",), rounds=2, env=azure, secret=AZURITE_KEY)  # fmt: skip

    lake = Backend("iceberg+az", url, path.parent, query_lake)
    assert_lake_matches(lake, emu, ("users",))
    table = lake.open().open_table(("canvas", "users"))  # type: ignore[attr-defined]
    assert table.location() == f"abfs://{container}/lake/canvas/users"
    lake.close()

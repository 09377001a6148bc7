"""Delta tables in an S3 bucket (issue 25): moto's real server, in a process of its own
(``tests/s3_process.py``), reached through the standard variables as a user reaches MinIO.
delta-rs writes each log entry with ``If-None-Match: *`` (S3's conditional write, which moto
enforces), so two writers racing for one version cannot both win with no lock service."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dapctl.databases import open_database
from dapctl.errors import ConfigError, DatabaseError
from tests.databases.helpers import (
    Backend,
    apply_lake_chain,
    assert_lake_matches,
    dap_schema,
    load,
    query_lake,
    write_part,
)
from tests.needs import unavailable
from tests.s3_fixtures import ACCESS_KEY, SECRET_KEY

ROOT = Path(__file__).resolve().parents[2]
USERS = dap_schema("canvas", "users")
TWO = ("accounts", "users")


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    try:
        import moto  # noqa: F401
    except ImportError:
        unavailable("moto[server]", "not installed; pip install -e '.[test]'")
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.s3_process"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None and server.stdin is not None
    port = server.stdout.readline().strip()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stdin.close()
        server.wait(timeout=30)


@pytest.fixture
def bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    variables = {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    import boto3

    name = f"dapctl-lake-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


def _rec(i: int, name: str) -> dict:
    return {"key": {"id": i}, "value": {"name": name}, "meta": {"ts": "2026-01-01T00:00:00Z"}}


def test_an_apply_chain_keeps_each_table_equal_to_the_emulators(
    bucket, make_emulator, write_config, run_cli
):
    emu = make_emulator()
    aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    path = apply_lake_chain(emu, write_config, run_cli, f"delta+s3://{bucket}/lake",
                            tables=TWO, rounds=3, env=aws, secret=SECRET_KEY)  # fmt: skip

    lake = Backend("delta+s3", f"delta+s3://{bucket}/lake", path.parent, query_lake)
    assert lake.open().tables() == {("canvas", "accounts"), ("canvas", "users")}
    assert_lake_matches(lake, emu, TWO)
    record = json.loads(lake.open().read_steps()[("canvas", "users")].record)
    assert record["kind"] == "incremental", record


def test_two_writers_from_one_version_cannot_both_commit_in_a_bucket(bucket, tmp_path):
    db = open_database(f"delta+s3://{bucket}/lake", base_dir=tmp_path)
    load(db, "users", USERS, [write_part(tmp_path / "s.jsonl", [_rec(1, "a")])], record='{"n": 1}')
    first = db.begin_load(schema="canvas", table="users", dap_schema=USERS, kind="incremental")
    second = db.begin_load(schema="canvas", table="users", dap_schema=USERS, kind="incremental")
    first.add_part(write_part(tmp_path / "i.jsonl", [_rec(2, "first")]))
    second.add_part(write_part(tmp_path / "x.jsonl", [_rec(3, "second")]))
    first.commit(address="a", record='{"n": 2}')
    with pytest.raises(DatabaseError, match="another writer committed"):
        second.commit(address="a", record='{"n": "stale"}')
    db.write_step(("canvas", "courses"), address="c", record='{"job": "pending"}')
    steps = db.read_steps()
    assert steps[("canvas", "users")].record == '{"n": 2}'
    assert steps[("canvas", "courses")].record == '{"job": "pending"}'


def test_an_iceberg_lake_in_a_bucket_with_its_catalog_in_postgresql(
    bucket, pg_url, make_emulator, write_config, run_cli
):
    """Iceberg in S3 (pyiceberg's fsspec IO: s3fs, as dapctl's own S3 work), the catalog in
    PostgreSQL: an apply chain equal to the emulator's data, read back by pyiceberg."""
    emu = make_emulator()
    url = f"iceberg+s3://{bucket}/lake?catalog={pg_url}"
    aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    path = apply_lake_chain(emu, write_config, run_cli, url,
                            tables=("users",), rounds=2, env=aws, secret=SECRET_KEY)  # fmt: skip

    lake = Backend("iceberg+s3", url, path.parent, query_lake)
    assert_lake_matches(lake, emu, ("users",))
    table = lake.open().open_table(("canvas", "users"))  # type: ignore[attr-defined]
    assert table.location() == f"s3://{bucket}/lake/canvas/users"
    assert '"kind":"incremental"' in table.properties["dapctl.record"]
    lake.close()


def test_an_iceberg_lake_in_a_bucket_names_its_catalog(bucket, tmp_path):
    with pytest.raises(ConfigError, match=r"its catalog needs a database: add \?catalog="):
        open_database(f"iceberg+s3://{bucket}/lake", base_dir=tmp_path)

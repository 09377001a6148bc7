"""`open_database`: URL schemes, missing drivers, unreachable servers, secrets kept out."""

from __future__ import annotations

import socket
import uuid

import psycopg
import pytest

from dapctl.databases import DatabaseError, open_database, redact
from dapctl.databases.columns import ColumnType, table_columns
from dapctl.databases.engine import holds_password, passwords, scrub
from dapctl.errors import ConfigError
from tests.databases.helpers import dap_schema


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("url", ["mssql://x@127.0.0.1/db", "sqlite:///x.db", "nonsense"])
def test_unsupported_schemes_name_the_supported_ones(url, tmp_path):
    with pytest.raises(ConfigError, match=r"postgresql://, duckdb://"):
        open_database(url, base_dir=tmp_path)


@pytest.mark.parametrize(
    ("url", "extra"),
    [("postgresql://u@127.0.0.1/db", "postgresql"), ("duckdb:///x.duckdb", "duckdb")],
)
def test_a_missing_driver_names_the_extra_to_install(url, extra, tmp_path):
    def importer(name):
        raise ImportError(f"No module named {name!r}")

    with pytest.raises(ConfigError) as caught:
        open_database(url, base_dir=tmp_path, importer=importer)
    assert f"pip install 'dapctl[{extra}]'" in str(caught.value)


def test_an_unreachable_server_is_a_clear_error_without_the_password(tmp_path):
    url = f"postgresql://alice:s3cr%40t-pw@127.0.0.1:{_closed_port()}/db"
    with pytest.raises(DatabaseError) as caught:
        open_database(url, base_dir=tmp_path)
    text = str(caught.value)
    assert "cannot connect to postgresql://alice:***@127.0.0.1" in text
    assert "s3cr" not in text and "s3cr" not in repr(caught.value)


def test_a_wrong_password_never_shows(pg_admin_url, tmp_path):
    role = f"dapctl_role_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'right-password'")
    try:
        url = pg_admin_url.replace("postgres@", f"{role}:wrong-password@", 1)
        try:
            db = open_database(url, base_dir=tmp_path)
        except DatabaseError as exc:  # password authentication is on
            assert "wrong-password" not in str(exc)
        else:  # trust authentication accepts any password: it must still never show
            assert "wrong-password" not in repr(db)
            db.close()
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f"DROP ROLE {role}")


def test_statement_errors_are_scrubbed_too(pg_url, tmp_path):
    url = pg_url.replace("postgres@", "postgres:hunter2@", 1)
    db = open_database(url, base_dir=tmp_path)
    try:
        assert "hunter2" not in repr(db)
        loading = db.begin_load(
            schema="canvas", table="t", dap_schema=dap_schema("canvas", "users"), kind="snapshot"
        )
        part = tmp_path / "bad.jsonl"
        part.write_text("{not json}\n")
        with pytest.raises(DatabaseError) as caught:
            loading.add_part(part)
        assert "hunter2" not in str(caught.value) and "***" in str(caught.value)
        loading.abort()
    finally:
        db.close()


def test_redact():
    assert redact("postgresql://u:p%40ss@h:5/d?x=1") == "postgresql://u:***@h:5/d?x=1"
    assert redact("postgresql://u@h/d") == "postgresql://u@h/d"
    assert redact("duckdb:///x.duckdb") == "duckdb:///x.duckdb"


@pytest.mark.parametrize(
    ("url", "shown", "secrets"),
    [
        ("postgresql://u:p%40ss@h/d", "postgresql://u:***@h/d", {"p%40ss", "p@ss"}),
        ("postgresql://u:p?s#s@h/d", "postgresql://u:***@h/d", {"p?s#s"}),  # as libpq reads it
        ("postgresql://u@h/d?password=p%40ss", "postgresql://u@h/d?password=***", {"p@ss"}),
        ("postgresql://h/d?a=1&PassWord=x&b=2", "postgresql://h/d?a=1&PassWord=***&b=2", {"x"}),
        ("postgresql://h/d?pass%77ord=x", "postgresql://h/d?pass%77ord=***", {"x"}),
        ("postgresql://h/d?sslpassword=x", "postgresql://h/d?sslpassword=***", {"x"}),
        ("postgresql://h?password=a@b", "postgresql://h?password=***", {"a@b"}),
        ("host=h password=x dbname=d", "host=h password=*** dbname=d", {"x"}),
        ("host=h password = 'a \\'b' port=5", "host=h password = *** port=5", {"a 'b"}),
        ("host=h password='open", "host=h password=***", {"open"}),
        ("postgresql://u:@h/d?password=", "postgresql://u:***@h/d?password=***", set()),
        # a lake's catalog URL, inside the lake's: as written or percent-encoded
        (
            "iceberg+file:///l?catalog=postgresql://u:p@h/d",
            "iceberg+file:///l?catalog=postgresql://u:***@h/d",
            {"p"},
        ),
        (
            "iceberg+file:l?catalog=postgresql%3A%2F%2Fu%3Ap%2540x%40h%2Fd",
            "iceberg+file:l?catalog=postgresql://u:***@h/d",
            {"p@x"},
        ),
        (
            "iceberg+file:l?catalog=postgresql://h/d?password=x",
            "iceberg+file:l?catalog=postgresql://h/d?password=***",
            {"x"},
        ),
    ],
)
def test_redact_masks_a_password_in_every_form(url, shown, secrets):
    assert redact(url) == shown
    assert holds_password(url)
    assert secrets <= set(passwords(url))
    scrubbed = scrub(f"libpq quotes {url} or {sorted(secrets)}", passwords(url))
    assert not any(secret in scrubbed for secret in secrets)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u@h/d?passfile=/p&sslmode=require",
        "host=h passfile=/p",
        "x.json",
        "iceberg+file:lake?catalog=postgresql://u@h/d",
    ],
)
def test_no_password_is_no_password(url):
    assert redact(url) == url and not holds_password(url) and passwords(url) == ()


def test_a_keyword_string_is_not_a_database_url_and_never_shown(tmp_path):
    with pytest.raises(ConfigError) as caught:
        open_database("host=h dbname=d password=hunter2", base_dir=tmp_path)
    assert "unsupported database URL" in str(caught.value) and "hunter2" not in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        open_database("duckdb://u:hunter2@h/x.duckdb", base_dir=tmp_path)
    assert "hunter2" not in str(caught.value)


def test_duckdb_urls_are_relative_to_base_dir(tmp_path):
    db = open_database("duckdb:///sub/x.duckdb", base_dir=tmp_path)
    db.close()
    assert (tmp_path / "sub" / "x.duckdb").exists()
    with pytest.raises(ConfigError, match=r"duckdb:///file\.duckdb"):
        open_database("duckdb://", base_dir=tmp_path)


def test_column_mapping_follows_dap_initdb_naming():
    columns = table_columns(dap_schema("canvas", "courses"))
    assert [c.name for c in columns] == [
        "id", "name", "course_code", "account_id", "is_public", "settings",
        "workflow_state", "start_at", "meta_ts",
    ]  # fmt: skip
    by_name = {c.name: c for c in columns}
    assert (by_name["id"].type, by_name["id"].key, by_name["id"].nullable) == (
        ColumnType.INT64, True, False
    )  # fmt: skip
    assert by_name["settings"].type is ColumnType.JSON and by_name["settings"].is_json
    assert by_name["workflow_state"].type is ColumnType.TEXT
    assert by_name["start_at"].type is ColumnType.TIMESTAMP
    assert by_name["name"].nullable is False and by_name["course_code"].nullable is True

"""MySQL / MariaDB for tests (pytest plugin): a fresh database per test on the local server.

``mysql_url`` is a ``mysql://root@127.0.0.1:3306/<fresh>`` database made for one test and
dropped after it; when no server answers there the test is skipped with the reason, or fails
under ``CI=true`` (``tests/needs.py``). `query_mysql` is how a contract test reads such a
database: it runs the PostgreSQL-flavoured SQL the tests write (``canvas.courses``, double-
quoted names, dapctl's ``dapctl`` schema) as MySQL spells it (``canvas__courses``,
``ANSI_QUOTES``, ``dapctl__`` tables), and returns times as aware UTC datetimes.
Registered in ``tests/conftest.py``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.needs import unavailable

HOST, PORT, USER = "127.0.0.1", 3306, "root"
_QUALIFIED = re.compile(r"\b(?!information_schema\b)([A-Za-z_]\w*)\.([A-Za-z_]\w*)\b")
_DAPCTL_TABLE = re.compile(r"table_schema = 'dapctl' AND table_name = '(\w+)'")
_STAGING = (
    "SELECT SUBSTRING(table_name, 9) FROM information_schema.tables "
    "WHERE table_schema = DATABASE() AND table_name LIKE 'dapctl\\_\\_%'"
)


def _connect(database: str | None = None) -> Any:
    import pymysql

    return pymysql.connect(
        host=HOST, port=PORT, user=USER, database=database, autocommit=True, connect_timeout=3,
        charset="utf8mb4", init_command="SET time_zone = '+00:00'",
    )  # fmt: skip


@pytest.fixture(scope="session")
def mysql_server() -> str:
    """The local server's admin URL prefix, once it answers."""
    try:
        import pymysql
    except ImportError:
        unavailable("MySQL", "the pymysql package is not installed (pip install -e '.[test]')")
    try:
        _connect().close()
    except pymysql.Error as exc:
        unavailable("MySQL", f"no server at {HOST}:{PORT} ({exc})")
    return f"mysql://{USER}@{HOST}:{PORT}"


@pytest.fixture
def mysql_url(mysql_server: str) -> Iterator[str]:
    """A URL to a database made for this test, dropped afterwards."""
    name = f"dapctl_test_{uuid.uuid4().hex[:12]}"
    create_database(name)
    yield f"{mysql_server}/{name}"
    drop_database(name)


def create_database(name: str) -> None:
    """Create database ``name`` on the local server (a test drops it with `drop_database`)."""
    conn = _connect()
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    conn.close()


def drop_database(name: str) -> None:
    conn = _connect()
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()


def translate(text: str) -> str:
    """A test's SQL as MySQL spells it (see the module docstring)."""
    text = _DAPCTL_TABLE.sub(r"table_schema = DATABASE() AND table_name = 'dapctl__\1'", text)
    if "table_schema = 'dapctl'" in text:
        return _STAGING
    return _QUALIFIED.sub(r"\1__\2", text)


def query_mysql(backend: Any, text: str) -> list[tuple]:
    """A statement on a connection of the test's own (what a person's mysql would see)."""
    conn = _connect(backend.url.rsplit("/", 1)[1])
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')")
            cur.execute(translate(text))
            rows = cur.fetchall() if cur.description else ()
    finally:
        conn.close()
    return [tuple(_aware(v) for v in row) for row in rows]


def _aware(value: Any) -> Any:
    return value.replace(tzinfo=UTC) if isinstance(value, datetime) else value

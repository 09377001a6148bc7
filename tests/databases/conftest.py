"""Database fixtures: ``backend``, parametrized over every engine in the registry
(``dapctl.databases.registry.ENGINES``): PostgreSQL (a fresh database per test, ``pg_url``
from ``tests/postgres_fixtures.py``), DuckDB (a file per test) and MySQL / MariaDB (a
fresh database per test, ``mysql_url`` from ``tests/mysql_fixtures.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dapctl.databases.registry import ENGINES
from tests.databases.helpers import Backend, Query, query_duckdb, query_lake, query_postgresql
from tests.mysql_fixtures import query_mysql

# A fresh database of each engine in the registry, for one test, and how a test reads it.
# `backend` runs every registered engine; adding one to the registry means adding its line.
TEST_URLS: dict[str, tuple[Callable[[pytest.FixtureRequest], str], Query]] = {
    "postgresql": (lambda request: request.getfixturevalue("pg_url"), query_postgresql),
    "duckdb": (lambda request: "duckdb:///data/test.duckdb", query_duckdb),
    "mysql": (lambda request: request.getfixturevalue("mysql_url"), query_mysql),
    "delta+file": (
        lambda request: f"delta+file://{request.getfixturevalue('tmp_path')}/lake",
        query_lake,
    ),
    "iceberg+file": (
        lambda request: f"iceberg+file://{request.getfixturevalue('tmp_path')}/lake",
        query_lake,
    ),
}


@pytest.fixture(params=[engine.scheme for engine in ENGINES])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A `Backend` (URL, base dir, query helper) of each registered engine."""
    if request.param not in TEST_URLS:
        pytest.fail(f"the {request.param} engine is registered: add its test URL to TEST_URLS")
    url, query = TEST_URLS[request.param]
    made = Backend(request.param, url(request), tmp_path, query)
    yield made
    made.close()


_NOT_SQL = {engine.scheme for engine in ENGINES if not engine.capabilities.sql}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test marked ``sql_only`` (views, indexes, SQL DDL, history tables, soft deletes)
    does not run on an engine with no SQL (a lake): deselected, so it is counted, never
    skipped; the lake's own tests (``tests/databases/test_lake.py``) cover what it does
    instead."""
    dropped = [
        item
        for item in items
        if item.get_closest_marker("sql_only") is not None
        and getattr(item, "callspec", None) is not None
        and item.callspec.params.get("backend") in _NOT_SQL
    ]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]

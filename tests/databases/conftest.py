"""Database fixtures: ``backend``, parametrized over PostgreSQL (a fresh database per test,
``pg_url`` from ``tests/postgres_fixtures.py``) and DuckDB (a file per test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.databases.helpers import Backend


@pytest.fixture(params=["postgresql", "duckdb"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A `Backend` (URL, base dir, query helper) of each kind."""
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
    else:
        url = "duckdb:///data/test.duckdb"
    made = Backend(request.param, url, tmp_path)
    yield made
    made.close()

"""Database fixtures: ``backend``, parametrized over every engine in the registry
(``dapctl.databases.registry.ENGINES``): PostgreSQL (a fresh database per test, ``pg_url``
from ``tests/postgres_fixtures.py``) and DuckDB (a file per test)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dapctl.databases.registry import ENGINES
from tests.databases.helpers import Backend

# A fresh database of each engine in the registry, for one test. `backend` runs every
# registered engine; adding one to the registry means adding its line here.
TEST_URLS: dict[str, Callable[[pytest.FixtureRequest], str]] = {
    "postgresql": lambda request: request.getfixturevalue("pg_url"),
    "duckdb": lambda request: "duckdb:///data/test.duckdb",
}


@pytest.fixture(params=[engine.scheme for engine in ENGINES])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A `Backend` (URL, base dir, query helper) of each registered engine."""
    if request.param not in TEST_URLS:
        pytest.fail(f"the {request.param} engine is registered: add its test URL to TEST_URLS")
    made = Backend(request.param, TEST_URLS[request.param](request), tmp_path)
    yield made
    made.close()

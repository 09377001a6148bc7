"""Database fixtures: a PostgreSQL server (the local one, or a throwaway cluster), a fresh
database per test, a DuckDB file per test, and ``backend``, parametrized over every engine
in the registry (``dapctl.databases.registry.ENGINES``).

PostgreSQL: 127.0.0.1:5432 (user postgres, trust) if it answers; otherwise a cluster made with
the machine's ``initdb`` as user ``postgres`` on a free port. If neither works the tests are
skipped, or fail when ``CI=true``, with the reason.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from dapctl.databases.registry import ENGINES
from tests.databases.helpers import Backend

LOCAL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _answers(url: str) -> str | None:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc).strip()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(*argv: str) -> None:
    subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=True, capture_output=True)


@contextlib.contextmanager
def _throwaway_cluster() -> Iterator[str]:
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not binaries:
        raise RuntimeError("no /usr/lib/postgresql/*/bin/initdb on this machine")
    bindir = Path(binaries[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="dapctl-pg-"))
    shutil.chown(root, "postgres")
    data, port = root / "data", _free_port()
    try:
        _run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        _run(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "start")
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            _run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A superuser URL to the server's ``postgres`` database."""
    reason = _answers(LOCAL)
    if reason is None:
        yield LOCAL
        return
    try:
        with _throwaway_cluster() as url:
            yield url
            return
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        reason = f"no PostgreSQL at 127.0.0.1:5432 ({reason}) and no throwaway cluster ({exc})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """A URL to a database made for this test, dropped afterwards."""
    name = f"dapctl_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield pg_admin_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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

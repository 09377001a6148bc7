"""PostgreSQL for tests (pytest plugin): a server for the session and a fresh database per test.

``pg_admin_url`` (session) is a superuser URL to a server's ``postgres`` database: the local
one at 127.0.0.1:5432 (user postgres, trust) if it answers; otherwise a throwaway cluster made
with the machine's ``initdb`` as user ``postgres`` on a free port, stopped and removed at the
session's end. If neither works the tests are skipped with the reason, or fail under
``CI=true`` (``tests/needs.py``). ``pg_url`` is a database made for one test and dropped
after it. Registered in ``tests/conftest.py``, so any test asks for them by name.
"""

from __future__ import annotations

import contextlib
import glob
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.needs import unavailable

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
        why = f"no server at 127.0.0.1:5432 ({reason}) and no throwaway cluster ({exc})"
    unavailable("PostgreSQL", why)


@pytest.fixture
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """A URL to a database made for this test, dropped afterwards."""
    name = f"dapctl_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield pg_admin_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

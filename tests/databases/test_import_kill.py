"""A ``dapctl import`` killed at any instant (issue 22, item 2), PostgreSQL and MySQL.

``dap initdb`` fills a database once; each round copies it, starts ``dapctl import`` in a
process of its own and SIGKILLs it after a delay spread over how long a whole import takes
(about half of which is the interpreter starting: most delays land in the conversion). After
each kill every table is either as dap left it with no step row, or adopted with its step
row (MySQL may also leave it converted with no step row: its DDL commits on its own), with
every row still there; then a second import finishes and the apply after it runs
incrementals only, ending equal to the emulator.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pymysql
import pytest

from dapctl.apply import ApplyOptions
from dapctl.loading import load_config
from dapctl.wiring import run_apply
from tests.apply_helpers import FAST, environ
from tests.databases.helpers import Backend, query_postgresql
from tests.databases.test_import_mysql import equal_to_emulator, import_config, initdb, statuses
from tests.databases.test_official_client_db import TABLES
from tests.databases.test_official_client_db import official as official  # the fixture
from tests.mysql_fixtures import create_database, drop_database, query_mysql

ROWS = {f"canvas.{t}": 20_000 for t in TABLES}
FRACTIONS = (0.45, 0.55, 0.6, 0.65, 0.7, 0.75, 0.85)  # the conversion: about 0.5 to 0.8
_SHAPE = {
    "postgresql": "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
    "WHERE table_schema = 'canvas' AND table_name = '{}' ORDER BY ordinal_position",
    "mysql": "SELECT column_name, column_type, is_nullable FROM information_schema.columns "
    "WHERE table_schema = DATABASE() AND table_name = 'canvas__{}' ORDER BY ordinal_position",
}
_KEPT = {
    "postgresql": "SELECT 1 FROM information_schema.tables WHERE table_schema = 'dapctl' "
    "AND table_name = 'table_steps'",
    "mysql": "SELECT 1 FROM information_schema.tables WHERE table_schema = DATABASE() "
    "AND table_name = 'dapctl__table_steps'",
}
_STEPS = {
    "postgresql": "SELECT table_name FROM dapctl.table_steps",
    "mysql": "SELECT table_name FROM dapctl__table_steps",
}


class Copies:
    """Databases of one engine made from a first one: ``copy()`` clones ``base``."""

    def __init__(self, engine: str, base: str, tmp_path: Path, made: list[str]) -> None:
        self.engine, self.base, self.tmp_path, self.made = engine, base, tmp_path, made

    def backend(self, url: str) -> Backend:
        query = query_postgresql if self.engine == "postgresql" else query_mysql
        return Backend(self.engine, url, self.tmp_path, query)

    def copy(self) -> Backend:
        name = f"dapctl_test_{uuid.uuid4().hex[:12]}"
        self.made.append(name)
        prefix, base = self.base.rsplit("/", 1)
        if self.engine == "postgresql":
            with psycopg.connect(f"{prefix}/postgres", autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{base}"'.encode())
        else:
            create_database(name)
            conn = pymysql.connect(host="127.0.0.1", user="root", database=name, autocommit=True)
            with conn, conn.cursor() as cur:
                for (table,) in self.backend(self.base).query("SHOW TABLES"):
                    cur.execute(f"CREATE TABLE `{table}` LIKE `{base}`.`{table}`")
                    cur.execute(f"INSERT INTO `{table}` SELECT * FROM `{base}`.`{table}`")  # noqa: S608
        return self.backend(f"{prefix}/{name}")


@pytest.fixture(params=["postgresql", "mysql"])
def copies(request, tmp_path: Path) -> Iterator[Copies]:
    made: list[str] = []
    if request.param == "postgresql":
        base = request.getfixturevalue("pg_url")
        drop: Callable[[str], None] = lambda name: _drop_pg(base, name)  # noqa: E731
    else:
        base, drop = request.getfixturevalue("mysql_url"), drop_database
    yield Copies(request.param, base, tmp_path, made)
    for name in made:
        drop(name)


def _drop_pg(base: str, name: str) -> None:
    with psycopg.connect(f"{base.rsplit('/', 1)[0]}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def _state(db: Backend) -> tuple[dict[str, list[tuple]], set[str], dict[str, int]]:
    shapes = {t: db.query(_SHAPE[db.kind].format(t)) for t in TABLES}
    kept = db.query(_KEPT[db.kind])  # none yet: killed before dapctl made its table
    found = db.query(_STEPS[db.kind]) if kept else []
    steps = {t for (t,) in found}
    counts = {t: db.query(f"SELECT count(*) FROM canvas.{t}")[0][0] for t in TABLES}  # noqa: S608
    return shapes, steps, counts


def _start_import(path: Path, emu) -> subprocess.Popen[bytes]:
    env = {**os.environ, **environ(emu), "PYTHONPATH": str(Path(__file__).parents[2])}
    command = [sys.executable, "-m", "dapctl", "import", str(path)]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_a_killed_import_leaves_every_table_daps_or_adopted_and_a_second_import_finishes(
    official, copies, make_emulator, tmp_path, write_config, run_cli
):
    emu = make_emulator(rows=ROWS, part_size=5000)
    initdb(emu, copies.base, tmp_path)
    before = _state(copies.backend(copies.base))
    reference = copies.copy()
    path = write_config(import_config(emu, reference.url), name="reference.toml")
    started = time.monotonic()
    assert _start_import(path, emu).wait(timeout=120) == 0
    whole = time.monotonic() - started
    adopted = _state(reference)
    assert adopted[1] == set(TABLES) and adopted[0] != before[0]

    for n, fraction in enumerate(FRACTIONS):
        db = copies.copy()
        path = write_config(import_config(emu, db.url), name=f"round{n}.toml")
        child = _start_import(path, emu)
        time.sleep(whole * fraction)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)

        shapes, steps, counts = _state(db)
        assert counts == before[2], f"round {n}: rows lost"
        for table in TABLES:
            if table in steps:
                assert shapes[table] == adopted[0][table], f"round {n}: {table}"
            elif db.kind == "postgresql":  # one transaction: all or nothing
                assert shapes[table] == before[0][table], f"round {n}: {table}"
            else:  # DDL commits alone: dap's shape, or converted awaiting its step row
                assert shapes[table] in (before[0][table], adopted[0][table]), f"round {n}"

        again = run_cli("import", str(path), "--json", environ=environ(emu))

        assert again.code == 0, again.stderr
        assert set(statuses(again).values()) <= {"adopted", "already adopted"}
        assert _state(db) == adopted, f"round {n}"

    emu.advance(600)
    for table in TABLES:
        emu.change("canvas", table, inserts=4, updates=5, deletes=3)
    results = run_apply(
        load_config(path), environ=environ(emu), options=ApplyOptions(), connection=FAST
    )
    assert {(r.table, r.kind, r.status) for r in results} == {
        (t, "incremental", "ok") for t in TABLES
    }
    equal_to_emulator(db, emu)

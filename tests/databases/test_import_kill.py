"""A ``dapctl import`` killed at any instant (issue 22, item 2), PostgreSQL and MySQL.

``dap initdb`` fills a database once; each round copies it, starts ``dapctl import`` in a
process of its own and SIGKILLs it. Two ways, both engines:

- between statements, every one that matters: `import_kill_child` counts the statements the
  import sends and kills itself just before the Nth, for N just after each statement that
  changes something or takes a lock (so every state a kill can leave is seen, each run);
- mid-statement: after a delay spread over how long a whole import takes, on tables big
  enough that most delays land in a conversion (the server finishes or undoes that
  statement on its own: this checks the next import copes with it).

After each kill every table is either as dap left it with no step row, or adopted with its
step row (MySQL may also leave it converted with no step row: its DDL commits on its own),
with every row still there; then a second import finishes, leaving exactly what an import
never killed leaves (shapes, step rows and their watermarks), and the apply after it runs
incrementals only, ending equal to the emulator. A table MySQL left converted with no step
row, applied before any second import, is snapshotted (no watermark is trusted that no
record states) and ends equal to the emulator too.
"""

from __future__ import annotations

import json
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

ROOT = Path(__file__).resolve().parents[2]
ROWS = {f"canvas.{t}": 20_000 for t in TABLES}
FRACTIONS = (0.5, 0.6, 0.7, 0.8)  # the conversion: about 0.5 to 0.8 of a whole import
_READS = ("SELECT", "WITH", "SET", "SHOW")  # statements that change nothing...
_LOCKS = ("LOCK(", "LOCK_", "ADVISORY")  # ...unless they take or release a lock
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
    "postgresql": "SELECT table_name, record FROM dapctl.table_steps",
    "mysql": "SELECT table_name, record FROM dapctl__table_steps",
}


class Copies:
    """Databases of one engine made from a first one: ``copy()`` clones ``base``."""

    def __init__(self, engine: str, base: str, tmp_path: Path, made: list[str]) -> None:
        self.engine, self.base, self.tmp_path, self.made = engine, base, tmp_path, made

    def backend(self, url: str) -> Backend:
        query = query_postgresql if self.engine == "postgresql" else query_mysql
        return Backend(self.engine, url, self.tmp_path, query)

    def copy(self, source: str | None = None) -> Backend:
        """A new database holding what ``source`` (default: ``base``) holds."""
        name = f"dapctl_test_{uuid.uuid4().hex[:12]}"
        self.made.append(name)
        prefix, base = (source or self.base).rsplit("/", 1)
        if self.engine == "postgresql":
            with psycopg.connect(f"{prefix}/postgres", autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{base}"'.encode())
        else:
            create_database(name)
            conn = pymysql.connect(host="127.0.0.1", user="root", database=name, autocommit=True)
            with conn, conn.cursor() as cur:
                for (table,) in self.backend(source or self.base).query("SHOW TABLES"):
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


Shapes = dict[str, list[tuple]]


def _state(db: Backend) -> tuple[Shapes, dict[str, dict], dict[str, int]]:
    """Each table's columns, step record (but its completion time) and row count."""
    shapes = {t: db.query(_SHAPE[db.kind].format(t)) for t in TABLES}
    kept = db.query(_KEPT[db.kind])  # none yet: killed before dapctl made its table
    found = db.query(_STEPS[db.kind]) if kept else []
    steps = {t: _record(r) for t, r in found}
    counts = {t: db.query(f"SELECT count(*) FROM canvas.{t}")[0][0] for t in TABLES}  # noqa: S608
    return shapes, steps, counts


def _record(record: str | dict) -> dict:
    loaded = json.loads(record) if isinstance(record, str) else dict(record)
    loaded.pop("completed_at", None)  # when it was written: differs between runs
    return loaded


_OTHERS = {
    "postgresql": "SELECT count(*) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()",
    "mysql": "SELECT count(*) FROM information_schema.processlist "
    "WHERE db = DATABASE() AND id <> CONNECTION_ID()",
}


def _killed_sessions_gone(db: Backend, at: str) -> None:
    """Wait until the killed client's sessions have left the server: until then one may
    still finish a COMMIT it had received, between two of `_state`'s reads."""
    deadline = time.monotonic() + 30
    while db.query(_OTHERS[db.kind])[0][0]:
        assert time.monotonic() < deadline, f"{at}: the killed import's session never ended"
        time.sleep(0.05)


def _check_killed(db: Backend, before: tuple, adopted: tuple, at: str) -> dict[str, str]:
    """Each table's state after a kill (see the module doc): "dap", "adopted", or
    "converted" (MySQL: the ALTER committed, the step row not yet written)."""
    _killed_sessions_gone(db, at)
    shapes, steps, counts = _state(db)
    assert counts == before[2], f"{at}: rows lost"
    seen = {}
    for table in TABLES:
        if table in steps:
            assert shapes[table] == adopted[0][table], f"{at}: {table}"
            assert steps[table] == adopted[1][table], f"{at}: {table}'s record"
            seen[table] = "adopted"
        elif shapes[table] == before[0][table]:
            seen[table] = "dap"
        else:  # DDL commits alone: converted, awaiting its step row; never on PostgreSQL
            assert db.kind == "mysql", f"{at}: {table} converted with no step row"
            assert shapes[table] == adopted[0][table], f"{at}: {table}"
            seen[table] = "converted"
    return seen


def _apply_incrementals(path: Path, emu, db: Backend, kinds: dict[str, str]) -> None:
    """Changes on the emulator, then apply: each table's job is as ``kinds`` says, and every
    table ends equal to the emulator's data."""
    emu.advance(600)
    for table in TABLES:
        emu.change("canvas", table, inserts=4, updates=5, deletes=3)
    results = run_apply(
        load_config(path), environ=environ(emu), options=ApplyOptions(), connection=FAST
    )
    assert {(r.table, r.kind, r.status) for r in results} == {(t, kinds[t], "ok") for t in TABLES}
    equal_to_emulator(db, emu)


def _start_import(path: Path, emu) -> subprocess.Popen[bytes]:
    env = {**os.environ, **environ(emu), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "dapctl", "import", str(path)]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _import_again(run_cli, path: Path, emu):
    """The second import: it waits for the killed one's locks, which its server frees once
    it sees the connection gone (and, mid-statement, has finished or undone it)."""
    return run_cli("import", str(path), "--json", "--lock-timeout", "30", environ=environ(emu))


def _statements(log: Path) -> list[str]:
    return [line.split(" ", 1)[1] for line in log.read_text().splitlines()]


def _kill_points(statements: list[str]) -> list[int]:
    """N for each kill worth making: before the first statement, and just after each one that
    changes something or takes or frees a lock (others leave the database as it was)."""
    after = [
        n + 2
        for n, text in enumerate(statements)
        if not text.upper().startswith(_READS) or any(k in text.upper() for k in _LOCKS)
    ]
    return [1, *(n for n in after if n <= len(statements))]


def _run_child(limit: int, log: Path, path: Path, emu) -> int:
    env = {**os.environ, **environ(emu), "PYTHONPATH": str(ROOT)}
    child = "tests.databases.import_kill_child"
    command = [sys.executable, "-m", child, str(limit), str(log), "import", str(path)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, -signal.SIGKILL), done.stderr[-2000:]
    return done.returncode


@pytest.mark.slow
def test_an_import_killed_between_any_two_statements_is_finished_by_the_next(
    official, copies, make_emulator, tmp_path, write_config, run_cli
):
    emu = make_emulator()
    initdb(emu, copies.base, tmp_path)
    before = _state(copies.backend(copies.base))
    reference = copies.copy()
    path = write_config(import_config(emu, reference.url), name="reference.toml")
    assert _run_child(0, tmp_path / "whole.log", path, emu) == 0
    statements = _statements(tmp_path / "whole.log")
    adopted = _state(reference)
    assert set(adopted[1]) == set(TABLES) and adopted[0] != before[0]
    assert sum(s.upper().startswith("ALTER") for s in statements) == len(TABLES)
    seen: dict[tuple[str, ...], int] = {}
    applied_first = False

    for limit in _kill_points(statements):
        at = f"killed before statement {limit} ({statements[limit - 1][:40]})"
        db = copies.copy()
        path = write_config(import_config(emu, db.url), name=f"kill{limit}.toml")
        assert _run_child(limit, tmp_path / f"kill{limit}.log", path, emu) == -signal.SIGKILL
        assert len(_statements(tmp_path / f"kill{limit}.log")) == limit, at

        states = _check_killed(db, before, adopted, at)
        seen[tuple(states[t] for t in TABLES)] = limit
        if "converted" in states.values() and not applied_first:  # apply before any import
            applied_first = True
            first = copies.copy(db.url)
            first_path = write_config(import_config(emu, first.url), name="first.toml")
            kinds = {t: "incremental" if s == "adopted" else "snapshot" for t, s in states.items()}
            _apply_incrementals(first_path, emu, first, kinds)

        again = _import_again(run_cli, path, emu)

        assert again.code == 0, f"{at}: {again.stderr}"
        assert set(statuses(again).values()) <= {"adopted", "already adopted"}, at
        assert _state(db) == adopted, at

    # Every state a kill can leave was left: tables taken one after the other, and on MySQL
    # a table converted and awaiting its step row (the window between ALTER and INSERT).
    assert ("dap", "dap") in seen and ("adopted", "dap") in seen and ("adopted",) * 2 in seen
    assert (("converted", "dap") in seen) == (copies.engine == "mysql"), seen
    assert (("adopted", "converted") in seen) == (copies.engine == "mysql"), seen
    assert applied_first == (copies.engine == "mysql")
    _apply_incrementals(path, emu, db, dict.fromkeys(TABLES, "incremental"))


@pytest.mark.slow
def test_an_import_killed_mid_statement_is_finished_by_the_next(
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
    assert set(adopted[1]) == set(TABLES) and adopted[0] != before[0]

    for n, fraction in enumerate(FRACTIONS):
        db = copies.copy()
        path = write_config(import_config(emu, db.url), name=f"round{n}.toml")
        child = _start_import(path, emu)
        time.sleep(whole * fraction)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)

        _check_killed(db, before, adopted, f"round {n}")
        again = _import_again(run_cli, path, emu)

        assert again.code == 0, again.stderr
        assert set(statuses(again).values()) <= {"adopted", "already adopted"}
        assert _state(db) == adopted, f"round {n}"

    _apply_incrementals(path, emu, db, dict.fromkeys(TABLES, "incremental"))

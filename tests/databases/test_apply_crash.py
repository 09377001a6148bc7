"""SIGKILL through a chain of database applies: ``python -m dapctl apply`` killed at seeded
random moments over a snapshot and a few incrementals, against the test's emulator over
loopback, into PostgreSQL and into a DuckDB file (a killed process releases DuckDB's
single-writer lock with its file descriptors).

After every kill each table holds exactly the emulator's data at the watermark its
``dapctl.table_steps`` row names (the two commit together). After the clean apply that ends the
chain: each table equals the emulator's data row for row, each record's watermark is the
emulator's data clock, no ``dapctl.staging_*`` table is left, and no query window cost two
jobs except where the kill landed between a job's creation and its record (the emulator's
job cache is off, so a job that was recorded but not resumed would show as a second one).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from dapctl.databases import table_columns
from tests.apply_helpers import config_text, environ
from tests.databases.helpers import Backend, dap_schema, expected_rows

pytestmark = pytest.mark.slow

TABLES = ("accounts", "users")
ROWS = {"canvas.accounts": 6_000, "canvas.users": 3_000}
ROUNDS = 3  # a snapshot, then two incrementals
KILLS_PER_ROUND = 2
CHILD_DEADLINE = 60.0


def _config(emu, url: str) -> str:
    text = config_text(emu, tables=json.dumps(list(TABLES)), extra_target='database = "wh"')
    return f'[databases.wh]\nurl = "{url}"\n\n' + text.replace('output = "out/', '# output = "')


def _spawn(path: Path, emu) -> subprocess.Popen[bytes]:
    log = (path.parent / "child.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "dapctl", "apply", "--no-progress", str(path)],
        env={**os.environ, **environ(emu)},
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=path.parent,
    )


def _kill_after(child: subprocess.Popen[bytes], delay: float) -> int | None:
    """SIGKILL ``child`` ``delay`` seconds after its start; its exit code if it ended first."""
    try:
        return child.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        return None


def _steps(backend: Backend) -> dict[str, dict]:
    """The database's step records by table; the DuckDB file is closed again at once, so
    the next child can take its lock."""
    exists = (
        "SELECT count(*) FROM information_schema.tables"
        " WHERE table_schema = 'dapctl' AND table_name = 'table_steps'"
    )
    try:
        if backend.query(exists) == [(0,)]:
            return {}  # before the first apply
        got = backend.query("SELECT address, record FROM dapctl.table_steps")
    finally:
        backend.close()
        backend.opened.clear()
    return {address.rsplit(".", 1)[1]: json.loads(record) for address, record in got}


def _rows(backend: Backend, table: str) -> list[tuple]:
    try:
        return backend.rows(f"canvas.{table}", dap_schema("canvas", table))
    finally:
        backend.close()
        backend.opened.clear()


def _staging(backend: Backend) -> list[str]:
    try:
        return backend.staging_tables()
    finally:
        backend.close()
        backend.opened.clear()


def _want(emu, table: str, at: datetime | None = None) -> list[tuple]:
    columns = table_columns(dap_schema("canvas", table))
    return expected_rows(emu.expected_snapshot("canvas", table, at=at), columns)


def _check_consistent(backend: Backend, emu, steps: dict[str, dict]) -> None:
    """Each table holds the emulator's data at the watermark committed with it."""
    for table in TABLES:
        step = steps.get(table)
        if step is None or step["watermark"] is None:
            continue  # never committed: the table may not exist yet
        at = datetime.fromisoformat(step["watermark"].replace("Z", "+00:00"))
        got, want = _rows(backend, table), _want(emu, table, at)
        assert got == want, (table, step["watermark"], len(got), len(want))


class JobLog:
    """Every job the emulator creates: the apply that asked, its table, window and id."""

    def __init__(self, emu) -> None:
        self.made: list[tuple[int, str, tuple[int | None, int], str]] = []
        self.apply = 0
        create = emu.jobs.create

        def recording(table, query, now, **job):
            made, new = create(table, query, now, **job)
            if new:
                window = (query.since, made.timestamp)
                self.made.append((self.apply, table.spec.name, window, made.id))
            return made, new

        emu.jobs.create = recording  # this emulator's own job store, not a global

    def by(self, apply: int, table: str) -> list[tuple[tuple[int | None, int], str]]:
        return [(w, j) for a, t, w, j in self.made if (a, t) == (apply, table)]


def _pending(steps: dict[str, dict]) -> set[str]:
    return {t for t, s in steps.items() if s.get("pending") is not None}


def _knows(step: dict | None, job_id: str) -> bool:
    """Whether a step record names ``job_id``, as its pending job or its last completed one."""
    if step is None:
        return False
    return step.get("job_id") == job_id or (step.get("pending") or {}).get("job_id") == job_id


@pytest.mark.parametrize("seed", [11])
def test_sigkill_through_a_chain_of_database_applies(
    backend, make_emulator, write_config, seed
):  # fmt: skip
    rng = random.Random(seed)
    emu = make_emulator(rows=ROWS, part_size=1_000, job_delay=0.3, cache_jobs=False)
    jobs = JobLog(emu)
    path = write_config(_config(emu, backend.url))
    path.parent.joinpath("data").mkdir(exist_ok=True)
    whole, outcomes = 2.0, []  # a first guess at one apply's run, then measured
    lost = Counter[tuple]()  # (table, window): jobs a kill left unrecorded
    for round_ in range(ROUNDS):
        if round_:
            emu.advance(rng.randint(60, 3600))
            for table in TABLES:
                emu.change("canvas", table, inserts=400, updates=200, deletes=80)
        for kill in range(KILLS_PER_ROUND + 1):
            before = _steps(backend)
            jobs.apply += 1
            started = time.monotonic()
            child = _spawn(path, emu)
            if kill < KILLS_PER_ROUND:
                code = _kill_after(child, rng.uniform(0.1, 1.0) * whole)
            else:
                code = child.wait(timeout=CHILD_DEADLINE)
                assert code == 0, (path.parent / "child.log").read_text()[-3000:]
                whole = time.monotonic() - started
            after = _steps(backend)
            outcomes.append(("done" if code == 0 else "killed", len(_staging(backend))))
            _check_consistent(backend, emu, after)
            for table in TABLES:
                made = jobs.by(jobs.apply, table)
                if table in _pending(before):
                    # A recorded job is resumed, never replaced by a new one.
                    assert not made, (table, before[table]["pending"], made)
                lost.update((table, w) for w, j in made if not _knows(after.get(table), j))

    jobs.apply += 1
    emu.advance(60)
    for table in TABLES:
        emu.change("canvas", table, inserts=50, updates=30, deletes=10)
    assert _spawn(path, emu).wait(timeout=CHILD_DEADLINE) == 0

    steps = _steps(backend)
    for table in TABLES:
        assert _rows(backend, table) == _want(emu, table), table
        step = steps[table]
        assert step["kind"] == "incremental" and step["pending"] is None, step
        watermark = datetime.fromisoformat(step["watermark"].replace("Z", "+00:00"))
        assert watermark == emu.now, (table, step["watermark"], emu.now)
    # An empty window (an apply after a completed one, the data clock unmoved) is asked
    # again by every apply: it has nothing to lose or duplicate.
    windows = Counter((t, w) for _, t, w, _ in jobs.made if w[0] != w[1])
    # A window's second job only where a kill fell between its first job's creation and its
    # record: the record is the only way the next apply can know of a job.
    twice = {w: n for w, n in windows.items() if n - 1 > lost[w]}
    assert not twice, (twice, lost)
    print(f"seed {seed}: (outcome, staging tables after it) {outcomes}")
    left = _staging(backend)
    # A killed load's staging table (UNLOGGED in PostgreSQL, committed at once in DuckDB)
    # outlives it; the next apply drops it.
    assert not left, f"staging tables a killed load left: {left}"
    print(f"seed {seed}: {outcomes}; {len(jobs.made)} jobs for {len(windows)} windows, {lost}")

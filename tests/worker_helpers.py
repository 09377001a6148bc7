"""Helpers for the tests of many workers (issue 12): configs with the state in PostgreSQL,
reading the state back, worker processes (``python -m dapctl apply --json``) and their
results, waiting, and racing workers in threads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import psycopg

from dapctl.apply import ApplyOptions
from dapctl.loading import load_config
from dapctl.results import StepResult
from dapctl.state import State
from dapctl.state.postgres import PostgresStateStore
from dapctl.wiring import run_apply
from tests.apply_helpers import FAST, config_text, environ

ACCOUNTS, USERS = "univ_a/core/canvas.accounts", "univ_a/core/canvas.users"
LEASE = 3  # seconds: short enough that a take-over costs little wall time
# The tests turn the emulators' job cache off (cache_jobs=False): a second job for one table
# is then a new job, counted in jobs_created, never the first one handed out again.
DEADLINE = 60.0


def pg_config(emu, url: str, *, tables: str = '["accounts", "users"]') -> str:
    text = config_text(emu, tables=tables, settings=f"lease_seconds = {LEASE}")
    return text.replace('state = "state/dapctl.state.json"', f'state = "{url}"')


def stored(url: str) -> State:
    store = PostgresStateStore(url, namespace="dapctl")
    try:
        state = store.read()
    finally:
        store.close()
    assert state is not None
    return state


def recorded_job(url: str, address: str) -> bool:
    """Whether ``address`` has a pending job recorded (False while there is no state yet)."""
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('dapctl.state_steps')").fetchone() == (None,):
            return False
        row = conn.execute(
            "SELECT record->'pending' FROM dapctl.state_steps WHERE address = %s", (address,)
        ).fetchone()
    return row is not None and row[0] is not None


def record_of(url: str, address: str) -> tuple | None:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT record, serial FROM dapctl.state_steps WHERE address = %s", (address,)
        ).fetchone()


def spawn(path: Path, env: dict[str, str], log: str = "worker") -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "dapctl", "apply", str(path), "--json"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=(path.parent / f"{log}.log").open("ab"),
        cwd=path.parent,
    )


def wait_until(ready: Callable[[], bool], what: str, *, deadline: float = DEADLINE) -> None:
    end = time.monotonic() + deadline
    while not ready():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.002)


def wait_for(probe: Callable[[], int | None], what: str) -> int:
    found: list[int] = []
    wait_until(lambda: (value := probe()) is not None and not found.append(value), what)
    return found[0]


def worker_json(child: subprocess.Popen[bytes]) -> dict:
    out, _ = child.communicate(timeout=DEADLINE)
    document = json.loads(out)
    failed = [(r["address"], r["error"]) for r in document["results"] if r["status"] == "failed"]
    assert child.returncode == 0 and not failed, failed or out
    return document


def race(work: Callable[[], list[StepResult]], workers: int = 2) -> list[list[StepResult]]:
    """Each worker's results, the workers started in threads at the same moment."""
    barrier, results = threading.Barrier(workers), []

    def run() -> None:
        barrier.wait()
        results.append(work())

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=DEADLINE)
    assert len(results) == workers
    return results


def planned_rescuer(path: Path, emu) -> tuple[Future[list[StepResult]], threading.Event]:
    """A worker, in a thread, that has planned from the state as it is now and waits for
    ``go`` before it claims anything: the results, and ``go``."""
    planned, go = threading.Event(), threading.Event()

    def plan_then_wait(plan) -> None:
        planned.set()
        assert go.wait(DEADLINE)

    def work() -> list[StepResult]:
        loaded = load_config(path)
        options = ApplyOptions()
        return run_apply(
            loaded, environ=environ(emu), options=options, connection=FAST, on_plan=plan_then_wait
        )

    pool = ThreadPoolExecutor(1)
    results = pool.submit(work)
    pool.shutdown(wait=False)
    assert planned.wait(DEADLINE)
    return results, go

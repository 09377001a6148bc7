"""Scenario 5: loading PostgreSQL. One table of ``rows`` rows as a snapshot, then an
incremental of ``changes`` changes (half updates, 40 % inserts, 10 % deletes), each through
``dapctl apply`` (a database target), through the official ``dap initdb`` / ``dap syncdb``,
and as a floor, ``psql \\copy`` of the same rows from a local CSV file into a typed table.

All three load the same data from the same emulator into the same server, each into a
database of its own made for the run and dropped after it. Jobs are made and encoded before
anything is timed (dapctl and ``dap`` both ask for condensed TSV, so they share one job; a
target that also writes files would ask for JSON Lines), so the emulator's encoding is in no
figure. Snapshots of every run come first and
then, after one batch of changes, the incrementals: each run's databases then hold the same
snapshot, so every run asks for the same window and gets the same cached job. Before each
timed load every benchmark database is vacuumed and analyzed and the server checkpoints, so
no load pays for the autovacuum or checkpoint its predecessor set off, and an incremental
meets a table in the state a daily sync finds it (vacuumed since its snapshot). Wall time is
from spawn to exit (start-up included); peak RSS is the client process's, not the server's.
"""

from __future__ import annotations

import csv
import json
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import requests
from common import (
    ID_VAR,
    OTHER_ID,
    OTHER_SECRET,
    PYTHON,
    SECRET_VAR,
    WARM_ID,
    WARM_SECRET,
    Figure,
    Measured,
    Row,
    child_env,
    emulator,
    measure,
)

from dapctl.databases import Column, pg_sql, table_columns
from dapctl.emulator import Emulator
from dapctl.emulator.catalog import format_ts, json_schema

DAP = Path(PYTHON).with_name("dap")
PSQL = "psql"
TABLE = "big"
WIRE = {"format": "tsv", "mode": "condensed"}  # what dapctl (a table-only target) and dap ask


@dataclass(frozen=True)
class DatabaseLoad:
    rows: int = 1_000_000
    changes: int = 100_000
    part_size: int = 100_000
    admin_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    # `dap initdb` / `dap syncdb` too (they load from the emulator since it serves `$schema`
    # and snapshot TSV without `meta.action`, as the service does); off to time dapctl alone.
    official: bool = True


def database_load(size: DatabaseLoad, runs: int, work: Path) -> list[Row]:
    tools = (
        ("dapctl apply", "dap", "psql \\copy") if size.official else ("dapctl apply", "psql \\copy")
    )
    figures = {(phase, tool): (Figure(), Figure()) for phase in ("snap", "incr") for tool in tools}
    counts: dict[str, int] = {}
    with (
        emulator(rate_limits=None, job_delay=0.0, rows={f"canvas.{TABLE}": size.rows},
                 part_size=size.part_size) as emu,
        _databases(size.admin_url, runs) as urls,
    ):  # fmt: skip
        env = child_env(emu, DAP_TRACKING="false", DAP_CLIENT_ID=OTHER_ID,
                        DAP_CLIENT_SECRET=OTHER_SECRET, DAP_API_URL=emu.base_url,
                        NO_COLOR="1")  # fmt: skip
        at = emu.data.now
        _prepare(emu, WIRE)
        columns = table_columns(json_schema(_table(emu).spec, 1))
        snapshot_csv = _write_csv(work / "snapshot.csv", emu, columns, None)
        for run in range(runs):
            loads = _three(emu, env, work, urls, run, columns, snapshot_csv, "initdb", size)
            _record(figures, "snap", size.rows, loads)
        _change(emu, size.changes)
        since = format_ts(at)
        _prepare(emu, {**WIRE, "since": since})
        changes_csv = _write_csv(work / "changes.csv", emu, columns, at)
        for run in range(runs):
            loads = _three(emu, env, work, urls, run, columns, changes_csv, "syncdb", size)
            _record(figures, "incr", size.changes, loads)
        want = len(emu.expected_snapshot("canvas", TABLE))
        for tool in ("dapctl", "dap") if size.official else ("dapctl",):
            counts[tool] = _count(urls[-1][tool], f"canvas.{TABLE}")
    if any(count != want for count in counts.values()):
        raise RuntimeError(f"row counts after the incremental: {counts}, emulator {want}")
    return _rows(size, figures, counts)


def _three(
    emu: Emulator,
    env: dict[str, str],
    work: Path,
    every: list[dict[str, str]],
    run: int,
    columns: list[Column],
    data: Path,
    dap_command: str,
    size: DatabaseLoad,
) -> dict[str, Measured]:
    """One load by each tool, in turn, into run ``run``'s databases (of ``every`` run's)."""
    urls = every[run]
    folder = work / f"db-{run}"
    folder.mkdir(exist_ok=True)
    config = folder / "dapctl.toml"
    config.write_text(_config(emu, urls["dapctl"]))
    dap = [str(DAP), "--base-url", emu.base_url, "--non-interactive", dap_command, "--namespace",
           "canvas", "--table", TABLE, "--connection-string", urls["dap"]]  # fmt: skip
    ours = [PYTHON, "-m", "dapctl", "apply", "--no-progress", str(config)]
    _quiet(size.admin_url, every)
    out = {"dapctl apply": _cached(emu, ours, env, folder)}
    if size.official:
        _quiet(size.admin_url, every)
        out["dap"] = _cached(emu, dap, env, folder)
    raw = f"raw_{dap_command}"
    with psycopg.connect(urls["raw"], autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {raw}")
        conn.execute(f"CREATE TABLE {raw} ({_typed(columns)})")
    _quiet(size.admin_url, every)
    out["psql \\copy"] = measure(
        [PSQL, "-q", "-v", "ON_ERROR_STOP=1", "-d", urls["raw"],
         "-c", f"\\copy {raw} FROM '{data}' WITH (FORMAT csv)"],
        env=env, cwd=folder,
    )  # fmt: skip
    return out


def _quiet(admin_url: str, every: list[dict[str, str]]) -> None:
    """Vacuum and analyze every benchmark database, then checkpoint: a quiet server."""
    for urls in every:
        for url in urls.values():
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("VACUUM (ANALYZE)")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def _cached(emu: Emulator, command: list[str], env: dict[str, str], cwd: Path) -> Measured:
    """``measure(command)``, refusing a run that made a job: its encoding would be timed."""
    before = emu.stats.jobs_created
    result = measure(command, env=env, cwd=cwd)
    if emu.stats.jobs_created != before:
        raise RuntimeError(f"{command[:3]} asked for a job that was not prepared beforehand")
    return result


def _record(
    figures: dict[tuple[str, str], tuple[Figure, Figure]],
    phase: str,
    rows: int,
    measured: dict[str, Measured],
) -> None:
    for tool, result in measured.items():
        rate, rss = figures[(phase, tool)]
        rate.add(rows / result.seconds)
        rss.add(result.peak_rss_mb)


def _rows(
    size: DatabaseLoad,
    figures: dict[tuple[str, str], tuple[Figure, Figure]],
    counts: dict[str, int],
) -> list[Row]:
    out = []
    for phase, label, rows in (
        ("snap", f"5. PostgreSQL snapshot, {size.rows:,} rows", size.rows),
        ("incr", f"5. PostgreSQL incremental, {size.changes:,} changes", size.changes),
    ):
        for tool in (t for p, t in figures if p == phase):
            rate, rss = figures[(phase, tool)]
            name = tool if tool != "dap" else ("dap initdb" if phase == "snap" else "dap syncdb")
            note = ""
            if tool == "psql \\copy":
                note = "typed table from a local CSV, COPY only: no download, parse or merge"
                if phase == "incr":
                    note += " (deletes copied as rows)"
            out.append(Row(label, f"{name} rows/s", rate, "rows/s", 0, "", None, note))
            out.append(Row(label, f"{name} peak RSS", rss, "MB", 0))
        note = f"{rows:,} rows; table holds {counts['dapctl']:,} rows after, as the emulator"
        if (phase, "dap") in figures:
            ours, theirs = figures[(phase, "dapctl apply")][0], figures[(phase, "dap")][0]
            ratio = Figure([a / b for a, b in zip(ours.values, theirs.values, strict=True)])
            out.append(Row(label, "dapctl / dap", ratio, "x", 2, "", None, note))
        raw = figures[(phase, "psql \\copy")][0]
        ratio = Figure([a / b for a, b in zip(figures[(phase, "dapctl apply")][0].values,
                                              raw.values, strict=True)])  # fmt: skip
        out.append(Row(label, "dapctl / psql \\copy", ratio, "x", 2, "", None, note))
    return out


def _config(emu: Emulator, url: str) -> str:
    return f"""
[settings]
state = "state.json"

[databases.wh]
url = "{url}"

[profiles.bench]
base_url = "{emu.base_url}"
client_id_env = "{ID_VAR}"
client_secret_env = "{SECRET_VAR}"

[profiles.bench.rate_limits]
# The emulator here enforces no limits; without this, the runs of one benchmark would wait
# on the 5-a-minute job budget dapctl keeps across processes, and time that, not the load.
jobs_per_minute = 600

[[targets]]
name = "bench"
namespace = "canvas"
tables = ["{TABLE}"]
database = "wh"
"""


@contextmanager
def _databases(admin_url: str, runs: int) -> Iterator[list[dict[str, str]]]:
    """Three databases (dapctl, dap, raw) per run, dropped at the end whatever happens."""
    base = admin_url.rsplit("/", 1)[0]
    tag = uuid.uuid4().hex[:8]
    names = [{k: f"bench_{tag}_{run}_{k}" for k in ("dapctl", "dap", "raw")} for run in range(runs)]
    try:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            for name in (n for run in names for n in run.values()):
                conn.execute(f'CREATE DATABASE "{name}"')
        yield [{k: f"{base}/{n}" for k, n in run.items()} for run in names]
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            for name in (n for run in names for n in run.values()):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _prepare(emu: Emulator, body: dict[str, Any], timeout: float = 3600) -> None:
    """Make the job ``body`` asks for and wait until it is encoded; the same query later gets
    it from the emulator's cache, complete (as `common.prepare_job`, for any query body)."""
    session = requests.Session()
    login = session.post(f"{emu.base_url}/ids/auth/login", auth=(WARM_ID, WARM_SECRET),
                         data={"grant_type": "client_credentials"}, timeout=30)  # fmt: skip
    auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
    url = f"{emu.base_url}/dap/query/canvas/table/{TABLE}/data"
    job = session.post(url, json=body, headers=auth, timeout=30).json()
    deadline = time.monotonic() + timeout
    while job["status"] != "complete":
        if time.monotonic() > deadline:
            raise RuntimeError(f"job for {body} not ready after {timeout} s")
        time.sleep(0.2)
        job = session.get(f"{emu.base_url}/dap/job/{job['id']}", headers=auth, timeout=30).json()


def _table(emu: Emulator) -> Any:
    found = emu.data.table("canvas", TABLE)
    assert found is not None
    return found


def _change(emu: Emulator, changes: int) -> None:
    updates, deletes = changes // 2, changes // 10
    emu.change("canvas", TABLE, inserts=changes - updates - deletes, updates=updates,
               deletes=deletes)  # fmt: skip


def _records(emu: Emulator, since: int | None) -> Iterable[dict[str, Any]]:
    table, now = _table(emu), emu.data.now
    rows = emu.data.snapshot(table, now) if since is None else emu.data.changes(table, since, now)
    return (emu.data.record(table, row) for row in rows)


def _write_csv(path: Path, emu: Emulator, columns: list[Column], since: int | None) -> Path:
    """The rows of a snapshot (or of the changes since ``since``) as CSV for ``\\copy``."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        for record in _records(emu, since):
            writer.writerow(_cell(record, column) for column in columns)
    return path


def _cell(record: dict[str, Any], column: Column) -> Any:
    value = record.get(column.path[0], {}).get(column.path[1])
    if value is None:
        return ""  # CSV's NULL
    if column.is_json:
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, bool):
        return "t" if value else "f"
    return value


def _typed(columns: list[Column]) -> str:
    return ", ".join(f'"{c.name}" {pg_sql.TYPES.spell(c.type)}' for c in columns)


def _count(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
    assert row is not None
    return int(row[0])

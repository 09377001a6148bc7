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

The scenario is written once, over a `Server`: what differs between servers (making and
dropping the databases, quieting the server, the floor's file and command, counting rows).
`POSTGRES` is scenario 5's; `mysql_load.MARIADB` is scenario 7's.
"""

from __future__ import annotations

import csv
import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
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

from dapctl.databases import Column, pg_sql, registry, table_columns
from dapctl.emulator import Emulator
from dapctl.emulator.catalog import format_ts, json_schema

DAP = Path(PYTHON).with_name("dap")
PSQL = "psql"
TABLE = "big"
WIRE = {"format": "tsv", "mode": "condensed"}  # what dap asks (and dapctl into PostgreSQL)


@dataclass(frozen=True)
class DatabaseLoad:
    rows: int = 1_000_000
    changes: int = 100_000
    part_size: int = 100_000
    admin_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    # `dap initdb` / `dap syncdb` too (they load from the emulator since it serves `$schema`
    # and snapshot TSV without `meta.action`, as the service does); off to time dapctl alone.
    official: bool = True


Urls = list[dict[str, str]]  # per run: the URL of its dapctl, dap and raw (floor) databases


@dataclass(frozen=True)
class Server:
    """What one server brings to the scenario; each callable has its side effects."""

    label: str  # the rows' scenario label before "snapshot, N rows", e.g. "5. PostgreSQL"
    floor: str  # the floor tool's name in the rows, e.g. "psql \\copy"
    floor_note: str
    databases: Callable[[str, int], AbstractContextManager[Urls]]  # (admin URL, runs)
    quiet: Callable[[str, Urls], None]  # before each timed load
    write_rows: Callable[[Path, Emulator, list[Column], int | None], Path]  # the floor's file
    # (raw database URL, table to create, columns, file, env, cwd): the timed floor load
    load_floor: Callable[[str, str, list[Column], Path, dict[str, str], Path], Measured]
    count: Callable[[str], int]  # rows in the loaded table of a dapctl or dap database
    snapshot_target: float | None = None  # dapctl's snapshot rate over the floor's, at least
    incremental_target: float | None = None  # dapctl's incremental rows/s, at least


def database_load(size: DatabaseLoad, runs: int, work: Path) -> list[Row]:
    return server_load(POSTGRES, size, runs, work)


def server_load(server: Server, size: DatabaseLoad, runs: int, work: Path) -> list[Row]:
    """Scenario 5's measurements against ``server``; the rows of its table."""
    tools = ("dapctl apply", *(("dap",) if size.official else ()), server.floor)
    figures = {(phase, tool): (Figure(), Figure()) for phase in ("snap", "incr") for tool in tools}
    counts: dict[str, int] = {}
    with (
        emulator(rate_limits=None, job_delay=0.0, rows={f"canvas.{TABLE}": size.rows},
                 part_size=size.part_size) as emu,
        server.databases(size.admin_url, runs) as urls,
    ):  # fmt: skip
        env = child_env(emu, DAP_TRACKING="false", DAP_CLIENT_ID=OTHER_ID,
                        DAP_CLIENT_SECRET=OTHER_SECRET, DAP_API_URL=emu.base_url,
                        NO_COLOR="1")  # fmt: skip
        at = emu.data.now
        wires = _wires(size.admin_url)
        for wire in wires:
            _prepare(emu, wire)
        columns = table_columns(json_schema(_table(emu).spec, 1))
        snapshot_csv = server.write_rows(work / "snapshot.csv", emu, columns, None)
        for run in range(runs):
            loads = _three(server, emu, env, work, urls, run, columns, snapshot_csv, "initdb", size)
            _record(figures, "snap", size.rows, loads)
        _change(emu, size.changes)
        since = format_ts(at)
        for wire in wires:
            _prepare(emu, {**wire, "since": since})
        changes_csv = server.write_rows(work / "changes.csv", emu, columns, at)
        for run in range(runs):
            loads = _three(server, emu, env, work, urls, run, columns, changes_csv, "syncdb", size)
            _record(figures, "incr", size.changes, loads)
        want = len(emu.expected_snapshot("canvas", TABLE))
        for tool in ("dapctl", "dap") if size.official else ("dapctl",):
            counts[tool] = server.count(urls[-1][tool])
    if any(count != want for count in counts.values()):
        raise RuntimeError(f"row counts after the incremental: {counts}, emulator {want}")
    return _rows(server, size, figures, counts)


def _three(
    server: Server,
    emu: Emulator,
    env: dict[str, str],
    work: Path,
    every: Urls,
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
    server.quiet(size.admin_url, every)
    out = {"dapctl apply": _cached(emu, ours, env, folder)}
    if size.official:
        server.quiet(size.admin_url, every)
        out["dap"] = _cached(emu, dap, env, folder)
    server.quiet(size.admin_url, every)
    out[server.floor] = server.load_floor(urls["raw"], f"raw_{dap_command}", columns, data, env,
                                          folder)  # fmt: skip
    return out


def _pg_floor(
    url: str, raw: str, columns: list[Column], data: Path, env: dict[str, str], cwd: Path
) -> Measured:
    """``psql \\copy`` of ``data`` into a new typed table ``raw``; only the copy is timed."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {raw}")
        conn.execute(f"CREATE TABLE {raw} ({_typed(columns)})")
    return measure(
        [PSQL, "-q", "-v", "ON_ERROR_STOP=1", "-d", url,
         "-c", f"\\copy {raw} FROM '{data}' WITH (FORMAT csv)"],
        env=env, cwd=cwd,
    )  # fmt: skip


def _quiet(admin_url: str, every: Urls) -> None:
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
    server: Server,
    size: DatabaseLoad,
    figures: dict[tuple[str, str], tuple[Figure, Figure]],
    counts: dict[str, int],
) -> list[Row]:
    out = []
    for phase, label, rows in (
        ("snap", f"{server.label} snapshot, {size.rows:,} rows", size.rows),
        ("incr", f"{server.label} incremental, {size.changes:,} changes", size.changes),
    ):
        for tool in (t for p, t in figures if p == phase):
            rate, rss = figures[(phase, tool)]
            name = tool if tool != "dap" else ("dap initdb" if phase == "snap" else "dap syncdb")
            note = ""
            if tool == server.floor:
                note = server.floor_note
                if phase == "incr":
                    note += " (deletes copied as rows)"
            goal = server.incremental_target if (phase, tool) == ("incr", "dapctl apply") else None
            out.append(_row(label, f"{name} rows/s", rate, "rows/s", 0, goal, note))
            out.append(Row(label, f"{name} peak RSS", rss, "MB", 0))
        note = f"{rows:,} rows; table holds {counts['dapctl']:,} rows after, as the emulator"
        if (phase, "dap") in figures:
            ours, theirs = figures[(phase, "dapctl apply")][0], figures[(phase, "dap")][0]
            ratio = Figure([a / b for a, b in zip(ours.values, theirs.values, strict=True)])
            out.append(Row(label, "dapctl / dap", ratio, "x", 2, "", None, note))
        raw = figures[(phase, server.floor)][0]
        ratio = Figure([a / b for a, b in zip(figures[(phase, "dapctl apply")][0].values,
                                              raw.values, strict=True)])  # fmt: skip
        goal = server.snapshot_target if phase == "snap" else None
        out.append(_row(label, f"dapctl / {server.floor}", ratio, "x", 2, goal, note))
    return out


def _row(
    label: str, measure: str, figure: Figure, unit: str, digits: int, goal: float | None, note: str
) -> Row:
    """A row whose median must be at least ``goal`` (if any)."""
    if goal is None:
        return Row(label, measure, figure, unit, digits, "", None, note)
    return Row(label, measure, figure, unit, digits, f">= {goal:,g}", figure.median >= goal, note)


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


def database_names(runs: int) -> list[dict[str, str]]:
    """Fresh names of the three databases (dapctl, dap, raw) of each run."""
    tag = uuid.uuid4().hex[:8]
    return [{k: f"bench_{tag}_{run}_{k}" for k in ("dapctl", "dap", "raw")} for run in range(runs)]


@contextmanager
def _databases(admin_url: str, runs: int) -> Iterator[Urls]:
    """Three databases (dapctl, dap, raw) per run, dropped at the end whatever happens."""
    base = admin_url.rsplit("/", 1)[0]
    names = database_names(runs)
    try:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            for name in (n for run in names for n in run.values()):
                conn.execute(f'CREATE DATABASE "{name}"')
        yield [{k: f"{base}/{n}" for k, n in run.items()} for run in names]
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            for name in (n for run in names for n in run.values()):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _wires(url: str) -> list[dict[str, Any]]:
    """The query bodies the loads ask for: dap's, and dapctl's (its engine's wire format)."""
    fmt, mode = registry.wire_format(url)
    ours = {"format": fmt, "mode": mode}
    return [WIRE] if ours == WIRE else [WIRE, ours]


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


def records(emu: Emulator, since: int | None) -> Iterable[dict[str, Any]]:
    """The records of the table's snapshot, or of its changes since ``since``."""
    table, now = _table(emu), emu.data.now
    rows = emu.data.snapshot(table, now) if since is None else emu.data.changes(table, since, now)
    return (emu.data.record(table, row) for row in rows)


def _write_csv(path: Path, emu: Emulator, columns: list[Column], since: int | None) -> Path:
    """The rows of a snapshot (or of the changes since ``since``) as CSV for ``\\copy``."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        for record in records(emu, since):
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


def _count(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM canvas.{TABLE}").fetchone()  # noqa: S608
    assert row is not None
    return int(row[0])


POSTGRES = Server(
    label="5. PostgreSQL",
    floor="psql \\copy",
    floor_note="typed table from a local CSV, COPY only: no download, parse or merge",
    databases=_databases,
    quiet=_quiet,
    write_rows=_write_csv,
    load_floor=_pg_floor,
    count=_count,
)

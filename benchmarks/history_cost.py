"""Issue 24's benchmark: what ``history = true`` costs an incremental, as a ratio to the same
incremental without history (target: at most 1.5x).

Scenario 5's shape through the table engine itself (no download: the parts are local JSON
Lines, the same for both runs): a snapshot of ``--rows`` rows of ``canvas.users`` into a
fresh database, then one incremental of ``--changes`` changes (half updates, 40 % inserts,
10 % deletes), timed. Once into a table with no history, once with it (the snapshot then
also writes one version per row). Each run gets a database of its own on the server
``--url`` names (a superuser URL to PostgreSQL's ``postgres`` database by default; a MySQL
URL or ``duckdb`` also work), dropped afterwards. Runs both ``--repeat`` times, interleaved,
and prints one line per run and the ratio of the medians.

    python3 benchmarks/history_cost.py --rows 1000000 --changes 100000
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from dapctl.databases import open_database
from dapctl.databases.engine import TableOptions
from dapctl.emulator.catalog import TABLES, json_schema

SCHEMA = json_schema(next(t for t in TABLES if t.namespace == "canvas" and t.name == "users"), 1)
STATES = ("registered", "pre_registered", "deleted")


def record(i: int, ts: str, action: str = "U", tag: str = "") -> str:
    if action == "D":
        return json.dumps({"key": {"id": i}, "meta": {"ts": ts, "action": "D"}})
    value = {
        "name": f"User {i}{tag}",
        "sortable_name": f"{i}, User",
        "email": f"u{i}@example.edu",
        "locale": "en",
        "workflow_state": STATES[i % 3],
        "created_at": "2024-01-01T00:00:00Z",
    }
    return json.dumps({"key": {"id": i}, "value": value, "meta": {"ts": ts, "action": action}})


def write_parts(folder: Path, rows: int, changes: int) -> tuple[Path, Path]:
    snapshot, incremental = folder / "snapshot.jsonl", folder / "incremental.jsonl"
    with snapshot.open("w") as out:
        for i in range(rows):
            out.write(record(i, "2026-01-01T00:00:00Z") + "\n")
    updates, inserts = changes // 2, changes * 4 // 10
    deletes = changes - updates - inserts
    with incremental.open("w") as out:
        for i in range(updates):
            out.write(record(i * 2, "2026-01-02T00:00:00Z", tag="'") + "\n")
        for i in range(inserts):
            out.write(record(rows + i, "2026-01-02T00:00:00Z") + "\n")
        for i in range(deletes):
            out.write(record(i * 2 + 1, "2026-01-02T00:00:00Z", "D") + "\n")
    return snapshot, incremental


@contextmanager
def database(url: str, folder: Path) -> Iterator[str]:
    if url == "duckdb":
        yield f"duckdb:///{folder}/{uuid.uuid4().hex}.duckdb"
        return
    name = f"dapctl_bench_{uuid.uuid4().hex[:10]}"
    admin = url
    if url.startswith("mysql"):
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", user="root", autocommit=True)
        conn.cursor().execute(f"CREATE DATABASE `{name}` COLLATE utf8mb4_bin")
        try:
            yield f"{url.rsplit('/', 1)[0]}/{name}"
        finally:
            conn.cursor().execute(f"DROP DATABASE `{name}`")
        return
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        yield f"{admin.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)'.encode())


def load(url: str, folder: Path, part: Path, kind: str, options: TableOptions, job: str) -> float:
    db = open_database(url, base_dir=folder)
    try:
        started = time.perf_counter()
        loading = db.begin_load(
            schema="canvas",
            table="users",
            dap_schema=SCHEMA,
            kind=kind,
            options=options,  # type: ignore[arg-type]
        )
        loading.add_part(part)
        loading.commit(address="bench", record=json.dumps({"watermark": None, "job_id": job}))
        return time.perf_counter() - started
    finally:
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--changes", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (default 3)")
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        snapshot, incremental = write_parts(folder, args.rows, args.changes)
        seconds: dict[str, list[float]] = {"plain": [], "history": []}
        for _ in range(args.repeat):  # interleaved, so drift on a noisy machine hits both
            for label, options in (
                ("plain", TableOptions()),
                ("history", TableOptions(history_table="users__history")),
            ):
                with database(args.url, folder) as url:
                    snap = load(url, folder, snapshot, "snapshot", options, "s")
                    inc = load(url, folder, incremental, "incremental", options, "i")
                seconds[label].append(inc)
                print(
                    f"{label:8} snapshot {args.rows:,} rows {snap:6.2f} s; incremental "
                    f"{args.changes:,} changes {inc:6.2f} s ({args.changes / inc:,.0f} changes/s)"
                )
        plain, kept = (statistics.median(seconds[k]) for k in ("plain", "history"))
        ratios = sorted(h / p for p, h in zip(seconds["plain"], seconds["history"], strict=True))
        print(
            f"median incremental: plain {plain:.2f} s, history {kept:.2f} s; history / plain "
            f"{kept / plain:.2f}x (runs {ratios[0]:.2f}-{ratios[-1]:.2f}; target <= 1.5x)"
        )


if __name__ == "__main__":
    main()

"""Benchmark: rows/s of a 1M-row snapshot and a 100k-change incremental into PostgreSQL.

Run: ``python3 -m tests.databases.bench_pg [ADMIN_URL] [ROWS] [FORMAT]`` (default
postgresql://postgres@127.0.0.1:5432/postgres, 1,000,000, tsv). Makes and drops its own
database. Records come from the emulator's generator (the ``submissions`` shape), 100k per
part, written as condensed TSV (what a table-only PostgreSQL target asks DAP for) or as JSON
Lines (``jsonl``: a target that also writes files); the time counted is staging (COPY) plus
the commit transaction, not generating the files.

Wall time on a shared box depends on what else runs, so each line also shows the CPU seconds
spent (this process plus every backend of the server, when the server runs on this machine
and its processes are readable; run a server of your own for a clean figure).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from dapctl.databases import open_database
from dapctl.emulator.catalog import format_ts, generic_table, json_schema, values
from dapctl.emulator.formats import encode_text

PART = 100_000


def _write(path: Path, records: list[dict], snapshot: bool) -> Path:
    if path.suffix == ".tsv":
        spec = generic_table("canvas.big")
        path.write_text(encode_text(records, spec, "tsv", "condensed", snapshot=snapshot))
        return path
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    with path.open("w", encoding="utf-8") as out:
        out.writelines(dumps(r) + "\n" for r in records)
    return path


def _parts(folder: Path, name: str, records: list[dict], fmt: str = "jsonl") -> list[Path]:
    return [
        _write(folder / f"{name}-{i // PART}.{fmt}", records[i : i + PART], name == "snap")
        for i in range(0, len(records), PART)
    ]


def _ticks(pid: int) -> tuple[int, ...]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return tuple(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime


def _server_cpu(postmaster: int | None) -> float:
    """CPU seconds of the postmaster's children so far: reaped ones and live ones."""
    if postmaster is None:
        return 0.0
    try:
        total = sum(_ticks(postmaster)[2:])
        for child in Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split():
            try:
                total += sum(_ticks(int(child))[:2])
            except OSError:
                continue  # it exited meanwhile, so its time is in the postmaster's cutime
    except OSError:
        return 0.0
    return total / os.sysconf("SC_CLK_TCK")


def _postmaster(db) -> int | None:
    pid = db.conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None  # a remote server


def _timed(db, spec, parts, kind: str) -> tuple[int, float]:
    started = time.perf_counter()
    loading = db.begin_load(
        schema="canvas", table="big", dap_schema=json_schema(spec, 1), kind=kind
    )
    for part in parts:
        loading.add_part(part)
    rows = loading.commit(address=f"canvas.big.{kind}", record="{}")
    return rows, time.perf_counter() - started


def main(
    admin: str = "postgresql://postgres@127.0.0.1:5432/postgres",
    rows: str = "1000000",
    fmt: str = "tsv",
) -> None:
    count, spec = int(rows), generic_table("canvas.big")
    ts = format_ts(1_800_000_000)
    snapshot = [
        {"key": {"id": i}, "value": values(spec, 0, i, 0), "meta": {"ts": ts}}
        for i in range(1, count + 1)
    ]
    changes: list[dict] = []
    for i in range(1, count // 10 + 1):
        kind = i % 5  # 60% updates, 20% deletes, 20% inserts
        if kind == 3:
            changes.append({"key": {"id": i * 7}, "meta": {"ts": ts, "action": "D"}})
        else:
            key = count + i if kind == 4 else i * 7
            changes.append(
                {
                    "key": {"id": key},
                    "value": values(spec, 0, key, 1),
                    "meta": {"ts": ts, "action": "U"},
                }
            )
    name = f"dapctl_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        with tempfile.TemporaryDirectory() as folder:
            snap_parts = _parts(Path(folder), "snap", snapshot, fmt)
            inc_parts = _parts(Path(folder), "inc", changes, fmt)
            db = open_database(admin.rsplit("/", 1)[0] + f"/{name}", base_dir=Path(folder))
            postmaster = _postmaster(db)
            for label, parts, kind in (
                ("snapshot (empty table)", snap_parts, "snapshot"),
                ("snapshot (reload)", snap_parts, "snapshot"),
                ("incremental", inc_parts, "incremental"),
            ):
                cpu = time.process_time() + _server_cpu(postmaster)
                done, seconds = _timed(db, spec, parts, kind)
                cpu = time.process_time() + _server_cpu(postmaster) - cpu
                staged = sum(1 for p in parts for _ in p.open("rb")) - (fmt == "tsv") * len(parts)
                rate = staged / seconds
                print(
                    f"{label:24} {staged:>9,} records {seconds:7.2f} s {rate:>10,.0f} rows/s",
                    end="",
                )
                print(f" {cpu:6.2f} cpu-s ({done:,} applied)", flush=True)
            db.close()
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main(*sys.argv[1:])

"""Issue 25's benchmark: scenario 5's snapshot and incremental into a Delta or Iceberg
table on local disk (``--format``), against writing the same rows as one Parquet file with
pyarrow (the machine's limit for this work: the same bytes, no staging, no merge, no log).

Engine-level, as ``history_cost.py``: a snapshot of ``--rows`` rows of ``canvas.users`` from
local JSON Lines parts, then one incremental of ``--changes`` changes (half updates, 40 %
inserts, 10 % deletes), each timed through ``open_database("delta+file:...")`` (or
``iceberg+file:``) ``.begin_load``.
The bound: the snapshot's rows (read back from the table as Arrow) written with
``pyarrow.parquet.write_table``, timed. Targets: snapshot at least 0.5 of the bound's speed
(bound seconds / dapctl seconds), incremental at least 50,000 changes/s.

    python3 -m benchmarks.lake_load --rows 1000000 --changes 100000 --repeat 3
    python3 -m benchmarks.lake_load --format iceberg
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from benchmarks.history_cost import SCHEMA, write_parts
from dapctl.databases import open_database


def load(url: str, folder: Path, part: Path, kind: str, job: str) -> float:
    db = open_database(url, base_dir=folder)
    started = time.perf_counter()
    loading = db.begin_load(
        schema="canvas",
        table="users",
        dap_schema=SCHEMA,
        kind=kind,  # type: ignore[arg-type]
    )
    loading.add_part(part)
    loading.commit(address="bench", record=json.dumps({"watermark": None, "job_id": job}))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--changes", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--format", choices=("delta", "iceberg"), default="delta")
    args = parser.parse_args()
    runs: dict[str, list[float]] = {"snapshot": [], "incremental": [], "parquet": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        snapshot, incremental = write_parts(folder, args.rows, args.changes)
        for n in range(args.repeat):
            url = f"{args.format}+file://{folder}/lake{n}"
            runs["snapshot"].append(load(url, folder, snapshot, "snapshot", "s"))
            rows = open_database(url, base_dir=folder).arrow(("canvas", "users"))  # type: ignore[attr-defined]
            started = time.perf_counter()
            pq.write_table(rows, folder / f"bound{n}.parquet")
            runs["parquet"].append(time.perf_counter() - started)
            runs["incremental"].append(load(url, folder, incremental, "incremental", "i"))
            print(
                f"run {n + 1}: snapshot {runs['snapshot'][-1]:.2f} s, parquet bound "
                f"{runs['parquet'][-1]:.2f} s, incremental {runs['incremental'][-1]:.2f} s"
            )
    snap, bound, inc = (statistics.median(runs[k]) for k in ("snapshot", "parquet", "incremental"))
    ratios = sorted(b / s for b, s in zip(runs["parquet"], runs["snapshot"], strict=True))
    print(
        f"snapshot {args.rows:,} rows: {snap:.2f} s ({args.rows / snap:,.0f} rows/s); "
        f"pyarrow write_table {bound:.2f} s; dapctl / bound {bound / snap:.2f} "
        f"(runs {ratios[0]:.2f}-{ratios[-1]:.2f}; target >= 0.5)"
    )
    print(
        f"incremental {args.changes:,} changes: {inc:.2f} s "
        f"({args.changes / inc:,.0f} changes/s; target >= 50,000)"
    )


if __name__ == "__main__":
    main()

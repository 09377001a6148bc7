"""Issue 25's benchmark: scenario 5's snapshot and incremental into a Delta or Iceberg
table on local disk (``--format``), against writing the same rows as one Parquet file with
pyarrow (the machine's limit for this work: the same bytes, no staging, no merge, no log).

Engine-level, as ``history_cost.py``: a snapshot of ``--rows`` rows of ``canvas.users`` from
local parts, then one incremental of ``--changes`` changes (half updates, 40 % inserts, 10 %
deletes), each timed through ``open_database("delta+file:...")`` (or ``iceberg+file:``)
``.begin_load``. The parts are what a lake target asks DAP for (``--wire parquet``: condensed
Parquet, encoded by the emulator's encoder, outside the timing) or JSON Lines (``--wire
jsonl``: what a target that also writes files gets).
The bound: the snapshot's rows (read back from the table as Arrow) written with
``pyarrow.parquet.write_table``, timed. Beside it, with Parquet parts, pyarrow alone reading
the served part and writing the typed rows as one file (``read_and_write``): the least any
loader of these parts does. Targets: snapshot at least 0.5 of the bound's speed
(bound seconds / dapctl seconds), incremental at least 50,000 changes/s.

    python3 -m benchmarks.lake_load --rows 1000000 --changes 100000 --repeat 3
    python3 -m benchmarks.lake_load --format iceberg --wire jsonl
    python3 -m benchmarks.lake_load --peak big.parquet --format delta
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.history_cost import SCHEMA, write_parts
from dapctl.databases import open_database
from dapctl.emulator.catalog import TABLES
from dapctl.emulator.formats import encode_part

USERS = next(t for t in TABLES if t.namespace == "canvas" and t.name == "users")


def as_parquet(part: Path, *, snapshot: bool) -> Path:
    """The JSON Lines ``part`` as DAP serves condensed Parquet (the emulator's encoder)."""
    records = [json.loads(line) for line in part.open()]
    done = part.with_suffix(".parquet")
    done.write_bytes(encode_part(records, USERS, "parquet", "condensed", 6, snapshot=snapshot))
    return done


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


def read_and_write(part: Path, out: Path) -> float:
    """pyarrow alone from the served Parquet part to one typed Parquet file: read, name the
    columns, parse the timestamps, write. What any loader of these parts must at least do."""
    started = time.perf_counter()
    rows = pq.read_table(part)
    typed = pa.timestamp("us", tz="UTC")
    columns = {
        name.rpartition(".")[2]: rows[name].cast(typed)
        if name.endswith(("_at", ".ts"))
        else rows[name]
        for name in rows.column_names
        if name != "meta.action"
    }
    pq.write_table(pa.table(columns), out)
    return time.perf_counter() - started


def peak_rss(url: str, folder: Path, part: Path) -> float:
    """The peak resident memory (MB) of a fresh process that loads ``part`` as a snapshot:
    its VmHWM (Linux), which is its own, where ``ru_maxrss`` keeps the forking parent's."""
    code = (
        "import sys; from pathlib import Path; "
        "from benchmarks.lake_load import load; "
        "load(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), 'snapshot', 's'); "
        "print(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, url, str(folder), str(part)],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    return int(done.stdout.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--changes", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--format", choices=("delta", "iceberg"), default="delta")
    parser.add_argument("--wire", choices=("parquet", "jsonl"), default="parquet")
    parser.add_argument(
        "--rss", action="store_true", help="also the peak memory of one snapshot, in a child"
    )
    parser.add_argument(
        "--peak", type=Path, metavar="PART", help="only: time and peak memory of a snapshot of "
        "this Parquet part, in a child (a large one made beforehand, see results.md)"
    )  # fmt: skip
    args = parser.parse_args()
    if args.peak is not None:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            peak = peak_rss(f"{args.format}+file://{tmp}/lake", Path(tmp), args.peak)
            took = time.perf_counter() - started
        print(f"{args.format}: snapshot of {args.peak.name} in a child: {took:.2f} s "
              f"(with the child's start), peak memory {peak:.0f} MB")  # fmt: skip
        return
    runs: dict[str, list[float]] = {"snapshot": [], "incremental": [], "parquet": [], "read": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        snapshot, incremental = write_parts(folder, args.rows, args.changes)
        if args.wire == "parquet":
            snapshot = as_parquet(snapshot, snapshot=True)
            incremental = as_parquet(incremental, snapshot=False)
        for n in range(args.repeat):
            url = f"{args.format}+file://{folder}/lake{n}"
            runs["snapshot"].append(load(url, folder, snapshot, "snapshot", "s"))
            rows = open_database(url, base_dir=folder).arrow(("canvas", "users"))  # type: ignore[attr-defined]
            started = time.perf_counter()
            pq.write_table(rows, folder / f"bound{n}.parquet")
            runs["parquet"].append(time.perf_counter() - started)
            if args.wire == "parquet":
                runs["read"].append(read_and_write(snapshot, folder / f"read{n}.parquet"))
            runs["incremental"].append(load(url, folder, incremental, "incremental", "i"))
            read = f", pyarrow read+write {runs['read'][-1]:.2f} s" if runs["read"] else ""
            print(
                f"run {n + 1}: snapshot {runs['snapshot'][-1]:.2f} s, parquet bound "
                f"{runs['parquet'][-1]:.2f} s{read}, incremental {runs['incremental'][-1]:.2f} s"
            )
        if args.rss:
            peak = peak_rss(f"{args.format}+file://{folder}/rss", folder, snapshot)
            print(f"peak memory of a {args.rows:,}-row snapshot: {peak:.0f} MB")
    snap, bound, inc = (statistics.median(runs[k]) for k in ("snapshot", "parquet", "incremental"))
    ratios = sorted(b / s for b, s in zip(runs["parquet"], runs["snapshot"], strict=True))
    print(
        f"{args.format}, {args.wire} parts: snapshot {args.rows:,} rows: {snap:.2f} s "
        f"({args.rows / snap:,.0f} rows/s); "
        f"pyarrow write_table {bound:.2f} s; dapctl / bound {bound / snap:.2f} "
        f"(runs {ratios[0]:.2f}-{ratios[-1]:.2f}; target >= 0.5)"
    )
    if runs["read"]:
        read = statistics.median(runs["read"])
        print(
            f"pyarrow reading the parts and writing one file {read:.2f} s; "
            f"dapctl / that {read / snap:.2f}"
        )
    print(
        f"incremental {args.changes:,} changes: {inc:.2f} s "
        f"({args.changes / inc:,.0f} changes/s; target >= 50,000)"
    )


if __name__ == "__main__":
    main()

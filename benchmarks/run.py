"""Benchmarks of issue 7: run the scenarios against a local emulator, print and save a table.

    python benchmarks/run.py            # full sizes, 5 runs each (tens of minutes)
    python benchmarks/run.py --quick    # tiny sizes, one run: a smoke test of the harness
    python benchmarks/run.py --only 1,3 --runs 3 --out /tmp/results.md
    python benchmarks/run.py --only 5 --runs 1 --pg-url postgresql://postgres@HOST:5432/postgres
    python benchmarks/run.py --only 6 --runs 1 --out /tmp/workers.md
    python benchmarks/run.py --only 7 --runs 1 --mysql-url mysql://root@HOST:3306

Every figure is the median of the runs, with the min and max beside it. See README.md for
what each scenario measures and how its bound is computed.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scenarios
from common import Row
from database_load import DatabaseLoad, database_load
from mysql_load import ADMIN_URL, mysql_load
from workers import Workers, workers

import dapctl

HERE = Path(__file__).resolve().parent

FULL: dict[str, Any] = {
    "1": scenarios.SmallTables(),
    "2": scenarios.LargeTable(),
    "3": scenarios.OfficialClient(),
    "4": scenarios.Planning(),
    "5": DatabaseLoad(),
    "6": Workers(),
    "7": DatabaseLoad(admin_url=ADMIN_URL),
}
QUICK: dict[str, Any] = {
    "1": scenarios.SmallTables(tables=10, rows=20, window=0.2, job_delay=0.1),
    "2": scenarios.LargeTable(rows=(5_000, 10_000), part_size=2_500, csv_rows=2_000),
    "3": scenarios.OfficialClient(tables=2, rows=200, part_size=100, window=0.2),
    "4": scenarios.Planning(profiles=5, tables=5),
    "5": DatabaseLoad(rows=20_000, changes=2_000, part_size=10_000),
    "6": Workers(
        workers=(1, 2),
        cpu_profiles=2,
        cpu_rows=20_000,
        part_size=5_000,
        rate_profiles=2,
        rate_tables=6,
        window=1.0,
        job_delay=0.2,
        lease_seconds=3.0,  # a waiting worker looks again after a tenth of it: 0.3 s
    ),
    "7": DatabaseLoad(rows=20_000, changes=2_000, part_size=10_000, admin_url=ADMIN_URL),
}
RUNNERS: dict[str, Callable[[Any, int, Path], list[Row]]] = {
    "1": scenarios.many_small_tables,
    "2": scenarios.one_large_table,
    "3": scenarios.official_client,
    "4": scenarios.planning,
    "5": database_load,
    "6": workers,
    "7": mysql_load,
}


def render(
    rows: Sequence[Row], *, facts: Sequence[str], runs: int, elapsed: float, quick: bool
) -> str:
    head = [
        "# dapctl benchmarks" + (" (--quick: tiny sizes, not figures to quote)" if quick else ""),
        "",
        *(f"- {fact}" for fact in facts),
        f"- runs per figure: {runs} (median, with min and max); whole benchmark {elapsed:.0f} s",
        "",
        "| scenario | measure | median | min | max | unit | target | met | notes |",
        "|---|---|---:|---:|---:|---|---|---|---|",
    ]
    lines = []
    for row in rows:
        median, low, high = row.figure.show(row.digits)
        met = "" if row.met is None else ("yes" if row.met else "**no**")
        cells = [row.scenario, row.measure, median, low, high, row.unit, row.target, met, row.note]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(head + lines) + "\n"


def machine_facts() -> list[str]:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        cpuinfo = []
    models = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    model = models[0] if models else "unknown CPU"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; dapctl {dapctl.__version__}",
        f"machine: {os.cpu_count()} cores ({model}), {platform.system()} {platform.release()}",
        f"Python {platform.python_version()} ({platform.python_implementation()})",
        f"load average at start: {load} (a shared, noisy machine: read the min-max spread)",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one run")
    parser.add_argument("--runs", type=int, help="runs per figure (default 5, --quick 1)")
    parser.add_argument("--only", default="1,2,3,4,5,6,7", help="comma-separated scenarios")
    parser.add_argument(
        "--pg-url",
        help="scenarios 5 and 6's PostgreSQL server, a superuser URL to its postgres "
        f"database (default {DatabaseLoad.admin_url})",
    )
    parser.add_argument(
        "--mysql-url",
        help=f"scenario 7's MySQL or MariaDB server, a URL of a user who may create and drop "
        f"databases (default {ADMIN_URL})",
    )
    parser.add_argument("--out", type=Path, help="where to save the table (default: "
                        "benchmarks/last-run.md; --quick: not saved). results.md is kept by "
                        "hand: its current figures first, the history after")  # fmt: skip
    args = parser.parse_args(argv)
    runs = args.runs or (1 if args.quick else 5)
    sizes = dict(QUICK if args.quick else FULL)
    if args.pg_url:
        for key in ("5", "6"):
            sizes[key] = dataclasses.replace(sizes[key], admin_url=args.pg_url)
    if args.mysql_url:
        sizes["7"] = dataclasses.replace(sizes["7"], admin_url=args.mysql_url)
    facts = machine_facts()
    started = time.perf_counter()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="dapctl-bench-") as work:
        for key in args.only.split(","):
            print(f"scenario {key}: {sizes[key]} x {runs} runs ...", file=sys.stderr, flush=True)
            rows += RUNNERS[key](sizes[key], runs, Path(work))
    elapsed = time.perf_counter() - started
    table = render(rows, facts=facts, runs=runs, elapsed=elapsed, quick=args.quick)
    print(table)
    # Never results.md: it holds the current table and every earlier run's section, which a
    # run's one table would overwrite.
    out = args.out or (None if args.quick else HERE / "last-run.md")
    if out is not None:
        out.write_text(table)
        print(f"saved to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

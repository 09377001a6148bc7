"""Issue 25's question about nested objects: kept as JSON text (what dapctl writes) or as a
struct, what does a reader pay?

One Delta table of ``--rows`` rows, written twice by delta-rs: once with a DAP-like nested
object as a JSON text column, once as a struct column. DuckDB then reads each table's
Parquet files and sums one nested integer field, ``--repeat`` times; prints bytes on disk
and the median query time of each. (Spark is not on these machines: its figures would be
Spark's own, and are not here.)

    python3 -m benchmarks.lake_nested --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake


def objects(rows: int) -> list[dict]:
    return [
        {"id": i, "kind": "Quiz" if i % 3 else "Assignment", "points": i % 100,
         "settings": {"late": bool(i % 2), "tries": i % 5}}
        for i in range(rows)
    ]  # fmt: skip


def timed(conn: duckdb.DuckDBPyConnection, query: str, repeat: int) -> tuple[float, object]:
    runs, answer = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        answer = conn.execute(query).fetchall()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs), answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    made = objects(args.rows)
    ids = pa.array(range(args.rows), pa.int64())
    layouts = {
        "json text": pa.table({"id": ids, "obj": pa.array([json.dumps(o) for o in made])}),
        "struct": pa.table({"id": ids, "obj": pa.array(made)}),
    }
    queries = {
        "json text": "SELECT sum((obj->>'$.settings.tries')::INT) FROM read_parquet({files})",
        "struct": "SELECT sum(obj.settings.tries) FROM read_parquet({files})",
    }
    conn = duckdb.connect()
    with tempfile.TemporaryDirectory() as tmp:
        for name, table in layouts.items():
            where = Path(tmp) / name.replace(" ", "_")
            write_deltalake(str(where), table)
            files = [uri.removeprefix("file://") for uri in DeltaTable(str(where)).file_uris()]
            size = sum(Path(f).stat().st_size for f in files)
            seconds, answer = timed(conn, queries[name].format(files=files), args.repeat)
            print(f"{name:9}: {size / 1e6:6.1f} MB on disk; DuckDB sum of a nested field "
                  f"{seconds:.3f} s (median of {args.repeat}; answer {answer[0][0]})")  # type: ignore[index]  # fmt: skip


if __name__ == "__main__":
    main()

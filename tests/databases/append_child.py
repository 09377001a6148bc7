"""Child process for test_append_only's SIGKILL chain: load windows of log records into an
append-only table, forever, from the window after the one the table's step row records.

Usage: python -m tests.databases.append_child URL BASE_DIR FOLDER [web_logs]. Window n holds
new keys ``n*100 .. n*100+99`` and, again, the last 50 keys of window n-1 (a window's edge
loaded twice, as a re-run after a crash would); its commit records ``{"window": n}``. The
parent kills this process at random instants and checks the table against the recorded
window. With ``web_logs`` the records go to ``canvas_logs.web_logs`` (string keys, the
zero-padded numbers), each row's ``timestamp`` on one of five days by its key, into a
table partitioned by day on it (PostgreSQL).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from dapctl.databases import open_database
from dapctl.databases.engine import TableOptions
from tests.databases.helpers import dap_schema, write_part


def window(n: int) -> list[dict]:
    keys = [*range(max(n * 100 - 50, 0), n * 100), *range(n * 100, n * 100 + 100)]
    ts = f"2026-01-01T00:{n % 60:02d}:00Z"
    return [{"key": {"id": k}, "value": {"name": f"log-{k}"}, "meta": {"ts": ts}} for k in keys]


def log_window(n: int) -> list[dict]:
    """`window` as web_logs records: a row's time is its key's, the same every time."""
    out = []
    for record in window(n):
        k = record["key"]["id"]
        ts = f"2026-01-0{1 + k // 100 % 5}T{k % 24:02d}:00:00Z"
        value = {"url": f"/p/{k}", "http_method": "GET", "http_status": 200, "timestamp": ts}
        out.append({"key": {"id": f"{k:08d}"}, "value": value, "meta": record["meta"]})
    return out


def main(url: str, base_dir: str, folder: str, kind: str = "users") -> None:
    db = open_database(url, base_dir=Path(base_dir))
    logs = kind == "web_logs"
    namespace, table = ("canvas_logs", "web_logs") if logs else ("canvas", "users")
    schema = dap_schema(namespace, table)
    options = TableOptions(append_only=True, partition_by="timestamp" if logs else None)
    row = db.read_steps().get((namespace, table))
    n = json.loads(row.record)["window"] + 1 if row else 0
    while True:
        part = write_part(Path(folder) / f"w{n}.jsonl", log_window(n) if logs else window(n))
        loading = db.begin_load(
            schema=namespace, table=table, dap_schema=schema, kind="incremental",
            options=options,
        )  # fmt: skip
        loading.add_part(part)
        loading.commit(address=f"{namespace}.{table}", record=json.dumps({"window": n}))
        print(n, flush=True)
        n += 1


if __name__ == "__main__":
    main(*sys.argv[1:])

"""Child process for test_append_only's SIGKILL chain: load windows of log records into an
append-only table, forever, from the window after the one the table's step row records.

Usage: python -m tests.databases.append_child URL BASE_DIR FOLDER. Window n holds new keys
``n*100 .. n*100+99`` and, again, the last 50 keys of window n-1 (a window's edge loaded
twice, as a re-run after a crash would); its commit records ``{"window": n}``. The parent
kills this process at random instants and checks the table against the recorded window.
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


def main(url: str, base_dir: str, folder: str) -> None:
    db = open_database(url, base_dir=Path(base_dir))
    schema = dap_schema("canvas", "users")
    row = db.read_steps().get(("canvas", "users"))
    n = json.loads(row.record)["window"] + 1 if row else 0
    while True:
        part = write_part(Path(folder) / f"w{n}.jsonl", window(n))
        loading = db.begin_load(
            schema="canvas", table="users", dap_schema=schema, kind="incremental",
            options=TableOptions(append_only=True),
        )  # fmt: skip
        loading.add_part(part)
        loading.commit(address="canvas.users", record=json.dumps({"window": n}))
        print(n, flush=True)
        n += 1


if __name__ == "__main__":
    main(*sys.argv[1:])

"""Child process for test_crash: reload one table forever, alternating two datasets.

Usage: python -m tests.databases.crash_child URL BASE_DIR PART_A PART_B. Each commit writes
the step row ``{"data": "a"}`` or ``{"data": "b"}`` with the matching table content; the
parent kills this process with SIGKILL at a random instant and checks they still agree.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dapctl.databases import open_database
from tests.databases.helpers import dap_schema


def main(url: str, base_dir: str, *parts: str) -> None:
    db = open_database(url, base_dir=Path(base_dir))
    schema = dap_schema("canvas", "users")
    n = 0
    while True:
        name = "ab"[n % 2]
        loading = db.begin_load(schema="canvas", table="users", dap_schema=schema, kind="snapshot")
        for _ in range(3):
            loading.add_part(Path(parts[n % 2]))
        loading.commit(address="canvas.users", record=f'{{"data": "{name}"}}')
        print(name, flush=True)
        n += 1


if __name__ == "__main__":
    main(*sys.argv[1:])

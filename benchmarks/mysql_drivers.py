"""Which MySQL driver loads fastest: PyMySQL vs mysql-connector-python, ``LOAD DATA LOCAL
INFILE`` of ~200k rows into a scratch database on the local MariaDB (127.0.0.1:3306, root).

Run: ``python3 benchmarks/mysql_drivers.py [ROWS]``; prints seconds and rows/s per driver.
mysqlclient is left out: it builds from source and needs libmysqlclient headers and
pkg-config (system packages), which a machine with only Python and the registries lacks.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DB = "dapctl_bench_drivers"
TABLE = "CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT, ts DATETIME(6), doc JSON)"


def _rows(path: Path, n: int) -> None:
    with path.open("w") as out:
        for i in range(n):
            out.write(f'{i}\tname-{i} \\\\ x\t2026-01-01 00:00:{i % 60:02}.250000\t{{"k": {i}}}\n')


def _pymysql() -> Any:
    import pymysql

    return pymysql.connect(host="127.0.0.1", user="root", local_infile=True, autocommit=True)


def _connector() -> Any:
    import mysql.connector

    return mysql.connector.connect(
        host="127.0.0.1", user="root", allow_local_infile=True, autocommit=True
    )


def _run(connect: Callable[[], Any], path: Path, n: int) -> float:
    conn = connect()
    cur = conn.cursor()
    cur.execute(f"DROP DATABASE IF EXISTS {DB}")
    cur.execute(f"CREATE DATABASE {DB}")
    cur.execute(f"USE {DB}")
    cur.execute(TABLE)
    started = time.perf_counter()
    cur.execute(f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE t")
    elapsed = time.perf_counter() - started
    cur.execute("SELECT count(*) FROM t")
    assert cur.fetchone()[0] == n
    cur.execute(f"DROP DATABASE {DB}")
    conn.close()
    return elapsed


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.tsv"
        _rows(path, n)
        size = os.path.getsize(path) / 1e6
        print(f"{n} rows, {size:.1f} MB, LOAD DATA LOCAL INFILE, best of 5")
        for name, connect in (("PyMySQL", _pymysql), ("mysql-connector-python", _connector)):
            best = min(_run(connect, path, n) for _ in range(5))
            print(f"{name:24} {best:6.2f} s  {n / best:9,.0f} rows/s")


if __name__ == "__main__":
    main()

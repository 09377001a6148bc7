"""Scenario 7: loading MariaDB (or MySQL), scenario 5's measurements against another server.

The same 1M-row snapshot and 100k changes as scenario 5 (`database_load.server_load`), each
loaded by ``dapctl apply`` (a ``mysql://`` database target), by the official ``dap initdb`` /
``dap syncdb`` (``--connection-string mysql://...``; needs ``instructure-dap-client[mysql]``,
i.e. aiomysql), and, as the machine's limit, by the ``mysql`` client's ``LOAD DATA LOCAL
INFILE`` of the same rows from a local file: the typed TSV dapctl stages (written by
`dapctl.databases.mysql_sql.to_tsv` before anything is timed, the action letter first) into a
typed InnoDB table with no key, in one autocommitted statement. dapctl and ``dap`` both name
the table ``canvas__big`` in the connection's database. Three databases per run are made
(``bench_<tag>_<run>_<tool>``) and dropped at the end whatever happens. Before each timed
load every benchmark table's dirty pages are written out (`_quiet`), as scenario 5
checkpoints PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pymysql
from common import Measured, Row, measure
from database_load import TABLE, DatabaseLoad, Server, Urls, database_names, records, server_load

from dapctl.databases import Column, mysql_sql
from dapctl.emulator import Emulator

MYSQL = "mysql"
ADMIN_URL = "mysql://root@127.0.0.1:3306"


def mysql_load(size: DatabaseLoad, runs: int, work: Path) -> list[Row]:
    return server_load(MARIADB, size, runs, work)


def _connect(url: str, **extra: Any) -> Any:
    parts = urlsplit(url)
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        database=parts.path.lstrip("/") or None,
        autocommit=True,
        **extra,
    )


@contextmanager
def _databases(admin_url: str, runs: int) -> Iterator[Urls]:
    """Three databases (dapctl, dap, raw) per run, dropped at the end whatever happens."""
    base = admin_url.rstrip("/")
    names = database_names(runs)
    every = [n for run in names for n in run.values()]
    try:
        with _connect(admin_url) as conn, conn.cursor() as cur:
            for name in every:
                cur.execute(f"CREATE DATABASE {mysql_sql.q(name)}")
        yield [{k: f"{base}/{n}" for k, n in run.items()} for run in names]
    finally:
        with _connect(admin_url) as conn, conn.cursor() as cur:
            for name in every:
                cur.execute(f"DROP DATABASE IF EXISTS {mysql_sql.q(name)}")


def _quiet(admin_url: str, every: Urls) -> None:
    """Write every benchmark table's dirty pages to disk (``FLUSH TABLES ... FOR EXPORT``,
    InnoDB's per-table checkpoint; the server's own page cleaner idles below its low-water
    mark), so no timed load pays for the flushing its predecessor left behind."""
    with _connect(admin_url) as conn, conn.cursor() as cur:
        for urls in every:
            for url in urls.values():
                database = urlsplit(url).path.lstrip("/")
                cur.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                    "AND engine = 'InnoDB'",
                    (database,),
                )
                for (table,) in cur.fetchall():
                    cur.execute(f"FLUSH TABLES {mysql_sql.q(database)}.{mysql_sql.q(table)} "
                                "FOR EXPORT")  # fmt: skip
                    cur.execute("UNLOCK TABLES")


def _write_tsv(path: Path, emu: Emulator, columns: list[Column], since: int | None) -> Path:
    """The rows of a snapshot (or of the changes since ``since``) as dapctl stages them."""
    lines = (json.dumps(record) for record in records(emu, since))
    with path.open("w", encoding="utf-8", newline="") as out:
        mysql_sql.to_tsv(lines, columns, out)
    return path


def _floor(
    url: str, raw: str, columns: list[Column], data: Path, env: dict[str, str], cwd: Path
) -> Measured:
    """``mysql -e "LOAD DATA LOCAL INFILE"`` of ``data`` into a new table; only that timed."""
    defs = ", ".join(f"{mysql_sql.q(c.name)} {mysql_sql.spell(c)}" for c in columns)
    with _connect(url) as conn, conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {mysql_sql.q(raw)}")
        cur.execute(
            f"CREATE TABLE {mysql_sql.q(raw)} ({mysql_sql.q(mysql_sql.ACTION)} CHAR(1) NOT NULL, "
            f"{defs}) {mysql_sql.TABLE_OPTIONS}"
        )
    parts = urlsplit(url)
    statement = mysql_sql.load_data(raw, columns).replace("%s", "'" + str(data) + "'")
    return measure(
        [MYSQL, "--local-infile=1", "-h", parts.hostname or "127.0.0.1",
         "-P", str(parts.port or 3306), "-u", parts.username or "root",
         parts.path.lstrip("/"), "-e", statement],
        env=env, cwd=cwd,
    )  # fmt: skip


def _count(url: str) -> int:
    with _connect(url) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {mysql_sql.table_name('canvas', TABLE)}")  # noqa: S608
        return int(cur.fetchone()[0])


MARIADB = Server(
    label="7. MariaDB",
    floor="LOAD DATA",
    floor_note="mysql client, LOAD DATA LOCAL INFILE of a local typed TSV into a table "
    "with no key: no download, parse or merge",
    databases=_databases,
    quiet=_quiet,
    write_rows=_write_tsv,
    load_floor=_floor,
    count=_count,
    snapshot_target=0.5,  # issue 22
    incremental_target=20_000,
)

"""Child process for test_import_kill: ``dapctl import``, SIGKILLed just before a statement.

Usage: ``python -m tests.databases.import_kill_child N LOG dapctl-arguments...``. Every SQL
statement the process sends (PostgreSQL or MySQL) is counted and its first word appended to
LOG; just before the Nth is sent the process SIGKILLs itself, so the parent sees exactly the
database a kill between statement N-1 and N leaves. ``N = 0`` never kills: the parent runs
that once to learn how many statements a whole import sends.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import psycopg
import pymysql.cursors

from dapctl.cli import main


def _start(query: Any) -> str:
    text = query.decode() if isinstance(query, bytes) else query
    if not isinstance(text, str):
        text = getattr(text, "_obj", None)  # a psycopg.sql.Composed: its first part
        while isinstance(text, list) and text:
            text = getattr(text[0], "_obj", text[0])
        text = text if isinstance(text, str) else "?"
    return " ".join(text.split())[:60]


def _counting(limit: int, log: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    sent = 0

    def wrap(execute: Callable[..., Any]) -> Callable[..., Any]:
        def counted(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            nonlocal sent
            sent += 1
            with open(log, "a", encoding="utf-8") as out:
                out.write(f"{sent} {_start(query)}\n")
            if sent == limit:
                os.kill(os.getpid(), signal.SIGKILL)
            return execute(self, query, *args, **kwargs)

        return counted

    return wrap


def run(limit: int, log: str, argv: list[str]) -> int:
    wrap = _counting(limit, log)
    psycopg.Cursor.execute = wrap(psycopg.Cursor.execute)  # type: ignore[method-assign]
    pymysql.cursors.Cursor.execute = wrap(pymysql.cursors.Cursor.execute)  # type: ignore[method-assign]
    return main(argv)


if __name__ == "__main__":
    raise SystemExit(run(int(sys.argv[1]), sys.argv[2], sys.argv[3:]))

"""The grammar of ``import``: take over the tables the official client (``dap syncdb``) keeps.

``add_import(commands)`` adds its parser to the top-level subparsers, with its summary,
examples and arguments; ``arguments.build_parser`` calls it.
"""

from __future__ import annotations

import argparse
from typing import Any

from dapctl.cli.shared_arguments import add_command, config_arg, json_flag, seconds


def add_import(commands: Any) -> None:
    sub = add_command(
        commands,
        "import",
        "Take over the PostgreSQL or MySQL / MariaDB tables `dap initdb` / `dap syncdb` "
        "keep, with no new snapshot: for each table step of the config's database targets, "
        "find the table and its row in dap's sync table (instructure_dap.table_sync, MySQL "
        "instructure_dap__table_sync), convert its columns to dapctl's (enums and short text "
        "to text, timestamps to UTC with microseconds, meta_ts added) and record dap's last "
        "sync time as the watermark. PostgreSQL: one transaction per table, the views on it "
        "re-created. MySQL: one ALTER TABLE, then the record (a kill between them: run import "
        "again). The next `dapctl apply` continues with an incremental. dap's own rows are "
        "left as they are; do not run `dap syncdb` on these tables again.",
        [
            "dapctl import dapctl.toml --dry-run   # what would change, per table; nothing done",
            "dapctl import dapctl.toml",
            "dapctl import dapctl.toml --target 'univ_a/core/canvas.courses' --json",
            "dapctl plan dapctl.toml               # then: incrementals from dap's last sync",
        ],
    )
    config_arg(sub)
    sub.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="ADDR_OR_GLOB",
        help="only steps whose address (profile/target/namespace.table), profile/target or "
        "target name matches; globs allowed (repeatable); default: every database target",
    )
    sub.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would change in each table and change nothing",
    )
    json_flag(sub, "one outcome per table")
    _lock_timeout(sub)


def _lock_timeout(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--lock-timeout",
        type=seconds,
        default=0.0,
        metavar="S",
        help="wait up to S seconds for an apply loading the same table (default 0: that "
        "table fails, the others go on)",
    )

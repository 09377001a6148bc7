"""The ``import`` command: adopt the tables the official client keeps (`wiring.importing`).

``cmd_import(args, ctx)`` loads the config, runs the import (or its dry run) and prints one
line per table with what changed (or would), or one JSON document with ``--json``. It exits
with an error when a table could not be converted; tables skipped (never synced by ``dap``,
not in the database) are reported and do not fail the command.
"""

from __future__ import annotations

import argparse

from dapctl.cli.context import Context, emit_json, load
from dapctl.cli.stores import open_databases
from dapctl.errors import ExitStatus
from dapctl.loading import require_extras
from dapctl.wiring.importing import Imported, ImportOptions, run_import

_COLOURS = {
    "adopted": "green",
    "would adopt": "yellow",
    "already adopted": "dim",
    "skipped": "dim",
    "failed": "red",
}


def cmd_import(args: argparse.Namespace, ctx: Context) -> int:
    loaded = load(args)
    require_extras(loaded, importer=ctx.importer)
    options = ImportOptions(
        targets=args.target, dry_run=args.dry_run, lock_timeout=args.lock_timeout
    )
    with open_databases(loaded, ctx) as databases:
        results = run_import(loaded, environ=ctx.environ, databases=databases, options=options)
    ok = all(r.ok for r in results)
    if args.json:
        emit_json(
            ctx, {"ok": ok, "dry_run": args.dry_run, "tables": [r.to_json() for r in results]}
        )
    else:
        ctx.out("\n".join(_line(r, ctx) for r in results) or "no database targets to import")
    return ExitStatus.SUCCESS if ok else ExitStatus.ERROR


def _line(result: Imported, ctx: Context) -> str:
    head = ctx.style(f"{result.status:<15}", _COLOURS[result.status], "bold")
    lines = [f"{head} {result.address}  ({result.table})", f"{'':16}{result.detail}"]
    lines += [f"{'':16}- {change}" for change in result.changes]
    return "\n".join(lines)

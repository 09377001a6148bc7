"""The grammar of the commands for operating scheduled runs: ``status`` and ``runs``.

``add_status`` and ``add_runs`` add their parsers to the top-level subparsers;
``arguments.build_parser`` calls them. ``runs`` has two subcommands, ``list`` (the default:
``dapctl runs CONFIG`` lists) and ``show``; `default_runs_list` inserts ``list`` where the
user wrote none.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dapctl.cli.shared_arguments import add_command, config_arg, examples_epilog, json_flag

STATUS_EXITS = """\
exit statuses:
  0  every table is fresh (or has no freshness set and was applied)
  1  an error: the state or a table target's database could not be read
  4  a table's data is older than its warn_after
  5  a table's data is older than its error_after, or it was never applied
"""


def add_status(commands: Any) -> None:
    sub = add_command(
        commands,
        "status",
        "Show every table's watermark, the age of its data, its freshness verdict "
        "(freshness = { warn_after, error_after }), its pending job and how its last run "
        "went. Reads the state and the table targets' databases only: no network, no "
        "credentials. Its exit status says whether every table is fresh, for a monitoring "
        "check or a probe.",
        [
            "dapctl status dapctl.toml",
            "dapctl status dapctl.toml --json",
            "dapctl status dapctl.toml --format prometheus   # for a scraper that runs it",
            "dapctl status dapctl.toml --metrics-file /var/lib/node_exporter/dapctl.prom",
        ],
    )
    sub.epilog = f"{sub.epilog}\n\n{STATUS_EXITS}"
    config_arg(sub)
    _selection(sub)
    json_flag(sub, "every table's status")
    sub.add_argument(
        "--format",
        choices=("text", "json", "prometheus"),
        default=None,
        help="text (default), json (as --json) or prometheus (the text exposition format)",
    )
    metrics_file(sub)


def add_runs(commands: Any) -> None:
    parent: argparse.ArgumentParser = commands.add_parser(
        "runs",
        help="List the applies recorded in the run history, or show one.",
        description="Every apply records a run beside the state: when, where, how it ended, "
        "and each step's job, window, records, bytes, where it landed, duration, retries and "
        "error. The last [settings] keep_runs (default 100) are kept. A run whose process "
        "was killed is marked interrupted by the next apply on its host.",
        epilog=examples_epilog(
            "dapctl runs dapctl.toml",
            "dapctl runs dapctl.toml --limit 5 --json",
            "dapctl runs show dapctl.toml 20261206T101500.123456Z-3fa2",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    runs = parent.add_subparsers(title="subcommands", metavar="SUBCOMMAND", required=True)
    listing = add_command(
        runs, "list", "List recent runs, newest first.", ["dapctl runs dapctl.toml"],
        command="runs list",
    )  # fmt: skip
    config_arg(listing)
    json_flag(listing, "the runs")
    listing.add_argument(
        "--limit", type=int, default=20, metavar="N", help="at most N runs (default 20)"
    )
    show = add_command(
        runs,
        "show",
        "Show one run and each of its steps.",
        ["dapctl runs show dapctl.toml 20261206T101500.123456Z-3fa2 --json"],
        command="runs show",
    )
    config_arg(show)
    show.add_argument("run_id", metavar="RUN_ID", help="a run's id, as `dapctl runs` lists it")
    json_flag(show, "the run")


def add_show(commands: Any) -> None:
    sub = add_command(
        commands,
        "show",
        "Print a plan saved by `dapctl plan CONFIG -out FILE`, as plan printed it.",
        ["dapctl show reviewed.plan", "dapctl show reviewed.plan --json"],
    )
    sub.add_argument("plan", type=Path, metavar="FILE", help="the saved plan")
    json_flag(sub, "the saved plan")


def metrics_file(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--metrics-file",
        metavar="PATH",
        help="write Prometheus metrics to PATH (atomically) for node_exporter's textfile "
        "collector (default: [settings] metrics_file)",
    )


def default_runs_list(argv: Sequence[str]) -> list[str]:
    """``runs CONFIG`` as ``runs list CONFIG``: the first word is the command."""
    words = list(argv)
    for i, word in enumerate(words):
        if word.startswith("-"):
            continue
        if word == "runs" and i + 1 < len(words):
            following = words[i + 1]
            if following not in ("list", "show") and not following.startswith("-"):
                words.insert(i + 1, "list")
        break
    return words


def _selection(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--profile", action="append", default=[], metavar="P", help="only this profile"
    )
    sub.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="ADDR_OR_GLOB",
        help="only addresses matching (profile/target/namespace.table, globs allowed)",
    )

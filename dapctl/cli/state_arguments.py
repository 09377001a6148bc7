"""The grammar of the commands that work on the state: ``state`` (``list``, ``show``,
``rm``, ``mv``, ``migrate``) and ``force-unlock``.

Each ``add_NAME(commands)`` adds one command's parser to the top-level subparsers; ``state``
has subcommands of its own, whose names are stored as ``"state list"`` and so on.
"""

from __future__ import annotations

import argparse
from typing import Any

from dapctl.cli.shared_arguments import (
    add_command,
    config_arg,
    examples_epilog,
    json_flag,
    lock_timeout,
)


def add_state(commands: Any) -> None:
    parent: argparse.ArgumentParser = commands.add_parser(
        "state",
        help="Inspect the state, forget or rename its addresses, or move it elsewhere.",
        description="Work on the state where [settings] state keeps it: a local file "
        "(default dapctl.state.json), a PostgreSQL database (postgresql://) or an S3 bucket "
        "(s3://). list and show inspect it; rm forgets a step's watermark so the next apply "
        "takes a new snapshot of that table; mv renames addresses after a target or profile "
        "was renamed; migrate copies the state to another backend. Database targets' "
        "records, kept in their own databases, are listed and forgotten there too.",
        epilog=examples_epilog(
            "dapctl state list dapctl.toml",
            "dapctl state show dapctl.toml univ_a/core/canvas.accounts",
            "dapctl state rm dapctl.toml univ_a/core/canvas.accounts",
            "dapctl state mv dapctl.toml 'univ_a/core/*' 'univ_a/main/*'",
            "dapctl state migrate dapctl.toml --to postgresql://db.example.edu/dapctl",
            "dapctl state migrate dapctl.toml --to s3://bucket/dapctl/",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    state = parent.add_subparsers(title="subcommands", metavar="SUBCOMMAND", required=True)
    listing = add_command(
        state,
        "list",
        "List every address in the state.",
        ["dapctl state list dapctl.toml"],
        command="state list",
    )
    config_arg(listing)
    json_flag(listing, "the state's steps")
    show = add_command(
        state,
        "show",
        "Show what the state remembers about one address.",
        ["dapctl state show dapctl.toml univ_a/core/canvas.accounts --json"],
        command="state show",
    )
    config_arg(show)
    show.add_argument(
        "address", metavar="ADDRESS", help="profile/target/namespace.table, or a glob"
    )
    json_flag(show, "the step (with a glob: the steps)")
    remove = add_command(
        state,
        "rm",
        "Forget addresses (watermark and any pending job): the next apply takes a snapshot. "
        "Output files stay where they are.",
        [
            "dapctl state rm dapctl.toml univ_a/core/canvas.accounts",
            "dapctl state rm dapctl.toml 'univ_b/*'",
        ],
        command="state rm",
    )
    config_arg(remove)
    remove.add_argument(
        "addresses", nargs="+", metavar="ADDRESS", help="addresses (or globs) to forget"
    )
    lock_timeout(remove)
    json_flag(remove, "what was forgotten")
    rename = add_command(
        state,
        "mv",
        "Rename addresses after a target or profile was renamed, so the next apply continues "
        "from their watermarks instead of taking new snapshots. With globs, each * of NEW takes "
        "what the same * of OLD matched (within one path segment).",
        [
            "dapctl state mv dapctl.toml univ_a/core/canvas.users univ_a/main/canvas.users",
            "dapctl state mv dapctl.toml '*/core/*' '*/main/*'",
        ],
        command="state mv",
    )
    config_arg(rename)
    rename.add_argument("old", metavar="OLD", help="the address (or glob) in the state")
    rename.add_argument("new", metavar="NEW", help="its new address")
    lock_timeout(rename)
    json_flag(rename, "what was moved")
    _add_state_migrate(state)


def _add_state_migrate(state: Any) -> None:
    sub = add_command(
        state,
        "migrate",
        "Copy the state to another backend (a PostgreSQL or S3 URL, or a local path), keeping its "
        "lineage and serial, with both locks held; then point [settings] state at it. The "
        "source stays as it was. A destination that holds steps already is refused unless "
        "--force.",
        [
            "dapctl state migrate dapctl.toml --to postgresql://db.example.edu/dapctl",
            "dapctl state migrate dapctl.toml --to s3://bucket/dapctl/",
            "dapctl state migrate dapctl.toml --to state/dapctl.state.json --json",
        ],
        command="state migrate",
    )
    config_arg(sub)
    sub.add_argument(
        "--to",
        required=True,
        metavar="URL_OR_PATH",
        help="postgresql://host/db (no password: PGPASSWORD, ~/.pgpass or a service file), "
        "s3://bucket/prefix/ (the s3 extra; AWS credentials and endpoint as for outputs) or a "
        "path (relative to the working directory)",
    )
    sub.add_argument(
        "--force", action="store_true", help="replace a state the destination holds already"
    )
    lock_timeout(sub)
    json_flag(sub, "what was copied")


def add_force_unlock(commands: Any) -> None:
    sub = add_command(
        commands,
        "force-unlock",
        "Remove a state lock left behind, saying whose it was. A lock still held by a running "
        "dapctl is refused unless --force.",
        ["dapctl force-unlock dapctl.toml", "dapctl force-unlock dapctl.toml --force"],
    )
    config_arg(sub)
    sub.add_argument(
        "--force",
        action="store_true",
        help="remove the lock even though a process still holds it (it may be hung)",
    )
    json_flag(sub, "the lock's former holder")

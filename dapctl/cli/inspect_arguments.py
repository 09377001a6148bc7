"""The grammar of the commands that inspect rather than run: ``init``, ``tables``,
``describe``, ``token``, ``config-schema`` and ``emulator``.

Each ``add_NAME(commands)`` adds one command's parser to the top-level subparsers. The
emulator's many flags live beside the emulator and are added only when ``dapctl emulator``
is parsed or its help shown (``DeferringParser``), so building the grammar never imports it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dapctl.cli.shared_arguments import (
    DeferringParser,
    add_command,
    config_arg,
    json_flag,
    profile_arg,
)


def add_init(commands: Any) -> None:
    sub = add_command(
        commands,
        "init",
        "Write a commented starter config (refuses to overwrite a file).",
        ["dapctl init", "dapctl init exports/dapctl.toml", "dapctl init exports/"],
    )
    sub.add_argument(
        "path",
        nargs="?",  # a str: Path would drop the trailing separator that marks a folder
        default="dapctl.toml",
        metavar="PATH",
        help="where to write it (default dapctl.toml); a folder, or a path ending in /, gets "
        "dapctl.toml inside; missing folders are created (0700)",
    )


def add_tables(commands: Any) -> None:
    sub = add_command(
        commands,
        "tables",
        "List the tables a profile can read, per namespace.",
        [
            "dapctl tables dapctl.toml --profile univ_a",
            "dapctl tables dapctl.toml --profile univ_a --namespace canvas_logs --json",
        ],
    )
    config_arg(sub)
    profile_arg(sub)
    sub.add_argument(
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="this namespace (repeatable); default: those the profile's targets use",
    )
    json_flag(sub, "the tables")


def add_describe(commands: Any) -> None:
    sub = add_command(
        commands,
        "describe",
        "Show a table's schema: its version and columns with their types.",
        [
            "dapctl describe dapctl.toml --profile univ_a canvas.accounts",
            "dapctl describe dapctl.toml canvas.accounts --json",
            "dapctl describe dapctl.toml canvas.accounts --output schemas/accounts.json",
        ],
    )
    config_arg(sub)
    sub.add_argument("table", metavar="NAMESPACE.TABLE", help="e.g. canvas.accounts")
    profile_arg(sub)
    sub.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help="write the JSON document (with the server's JSON Schema) to FILE",
    )
    json_flag(sub, "the schema")


def add_token(commands: Any) -> None:
    sub = add_command(
        commands,
        "token",
        "Print a valid access token for a profile on stdout and nothing else, for scripts "
        "that call the API directly.",
        [
            "dapctl token dapctl.toml --profile univ_a",
            'curl -H "Authorization: Bearer $(dapctl token dapctl.toml --profile univ_a)" \\',
            "  https://api-gateway.instructure.com/dap/query/canvas/table",
        ],
    )
    config_arg(sub)
    sub.add_argument(
        "--profile", metavar="P", help="the profile to log in as (default: the only profile)"
    )


def add_config_schema(commands: Any) -> None:
    add_command(
        commands,
        "config-schema",
        "Print the config file's JSON Schema (for editors' TOML support).",
        ["dapctl config-schema > dapctl.schema.json"],
    )


def add_emulator(commands: Any) -> None:
    sub = add_command(
        commands,
        "emulator",
        "Run a local emulator of the DAP API on 127.0.0.1 (for trying configs offline).",
        ["dapctl emulator --port 8765", "dapctl emulator --help   # every fault knob"],
    )
    assert isinstance(sub, DeferringParser)
    sub.defer(_emulator_flags)


def _emulator_flags(parser: argparse.ArgumentParser) -> None:
    from dapctl.emulator import cli as emulator_cli  # only when the command is used

    emulator_cli.configure_parser(parser)

"""The command line's grammar: every command, argument, flag, help text and example.

``build_parser()`` returns the argparse parser ``cli.main`` uses. Each command stores its
name in ``args.command`` (``"state list"`` for a subcommand); ``cli`` maps names to
handlers, so the grammar only describes the language and never runs anything. Every
command takes the shared flags ``--debug``, ``--log-level``, ``--log-format``,
``--log-file`` and ``--no-color``, before or after its name (``dapctl --debug plan x`` is
``dapctl plan x --debug``); commands that report something take ``--json``, which may come
first too. A usage error is reported with the usage of the command it concerns.

This module holds the top-level parser; each group's commands are described in
``run_arguments`` (validate, plan, apply), ``state_arguments`` (state, force-unlock) and
``inspect_arguments`` (init, tables, describe, token, config-schema, emulator),
``import_arguments`` (import), ``operate_arguments`` (status, runs), from the
pieces in ``shared_arguments``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from dapctl import __version__
from dapctl.cli.import_arguments import add_import
from dapctl.cli.inspect_arguments import (
    add_config_schema,
    add_describe,
    add_emulator,
    add_init,
    add_tables,
    add_token,
)
from dapctl.cli.operate_arguments import add_runs, add_show, add_status, default_runs_list
from dapctl.cli.run_arguments import add_apply, add_plan, add_validate
from dapctl.cli.shared_arguments import DeferringParser, examples_epilog, shared_flags
from dapctl.cli.state_arguments import add_force_unlock, add_state

EXIT_STATUSES = """\
exit statuses:
  0    success (plan --detailed-exitcode: nothing to do)
  1    an error: bad config, missing credential, locked state, a failed or skipped step
  2    plan --detailed-exitcode: steps are pending
  3    an internal error (a bug: rerun with --debug and report it)
  4    status: a table's data is older than its warn_after
  5    status: older than its error_after, or never applied
  130  interrupted (Ctrl-C); the next apply resumes the jobs it recorded
  143  terminated by SIGTERM (docker stop, systemd, Kubernetes), handled as Ctrl-C
"""


def build_parser() -> argparse.ArgumentParser:
    parser = CommandLineParser(
        prog="dapctl",
        description="Declarative, resumable exports from Instructure's Data Access Platform "
        "(Canvas Data 2). Declare profiles and targets in a TOML file; `plan` shows what "
        "would run, `apply` runs it: it writes each table to files (local or in an s3://, "
        "gs:// or az:// bucket) or to a PostgreSQL or DuckDB database, and records its "
        "watermark in the state (a file, PostgreSQL or S3) so the next run continues.",
        epilog=examples_epilog(
            "dapctl init dapctl.toml",
            "dapctl validate dapctl.toml",
            "dapctl plan dapctl.toml --profile univ_a",
            "dapctl apply dapctl.toml",
        )
        + "\n\n"
        + EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"dapctl {__version__}")
    shared_flags(parser.add_argument_group("logging and display (before or after COMMAND)"))
    parser.add_argument(
        "--json",
        action="store_true",
        help="for a command that reports something: print it as one JSON document",
    )
    commands = parser.add_subparsers(
        title="commands", metavar="COMMAND", required=True, parser_class=DeferringParser
    )
    add_init(commands)
    add_validate(commands)
    add_plan(commands)
    add_apply(commands)
    add_import(commands)
    add_status(commands)
    add_runs(commands)
    add_show(commands)
    add_tables(commands)
    add_describe(commands)
    add_state(commands)
    add_force_unlock(commands)
    add_token(commands)
    add_config_schema(commands)
    add_emulator(commands)
    return parser


class CommandLineParser(argparse.ArgumentParser):
    """The top-level parser, which reports a usage error with the usage of the command it
    concerns.

    argparse hands a subcommand's unknown arguments up to the top-level parser (a subparser
    parses with ``parse_known_args``), whose ``parse_args`` then refuses them with the
    top-level usage: ``dapctl plan x --bogus`` showed ``usage: dapctl [-h] ... COMMAND``,
    which says nothing about plan's flags. Here the command's own parser reports them.
    """

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:
        words = default_runs_list(sys.argv[1:] if args is None else args)
        parsed, extras = self.parse_known_args(words, namespace)
        command = _command_parser(self, parsed.command.split())
        if extras:
            command.error("unrecognized arguments: " + " ".join(extras))
        if parsed.json and "--json" not in command._option_string_actions:
            command.error(f"--json: `dapctl {parsed.command}` prints no JSON document")
        return parsed


def _command_parser(parser: argparse.ArgumentParser, words: Sequence[str]) -> Any:
    """The parser of the (sub)command ``words`` names, such as ``["state", "list"]``."""
    for word in words:
        [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        parser = commands.choices[word]
    return parser

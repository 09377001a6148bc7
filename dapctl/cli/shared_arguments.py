"""The pieces every command's grammar is built from.

``add_command`` adds a command's parser (its summary, examples and the shared flags);
``shared_flags`` are the flags every command takes, before or after its name;
``DeferringParser`` adds a command's arguments only when it is used. The arguments several
commands take (the config file, ``--json``, the step selection, ``--lock-timeout``...) and
the value types that check numbers (``seconds``, ``positive_int``) are here too, so each
command group's module (``run_arguments``, ``state_arguments``, ``inspect_arguments``) says
only what is its own.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dapctl.cli.logs import LEVELS


class DeferringParser(argparse.ArgumentParser):
    """A parser that can add some of its arguments only when it is first used (to parse or
    to show help), so that building the whole grammar stays cheap: the emulator's flags
    live beside the emulator, and importing it costs every command ~50 ms."""

    _deferred: Callable[[argparse.ArgumentParser], None] | None = None

    def defer(self, configure: Callable[[argparse.ArgumentParser], None]) -> None:
        self._deferred = configure

    def _configure(self) -> None:
        configure, self._deferred = self._deferred, None
        if configure is not None:
            configure(self)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        self._configure()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self._configure()
        return super().format_usage()

    def format_help(self) -> str:
        self._configure()
        return super().format_help()


def add_command(
    commands: Any, name: str, summary: str, examples: Sequence[str], *, command: str = ""
) -> argparse.ArgumentParser:
    sub: argparse.ArgumentParser = commands.add_parser(
        name,
        help=summary,
        description=summary,
        epilog=examples_epilog(*examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub.set_defaults(command=command or name)
    shared_flags(sub.add_argument_group("logging and display"), after_command=True)
    return sub


def shared_flags(group: Any, *, after_command: bool = False) -> None:
    """The flags every command takes: on the top-level parser with their defaults, and on
    each command's parser with ``argparse.SUPPRESS``, so that a flag given after the command
    sets its value and one left out leaves the value given before it (or the default)."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if after_command else value

    group.add_argument(
        "--debug",
        action="store_true",
        default=default(False),
        help="log details and show tracebacks",
    )
    group.add_argument(
        "--log-level",
        choices=list(LEVELS),
        default=default(None),
        help="least severe records logged (default warning; --debug: debug)",
    )
    group.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=default("text"),
        help="log records as text or as JSON lines (default text)",
    )
    group.add_argument(
        "--log-file",
        type=Path,
        default=default(None),
        metavar="PATH",
        help="append log records to PATH (created 0600); the console keeps warnings",
    )
    group.add_argument(
        "--no-color",
        action="store_true",
        default=default(False),
        help="no colour, even on a terminal",
    )


def examples_epilog(*lines: str) -> str:
    return "examples:\n" + textwrap.indent("\n".join(lines), "  ")


def config_arg(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("config", type=Path, metavar="CONFIG", help="the dapctl TOML file")


def json_flag(sub: argparse.ArgumentParser, what: str) -> None:
    # SUPPRESS: `dapctl --json plan x` sets it before the command (default False there).
    sub.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help=f"print {what} as one JSON document",
    )


def selection_args(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="P",
        help="only this profile (repeatable); default: every profile",
    )
    sub.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="ADDR_OR_GLOB",
        help="only steps whose address (profile/target/namespace.table), profile/target or "
        "target name matches; globs allowed (repeatable)",
    )
    sub.add_argument(
        "--replace",
        action="append",
        default=[],
        metavar="ADDR_OR_GLOB",
        help="take a fresh snapshot of the steps this selects (as --target does), although "
        "they have a watermark or a pending job; the other steps run as planned (repeatable)",
    )


def require_credentials(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--require-credentials",
        action="store_true",
        help="fail when a profile's credential variable or secret file is missing "
        "(default: a warning, so a lint job without secrets can run; apply always needs them)",
    )


def lock_timeout(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--lock-timeout",
        type=seconds,
        default=0.0,
        metavar="S",
        help="wait up to S seconds for another dapctl's lock on the state (default 0); "
        "applies sharing a PostgreSQL state take no lock (they split the steps as workers)",
    )


def profile_arg(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--profile", metavar="P", help="the profile to ask as (default: the only profile)"
    )


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value < 10**7:
        raise argparse.ArgumentTypeError(f"{text!r}: give 0 or more seconds")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number from 1 to 64")
    return value

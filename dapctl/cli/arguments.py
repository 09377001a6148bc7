"""The command line's grammar: every command, argument, flag, help text and example.

``build_parser()`` returns the argparse parser ``cli.main`` uses. Each command stores its
name in ``args.command`` (``"state list"`` for a subcommand); ``cli`` maps names to
handlers, so this module only describes the language and never runs anything. Every
command takes the shared flags ``--debug``, ``--log-level``, ``--log-format``,
``--log-file`` and ``--no-color``, before or after its name (``dapctl --debug plan x`` is
``dapctl plan x --debug``); commands that report something take ``--json``, which may come
first too. A usage error is reported with the usage of the command it concerns.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dapctl import __version__
from dapctl.cli.logs import LEVELS

EXIT_STATUSES = """\
exit statuses:
  0    success (plan --detailed-exitcode: nothing to do)
  1    an error: bad config, missing credential, locked state, a failed or skipped step
  2    plan --detailed-exitcode: steps are pending
  3    an internal error (a bug: rerun with --debug and report it)
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
        epilog=_examples(
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
    _shared_flags(parser.add_argument_group("logging and display (before or after COMMAND)"))
    parser.add_argument(
        "--json",
        action="store_true",
        help="for a command that reports something: print it as one JSON document",
    )
    commands = parser.add_subparsers(
        title="commands", metavar="COMMAND", required=True, parser_class=DeferringParser
    )
    _add_init(commands)
    _add_validate(commands)
    _add_plan(commands)
    _add_apply(commands)
    _add_tables(commands)
    _add_describe(commands)
    _add_state(commands)
    _add_force_unlock(commands)
    _add_token(commands)
    _add_config_schema(commands)
    _add_emulator(commands)
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
        parsed, extras = self.parse_known_args(args, namespace)
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


def _command(
    commands: Any, name: str, summary: str, examples: Sequence[str], *, command: str = ""
) -> argparse.ArgumentParser:
    sub: argparse.ArgumentParser = commands.add_parser(
        name,
        help=summary,
        description=summary,
        epilog=_examples(*examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub.set_defaults(command=command or name)
    _shared_flags(sub.add_argument_group("logging and display"), after_command=True)
    return sub


def _shared_flags(group: Any, *, after_command: bool = False) -> None:
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


def _examples(*lines: str) -> str:
    return "examples:\n" + textwrap.indent("\n".join(lines), "  ")


def _config_arg(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("config", type=Path, metavar="CONFIG", help="the dapctl TOML file")


def _json_flag(sub: argparse.ArgumentParser, what: str) -> None:
    # SUPPRESS: `dapctl --json plan x` sets it before the command (default False there).
    sub.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help=f"print {what} as one JSON document",
    )


def _selection_args(sub: argparse.ArgumentParser) -> None:
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


def _add_init(commands: Any) -> None:
    sub = _command(
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


def _add_validate(commands: Any) -> None:
    sub = _command(
        commands,
        "validate",
        "Check a config file and its credentials' sources, without touching the network.",
        ["dapctl validate dapctl.toml", "dapctl validate dapctl.toml --json"],
    )
    _config_arg(sub)
    _json_flag(sub, "the verdict, profiles and targets")
    _require_credentials(sub)


def _add_plan(commands: Any) -> None:
    sub = _command(
        commands,
        "plan",
        "Show the job each table needs next (snapshot, incremental or resume), from the "
        "config and the state (database targets' records are read from their databases). "
        "Talks to no DAP server unless --refresh.",
        [
            "dapctl plan dapctl.toml",
            "dapctl plan dapctl.toml --refresh   # also each database table's schema changes",
            "dapctl plan dapctl.toml --profile univ_a --target 'univ_a/core/canvas.*'",
            "dapctl plan dapctl.toml --json",
            "dapctl plan dapctl.toml --detailed-exitcode   # exit 2 when steps are pending",
        ],
    )
    _config_arg(sub)
    _selection_args(sub)
    _json_flag(sub, "the plan")
    sub.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 0 when nothing would run, 2 when steps are pending, 1 on error",
    )
    sub.add_argument(
        "--refresh",
        action="store_true",
        help="fetch each database table's DAP schema and show the column changes the next "
        "apply makes (needs the profiles' credentials)",
    )
    _require_credentials(sub)


def _require_credentials(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--require-credentials",
        action="store_true",
        help="fail when a profile's credential variable or secret file is missing "
        "(default: a warning, so a lint job without secrets can run; apply always needs them)",
    )


def _add_apply(commands: Any) -> None:
    sub = _command(
        commands,
        "apply",
        "Run the plan: start or resume each table's query job, download its parts, write the "
        "declared output whole or not at all (a file, a bucket object or a database table), "
        "and record the watermark in the state.",
        [
            "dapctl apply dapctl.toml",
            "dapctl apply dapctl.toml --profile univ_a --target 'univ_a/core/*' --json",
            "dapctl apply dapctl.toml --replace univ_a/core/canvas.users  # re-snapshot one",
            "dapctl apply dapctl.toml --log-format json --log-file /var/log/dapctl.jsonl",
            "dapctl apply dapctl.toml --no-wait    # start jobs, record them, exit",
            "dapctl apply dapctl.toml              # ... later: collect them",
        ],
    )
    _config_arg(sub)
    _selection_args(sub)
    _json_flag(sub, "the results")
    sub.add_argument(
        "--no-progress",
        action="store_true",
        help="no live progress on stderr (it shows only when stderr is a terminal)",
    )
    sub.add_argument(
        "--no-wait",
        action="store_true",
        help="start the jobs, record them in the state and exit; a later apply collects them",
    )
    _lock_timeout(sub)
    sub.add_argument(
        "--concurrency",
        type=_positive_int,
        metavar="N",
        help="tables collected at once (default: settings.concurrency)",
    )
    sub.add_argument(
        "--timeout",
        "--job-timeout",
        dest="job_timeout",
        type=_seconds,
        metavar="S",
        help="give up waiting for a job after S seconds; the step fails and the next apply "
        "resumes the job (default: wait as long as it runs)",
    )


def _lock_timeout(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--lock-timeout",
        type=_seconds,
        default=0.0,
        metavar="S",
        help="wait up to S seconds for another dapctl's lock on the state (default 0); "
        "applies sharing a PostgreSQL state take no lock (they split the steps as workers)",
    )


def _profile_arg(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--profile", metavar="P", help="the profile to ask as (default: the only profile)"
    )


def _add_tables(commands: Any) -> None:
    sub = _command(
        commands,
        "tables",
        "List the tables a profile can read, per namespace.",
        [
            "dapctl tables dapctl.toml --profile univ_a",
            "dapctl tables dapctl.toml --profile univ_a --namespace canvas_logs --json",
        ],
    )
    _config_arg(sub)
    _profile_arg(sub)
    sub.add_argument(
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="this namespace (repeatable); default: those the profile's targets use",
    )
    _json_flag(sub, "the tables")


def _add_describe(commands: Any) -> None:
    sub = _command(
        commands,
        "describe",
        "Show a table's schema: its version and columns with their types.",
        [
            "dapctl describe dapctl.toml --profile univ_a canvas.accounts",
            "dapctl describe dapctl.toml canvas.accounts --json",
            "dapctl describe dapctl.toml canvas.accounts --output schemas/accounts.json",
        ],
    )
    _config_arg(sub)
    sub.add_argument("table", metavar="NAMESPACE.TABLE", help="e.g. canvas.accounts")
    _profile_arg(sub)
    sub.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help="write the JSON document (with the server's JSON Schema) to FILE",
    )
    _json_flag(sub, "the schema")


def _add_state(commands: Any) -> None:
    parent: argparse.ArgumentParser = commands.add_parser(
        "state",
        help="Inspect the state, forget or rename its addresses, or move it elsewhere.",
        description="Work on the state where [settings] state keeps it: a local file "
        "(default dapctl.state.json), a PostgreSQL database (postgresql://) or an S3 bucket "
        "(s3://). list and show inspect it; rm forgets a step's watermark so the next apply "
        "takes a new snapshot of that table; mv renames addresses after a target or profile "
        "was renamed; migrate copies the state to another backend. Database targets' "
        "records, kept in their own databases, are listed and forgotten there too.",
        epilog=_examples(
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
    listing = _command(
        state,
        "list",
        "List every address in the state.",
        ["dapctl state list dapctl.toml"],
        command="state list",
    )
    _config_arg(listing)
    _json_flag(listing, "the state's steps")
    show = _command(
        state,
        "show",
        "Show what the state remembers about one address.",
        ["dapctl state show dapctl.toml univ_a/core/canvas.accounts --json"],
        command="state show",
    )
    _config_arg(show)
    show.add_argument(
        "address", metavar="ADDRESS", help="profile/target/namespace.table, or a glob"
    )
    _json_flag(show, "the step (with a glob: the steps)")
    remove = _command(
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
    _config_arg(remove)
    remove.add_argument(
        "addresses", nargs="+", metavar="ADDRESS", help="addresses (or globs) to forget"
    )
    _lock_timeout(remove)
    _json_flag(remove, "what was forgotten")
    rename = _command(
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
    _config_arg(rename)
    rename.add_argument("old", metavar="OLD", help="the address (or glob) in the state")
    rename.add_argument("new", metavar="NEW", help="its new address")
    _lock_timeout(rename)
    _json_flag(rename, "what was moved")
    _add_state_migrate(state)


def _add_state_migrate(state: Any) -> None:
    sub = _command(
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
    _config_arg(sub)
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
    _lock_timeout(sub)
    _json_flag(sub, "what was copied")


def _add_force_unlock(commands: Any) -> None:
    sub = _command(
        commands,
        "force-unlock",
        "Remove a state lock left behind, saying whose it was. A lock still held by a running "
        "dapctl is refused unless --force.",
        ["dapctl force-unlock dapctl.toml", "dapctl force-unlock dapctl.toml --force"],
    )
    _config_arg(sub)
    sub.add_argument(
        "--force",
        action="store_true",
        help="remove the lock even though a process still holds it (it may be hung)",
    )
    _json_flag(sub, "the lock's former holder")


def _add_token(commands: Any) -> None:
    sub = _command(
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
    _config_arg(sub)
    sub.add_argument(
        "--profile", metavar="P", help="the profile to log in as (default: the only profile)"
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value < 10**7:
        raise argparse.ArgumentTypeError(f"{text!r}: give 0 or more seconds")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number from 1 to 64")
    return value


def _add_config_schema(commands: Any) -> None:
    _command(
        commands,
        "config-schema",
        "Print the config file's JSON Schema (for editors' TOML support).",
        ["dapctl config-schema > dapctl.schema.json"],
    )


def _add_emulator(commands: Any) -> None:
    sub = _command(
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

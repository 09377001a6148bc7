"""The command line: parse arguments, call the library, render the result, return an exit code.

``main(argv)`` is the only place that prints or decides an exit status; everything else
raises ``DapctlError`` subclasses with a message a user can act on. An unexpected exception is
a bug: a one-line notice (the traceback with ``--debug``) and exit status 3. The environment
and output streams are parameters so tests drive the CLI in-process.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from dapctl import __version__
from dapctl.config import Config
from dapctl.credentials import Credentials, resolve_profiles
from dapctl.errors import DapctlError, ExitStatus
from dapctl.loading import LoadedConfig, load_config
from dapctl.plan import Plan, plan, plural
from dapctl.state import LocalStateStore, State

log = logging.getLogger("dapctl")

Handler = Callable[[argparse.Namespace, "Context"], int]


class Context:
    """What a command may touch: its streams and the environment."""

    def __init__(self, *, stdout: TextIO, stderr: TextIO, environ: Mapping[str, str]) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.environ = environ

    def out(self, text: str) -> None:
        print(text, file=self.stdout)

    def err(self, text: str) -> None:
        print(text, file=self.stderr)


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    ctx = Context(
        stdout=stdout or sys.stdout,
        stderr=stderr or sys.stderr,
        environ=os.environ if environ is None else environ,
    )
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help, --version and usage errors
        return int(exc.code or 0)
    _configure_logging(ctx.stderr, debug=args.debug)
    handler: Handler = args.handler
    try:
        return handler(args, ctx)
    except DapctlError as exc:
        ctx.err(f"Error: {exc}")
        return ExitStatus.ERROR
    except KeyboardInterrupt:
        ctx.err("Interrupted.")
        return ExitStatus.INTERRUPTED
    except Exception:
        log.debug("unexpected error", exc_info=True)
        ctx.err(
            "Internal error: dapctl hit an unexpected problem (a bug). "
            + ("" if args.debug else "Run again with --debug for the traceback, and report it.")
        )
        return ExitStatus.INTERNAL_ERROR


def _configure_logging(stream: TextIO, *, debug: bool) -> None:
    logger = logging.getLogger("dapctl")
    for old in list(logger.handlers):
        logger.removeHandler(old)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    logger.propagate = False


# ---- commands ---------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace, ctx: Context) -> int:
    loaded = _load(args)
    _resolve(loaded, ctx, profiles=list(loaded.config.profiles))
    config = loaded.config
    counts = f"{plural(len(config.profiles), 'profile')}, {plural(len(config.targets), 'target')}"
    ctx.out(f"{loaded.path}: valid ({counts})")
    return ExitStatus.SUCCESS


def cmd_plan(args: argparse.Namespace, ctx: Context) -> int:
    loaded = _load(args)
    state = LocalStateStore(loaded.state_path).read() or State()
    result: Plan = plan(loaded.config, state, profiles=args.profile, targets=args.target)
    _resolve(loaded, ctx, profiles=sorted({step.profile for step in result.steps}))
    if args.json:
        ctx.out(json.dumps(result.to_json(), indent=2))
    else:
        ctx.out(result.render_text())
    if args.detailed_exitcode and result.has_changes:
        return ExitStatus.CHANGES_PENDING
    return ExitStatus.SUCCESS


def cmd_config_schema(args: argparse.Namespace, ctx: Context) -> int:
    ctx.out(config_schema_text())
    return ExitStatus.SUCCESS


def config_schema_text() -> str:
    """The config's JSON Schema, exactly as ``schemas/dapctl.schema.json`` holds it."""
    return json.dumps(Config.model_json_schema(), indent=2, ensure_ascii=False)


def _load(args: argparse.Namespace) -> LoadedConfig:
    loaded = load_config(args.config)
    for warning in loaded.warnings:
        log.warning(warning)
    return loaded


def _resolve(
    loaded: LoadedConfig, ctx: Context, *, profiles: Sequence[str]
) -> dict[str, Credentials | None]:
    """Resolve the credentials of the profiles about to be used (no network)."""
    if not profiles:
        return {}
    resolved = resolve_profiles(
        loaded.config, profiles, environ=ctx.environ, base_dir=loaded.base_dir
    )
    for creds in resolved.values():
        for warning in creds.warnings if creds else ():
            log.warning(warning)
    return resolved


# ---- parser -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dapctl",
        description="Declarative, resumable exports from Instructure's Data Access Platform "
        "(Canvas Data 2). Declare profiles and targets in a TOML file; `plan` shows what "
        "would run, `apply` runs it and records watermarks so the next run continues.",
        epilog=_examples(
            "dapctl validate dapctl.toml",
            "dapctl plan dapctl.toml --profile univ_a",
            "dapctl apply dapctl.toml",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"dapctl {__version__}")
    parser.set_defaults(debug=False)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _add_validate(commands)
    _add_plan(commands)
    _add_config_schema(commands)
    # _add_emulator(commands)
    return parser


def _command(
    commands: Any, name: str, handler: Handler, summary: str, examples: Sequence[str], **kw: Any
) -> argparse.ArgumentParser:
    sub: argparse.ArgumentParser = commands.add_parser(
        name,
        help=summary,
        description=summary,
        epilog=_examples(*examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        **kw,
    )
    sub.set_defaults(handler=handler)
    sub.add_argument("--debug", action="store_true", help="log details and show tracebacks")
    return sub


def _examples(*lines: str) -> str:
    return "examples:\n" + textwrap.indent("\n".join(lines), "  ")


def _config_arg(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("config", type=Path, metavar="CONFIG", help="the dapctl TOML file")


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


def _add_validate(commands: Any) -> None:
    sub = _command(
        commands,
        "validate",
        cmd_validate,
        "Check a config file and its credentials' sources, without touching the network.",
        ["dapctl validate dapctl.toml"],
    )
    _config_arg(sub)


def _add_plan(commands: Any) -> None:
    sub = _command(
        commands,
        "plan",
        cmd_plan,
        "Show the job each table needs next (snapshot, incremental or resume), from the "
        "config and the state file. Talks to no server.",
        [
            "dapctl plan dapctl.toml",
            "dapctl plan dapctl.toml --profile univ_a --target 'univ_a/core/canvas.*'",
            "dapctl plan dapctl.toml --json",
            "dapctl plan dapctl.toml --detailed-exitcode   # exit 2 when steps are pending",
        ],
    )
    _config_arg(sub)
    _selection_args(sub)
    sub.add_argument("--json", action="store_true", help="print the plan as JSON")
    sub.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 0 when nothing would run, 2 when steps are pending, 1 on error",
    )


def _add_config_schema(commands: Any) -> None:
    _command(
        commands,
        "config-schema",
        cmd_config_schema,
        "Print the config file's JSON Schema (for editors' TOML support).",
        ["dapctl config-schema > dapctl.schema.json"],
    )


def _add_emulator(commands: Any) -> None:
    from dapctl.emulator import cli as emulator_cli

    sub = _command(
        commands,
        "emulator",
        lambda args, ctx: emulator_cli.run(args),
        "Run a local emulator of the DAP API on 127.0.0.1 (for trying configs offline).",
        ["dapctl emulator --port 8765", "dapctl emulator --help   # every fault knob"],
    )
    emulator_cli.configure_parser(sub)

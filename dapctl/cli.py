"""The command line: parse arguments, call the library, render the result, return an exit code.

``main(argv)`` is the only place that prints or decides an exit status; everything else
raises ``DapctlError`` subclasses with a message a user can act on. An unexpected exception is
a bug: a one-line notice (the traceback with ``--debug``) and exit status 3. The environment
and output streams are parameters so tests drive the CLI in-process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from dapctl import __version__
from dapctl.apply import ApplyOptions, run_apply
from dapctl.config import Config
from dapctl.connect import fetch_token
from dapctl.credentials import resolve_used
from dapctl.errors import ConfigError, DapctlError, ExitStatus
from dapctl.loading import LoadedConfig, load_config
from dapctl.plan import Plan, plan, plural
from dapctl.results import StepResult, all_ok, summary
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
        # argparse prints --help, --version and usage errors to sys.stdout/stderr itself.
        with contextlib.redirect_stdout(ctx.stdout), contextlib.redirect_stderr(ctx.stderr):
            args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help, --version and usage errors
        # argparse's usage errors exit 2, which `plan --detailed-exitcode` uses for "changes
        # pending": a script must be able to tell a typo from pending work.
        return ExitStatus.SUCCESS if not exc.code else ExitStatus.ERROR
    with _logging_to(ctx.stderr, debug=args.debug):
        return _run(args, ctx)


def _run(args: argparse.Namespace, ctx: Context) -> int:
    handler: Handler = args.handler
    try:
        return handler(args, ctx)
    except DapctlError as exc:
        ctx.err(f"Error: {exc}")
        return ExitStatus.ERROR
    except KeyboardInterrupt:
        ctx.err("Interrupted.")
        return ExitStatus.INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`dapctl plan ... | head`): nothing left to say to it.
        return ExitStatus.ERROR
    except Exception:
        log.debug("unexpected error", exc_info=True)
        ctx.err(
            "Internal error: dapctl hit an unexpected problem (a bug). "
            + ("" if args.debug else "Run again with --debug for the traceback, and report it.")
        )
        return ExitStatus.INTERNAL_ERROR


@contextlib.contextmanager
def _logging_to(stream: TextIO, *, debug: bool) -> Iterator[None]:
    """Send dapctl's log records to ``stream`` for one command, then stop."""
    logger = logging.getLogger("dapctl")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# ---- commands ---------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace, ctx: Context) -> int:
    loaded = _load(args)
    resolve_used(loaded, environ=ctx.environ, names=list(loaded.config.profiles))
    config = loaded.config
    counts = f"{plural(len(config.profiles), 'profile')}, {plural(len(config.targets), 'target')}"
    ctx.out(f"{loaded.path}: valid ({counts})")
    return ExitStatus.SUCCESS


def cmd_plan(args: argparse.Namespace, ctx: Context) -> int:
    loaded = _load(args)
    state = LocalStateStore(loaded.state_path).read() or State()
    result: Plan = plan(loaded.config, state, profiles=args.profile, targets=args.target)
    resolve_used(loaded, environ=ctx.environ, names=sorted({step.profile for step in result.steps}))
    if args.json:
        ctx.out(json.dumps(result.to_json(), indent=2))
    else:
        ctx.out(result.render_text())
    if args.detailed_exitcode and result.has_changes:
        return ExitStatus.CHANGES_PENDING
    return ExitStatus.SUCCESS


def cmd_apply(args: argparse.Namespace, ctx: Context) -> int:
    loaded = _load(args)
    options = ApplyOptions(
        concurrency=args.concurrency or loaded.config.settings.concurrency,
        no_wait=args.no_wait,
        job_timeout=args.job_timeout,
        targets=args.target,
    )

    def show_plan(steps: Plan) -> None:
        if not args.json:
            ctx.out(f"{steps.render_text()}\n")

    def show(result: StepResult) -> None:
        if not args.json:
            ctx.out(result.render())

    results = run_apply(
        loaded,
        environ=ctx.environ,
        profiles=args.profile,
        options=options,
        lock_timeout=args.lock_timeout,
        on_plan=show_plan,
        on_result=show,
    )
    ok = all_ok(results)
    if args.json:
        document = {"ok": ok, "results": [r.to_json() for r in _in_plan_order(results)]}
        ctx.out(json.dumps(document, indent=2))
    else:
        ctx.out(f"\n{summary(results)}")
    return ExitStatus.SUCCESS if ok else ExitStatus.ERROR


def _in_plan_order(results: Sequence[StepResult]) -> list[StepResult]:
    return sorted(results, key=lambda r: r.address)


def cmd_token(args: argparse.Namespace, ctx: Context) -> int:
    loaded = _load(args)
    if loaded.config.profiles.get(args.profile) is None:
        raise ConfigError(
            f"--profile {args.profile}: no such profile; profiles are: "
            f"{', '.join(loaded.config.profiles)}"
        )
    if loaded.config.profiles[args.profile].emulator:
        raise ConfigError(
            f"profile {args.profile} uses the embedded emulator, which stops when this "
            "command does: its token would be useless",
            hint="run `dapctl emulator` and point a profile's base_url at it",
        )
    credentials = resolve_used(loaded, environ=ctx.environ, names=[args.profile])[args.profile]
    assert credentials is not None  # only emulator profiles resolve to None
    ctx.out(fetch_token(loaded.config, credentials))
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
    _add_apply(commands)
    _add_token(commands)
    _add_config_schema(commands)
    _add_emulator(commands)
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


def _add_apply(commands: Any) -> None:
    sub = _command(
        commands,
        "apply",
        cmd_apply,
        "Run the plan: start or resume each table's query job, download its parts, write the "
        "declared output file atomically, and record the watermark in the state file.",
        [
            "dapctl apply dapctl.toml",
            "dapctl apply dapctl.toml --profile univ_a --target 'univ_a/core/*' --json",
            "dapctl apply dapctl.toml --no-wait    # start jobs, record them, exit",
            "dapctl apply dapctl.toml              # ... later: collect them",
        ],
    )
    _config_arg(sub)
    _selection_args(sub)
    sub.add_argument("--json", action="store_true", help="print one JSON document of results")
    sub.add_argument(
        "--no-wait",
        action="store_true",
        help="start the jobs, record them in the state and exit; a later apply collects them",
    )
    sub.add_argument(
        "--lock-timeout",
        type=_seconds,
        default=0.0,
        metavar="S",
        help="wait up to S seconds for another apply's lock on the state (default 0)",
    )
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


def _add_token(commands: Any) -> None:
    sub = _command(
        commands,
        "token",
        cmd_token,
        "Print a valid access token for a profile on stdout and nothing else, for scripts "
        "that call the API directly.",
        [
            "dapctl token dapctl.toml --profile univ_a",
            'curl -H "Authorization: Bearer $(dapctl token dapctl.toml --profile univ_a)" \\',
            "  https://api-gateway.instructure.com/dap/query/canvas/table",
        ],
    )
    _config_arg(sub)
    sub.add_argument("--profile", required=True, metavar="P", help="the profile to log in as")


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

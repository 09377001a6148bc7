"""The command line: parse arguments, call the library, render the result, return an exit code.

``main(argv)`` is the only place that prints or decides an exit status; everything else
raises ``DapctlError`` subclasses with a message a user can act on. An unexpected exception is
a bug: a one-line notice (the traceback with ``--debug``) and exit status 3. The environment
and output streams (and the importer that looks for optional extras) are parameters so tests
drive the CLI in-process. Results go to stdout
(one JSON document with ``--json``, an error document too when a ``--json`` command fails);
messages, logs and live progress go to stderr. Colour and progress appear only on a
terminal. The grammar lives in ``arguments``; the exit statuses in ``errors.ExitStatus``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import TextIO

from dapctl.cli.arguments import build_parser
from dapctl.cli.commands import HANDLERS
from dapctl.cli.context import Console, Context, emit_json
from dapctl.cli.logs import LEVELS, logging_to
from dapctl.cli.style import Style
from dapctl.errors import DapctlError, ExitStatus, Terminated
from dapctl.loading import Importer

__all__ = ["build_parser", "main"]

log = logging.getLogger("dapctl")


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
    importer: Importer | None = None,
) -> int:
    ctx = Context(
        stdout=stdout or sys.stdout,
        stderr=stderr or sys.stderr,
        environ=os.environ if environ is None else environ,
        importer=importer or importlib.import_module,
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
    ctx.style = Style.for_stream(ctx.stdout, ctx.environ, disabled=args.no_color)
    level = logging.DEBUG if args.debug else LEVELS[args.log_level or "warning"]
    try:
        with logging_to(
            Console(ctx),
            level=level,
            fmt=args.log_format,
            file=args.log_file,
            progress_shows=lambda: ctx.progress is not None,
        ):
            return _run(args, ctx)
    except DapctlError as exc:  # the log file cannot be opened
        return _failed(args, ctx, exc)


def _run(args: argparse.Namespace, ctx: Context) -> int:
    handler = HANDLERS[args.command]
    try:
        with _sigterm_as_interrupt():
            return handler(args, ctx)
    except DapctlError as exc:
        return _failed(args, ctx, exc)
    except KeyboardInterrupt as exc:
        return _interrupted(args, ctx, terminated=isinstance(exc, Terminated))
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
def _sigterm_as_interrupt() -> Iterator[None]:
    """While a command runs, SIGTERM stops it the way Ctrl-C does (only the main thread can
    set a signal handler; elsewhere, as in tests that call ``main``, nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: object) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupted(args: argparse.Namespace, ctx: Context, *, terminated: bool) -> int:
    cause = "Terminated (SIGTERM)" if terminated else "Interrupted"
    message = cause + (
        ": stopped starting work; jobs already started are recorded in the state, and the "
        "next apply resumes them."
        if args.command == "apply"
        else "."
    )
    log.warning(
        message, extra={"event": "interrupted", "signal": "SIGTERM" if terminated else "SIGINT"}
    )
    ctx.err(message)
    return ExitStatus.TERMINATED if terminated else ExitStatus.INTERRUPTED


def _failed(args: argparse.Namespace, ctx: Context, exc: DapctlError) -> int:
    # For --log-file (the console prints the message itself): a cron job's log records why.
    fields = {"event": "fatal", "error_type": type(exc).__name__, "hint": exc.hint}
    log.error("%s", exc.message, extra=fields)
    error_style = Style.for_stream(ctx.stderr, ctx.environ, disabled=args.no_color)
    ctx.err(f"{error_style('Error:', 'red', 'bold')} {exc}")
    if getattr(args, "json", False):
        error = {"type": type(exc).__name__, "message": exc.message, "hint": exc.hint}
        error["uuid"] = getattr(exc, "uuid", None)
        emit_json(ctx, {"ok": False, "error": error})
    return ExitStatus.ERROR

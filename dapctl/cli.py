"""The command line: parse arguments, call the library, render the result, return an exit code.

``main(argv)`` is the only place that prints or decides an exit status; everything else
raises ``DapctlError`` subclasses with a message a user can act on. An unexpected exception is
a bug: a one-line notice (the traceback with ``--debug``) and exit status 3. The environment
and output streams are parameters so tests drive the CLI in-process. Results go to stdout
(one JSON document with ``--json``, an error document too when a ``--json`` command fails);
messages, logs and live progress go to stderr. Colour and progress appear only on a
terminal. The grammar lives in ``arguments``; the exit statuses in ``errors.ExitStatus``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TextIO

from dapctl import tables
from dapctl.apply import ApplyOptions, run_apply
from dapctl.arguments import build_parser
from dapctl.config import Config
from dapctl.connect import fetch_token
from dapctl.credentials import resolve_used
from dapctl.errors import ConfigError, DapctlError, ExitStatus
from dapctl.events import EventSink, ignore
from dapctl.files import atomic_write_bytes
from dapctl.loading import LoadedConfig, load_config
from dapctl.locking import describe_holder
from dapctl.logs import LEVELS, logging_to
from dapctl.plan import SYMBOLS, Plan, plan, plural
from dapctl.progress import Progress
from dapctl.results import StepResult, all_ok, summary, summary_table
from dapctl.starter import write_starter
from dapctl.state import LocalStateStore, State
from dapctl.stateops import find_step, forget, render_list, render_step, state_json, unlock
from dapctl.style import Style, is_terminal

__all__ = ["build_parser", "main"]

log = logging.getLogger("dapctl")

Handler = Callable[[argparse.Namespace, "Context"], int]
PLAN_COLOURS = {"+": "green", "~": "yellow", ">": "cyan", "?": "magenta"}


class Context:
    """What a command may touch: its streams, the environment, and the live progress."""

    def __init__(self, *, stdout: TextIO, stderr: TextIO, environ: Mapping[str, str]) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.environ = environ
        self.progress: Progress | None = None
        self.style = Style()

    def out(self, text: str) -> None:
        self.write(self.stdout, text + "\n")

    def err(self, text: str) -> None:
        self.write(self.stderr, text + "\n")

    def write(self, stream: TextIO, text: str) -> None:
        if self.progress is not None:
            self.progress.write_above(stream, text)
        else:
            stream.write(text)


class _Console:
    """stderr for log records, through the context so progress is not torn."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def write(self, text: str) -> int:
        self.ctx.write(self.ctx.stderr, text)
        return len(text)

    def flush(self) -> None:
        self.ctx.stderr.flush()


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
    ctx.style = Style.for_stream(ctx.stdout, ctx.environ, disabled=args.no_color)
    level = logging.DEBUG if args.debug else LEVELS[args.log_level or "warning"]
    try:
        with logging_to(_Console(ctx), level=level, fmt=args.log_format, file=args.log_file):
            return _run(args, ctx)
    except DapctlError as exc:  # the log file cannot be opened
        return _failed(args, ctx, exc)


def _run(args: argparse.Namespace, ctx: Context) -> int:
    handler = HANDLERS[args.command]
    try:
        return handler(args, ctx)
    except DapctlError as exc:
        return _failed(args, ctx, exc)
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


def _failed(args: argparse.Namespace, ctx: Context, exc: DapctlError) -> int:
    error_style = Style.for_stream(ctx.stderr, ctx.environ, disabled=args.no_color)
    ctx.err(f"{error_style('Error:', 'red', 'bold')} {exc}")
    if getattr(args, "json", False):
        error = {"type": type(exc).__name__, "message": exc.message, "hint": exc.hint}
        error["uuid"] = getattr(exc, "uuid", None)
        _json(ctx, {"ok": False, "error": error})
    return ExitStatus.ERROR


def _json(ctx: Context, document: Mapping[str, Any]) -> None:
    ctx.out(json.dumps(document, indent=2, default=str))


# ---- commands ---------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace, ctx: Context) -> int:
    path = write_starter(args.path)
    ctx.out(f"Wrote {path}. Set DAP_CLIENT_ID and DAP_CLIENT_SECRET, then:")
    ctx.out(f"  dapctl validate {path}\n  dapctl plan {path}\n  dapctl apply {path}")
    return ExitStatus.SUCCESS


def cmd_validate(args: argparse.Namespace, ctx: Context) -> int:
    loaded = _load(args)
    resolve_used(loaded, environ=ctx.environ, names=list(loaded.config.profiles))
    config = loaded.config
    if args.json:
        _json(ctx, _validated(loaded))
        return ExitStatus.SUCCESS
    counts = f"{plural(len(config.profiles), 'profile')}, {plural(len(config.targets), 'target')}"
    ctx.out(f"{loaded.path}: valid ({counts})")
    return ExitStatus.SUCCESS


def _validated(loaded: LoadedConfig) -> dict[str, Any]:
    config = loaded.config
    return {
        "ok": True,
        "config": str(loaded.path),
        "state": str(loaded.state_path),
        "profiles": list(config.profiles),
        "targets": [
            {"name": t.name, "namespace": t.namespace, "profiles": config.target_profiles(t)}
            for t in config.targets
        ],
        "warnings": list(loaded.warnings),
    }


def cmd_plan(args: argparse.Namespace, ctx: Context) -> int:
    loaded = _load(args)
    state = LocalStateStore(loaded.state_path).read() or State()
    result: Plan = plan(loaded.config, state, profiles=args.profile, targets=args.target)
    resolve_used(loaded, environ=ctx.environ, names=sorted({step.profile for step in result.steps}))
    if args.json:
        _json(ctx, result.to_json())
    else:
        ctx.out(_plan_text(result, ctx.style))
    if args.detailed_exitcode and result.has_changes:
        return ExitStatus.CHANGES_PENDING
    return ExitStatus.SUCCESS


def _plan_text(steps: Plan, style: Style) -> str:
    symbols = {f"  {symbol} " for symbol in SYMBOLS.values()}
    lines = []
    for line in steps.render_text().splitlines():
        if line[:4] in symbols:
            line = f"  {style(line[2], PLAN_COLOURS[line[2]], 'bold')}{line[3:]}"
        lines.append(line)
    return "\n".join(lines)


def cmd_apply(args: argparse.Namespace, ctx: Context) -> int:
    loaded = _load(args)
    options = ApplyOptions(
        concurrency=args.concurrency or loaded.config.settings.concurrency,
        no_wait=args.no_wait,
        job_timeout=args.job_timeout,
        targets=args.target,
    )

    width = 0

    def show_plan(steps: Plan) -> None:
        nonlocal width
        width = max((len(s.address) for s in steps.steps if s.action != "list"), default=0)
        if not args.json:
            ctx.out(f"{_plan_text(steps, ctx.style)}\n")

    def show(result: StepResult) -> None:
        if not args.json:
            ctx.out(result.render(ctx.style, width=width))

    with _progress(args, ctx) as on_event:
        results = run_apply(
            loaded,
            environ=ctx.environ,
            profiles=args.profile,
            options=options,
            lock_timeout=args.lock_timeout,
            on_plan=show_plan,
            on_result=show,
            on_event=on_event,
        )
    ok = all_ok(results)
    if args.json:
        _json(ctx, {"ok": ok, "results": [r.to_json() for r in _in_plan_order(results)]})
    else:
        table = f"\n{summary_table(results, ctx.style)}\n" if results else ""
        ctx.out(f"{table}\n{ctx.style(summary(results), 'bold')}")
    return ExitStatus.SUCCESS if ok else ExitStatus.ERROR


@contextlib.contextmanager
def _progress(args: argparse.Namespace, ctx: Context) -> Iterator[EventSink]:
    """Live progress on stderr while the block runs, if stderr is a terminal that wants it."""
    wanted = not args.no_progress and ctx.environ.get("TERM") != "dumb"
    if not (wanted and is_terminal(ctx.stderr)):
        yield ignore
        return
    style = Style.for_stream(ctx.stderr, ctx.environ, disabled=args.no_color)
    with Progress(ctx.stderr, style=style) as progress:
        ctx.progress = progress
        try:
            yield progress.handle
        finally:
            ctx.progress = None


def _in_plan_order(results: Sequence[StepResult]) -> list[StepResult]:
    return sorted(results, key=lambda r: r.address)


def cmd_tables(args: argparse.Namespace, ctx: Context) -> int:
    loaded = _load(args)
    profile = tables.pick_profile(loaded.config, args.profile)
    namespaces = args.namespace or tables.default_namespaces(loaded.config, profile)
    found = tables.list_tables(loaded, profile=profile, namespaces=namespaces, environ=ctx.environ)
    if args.json:
        _json(ctx, {"ok": True, "profile": profile, "namespaces": found})
    else:
        ctx.out(tables.render_tables(profile, found))
    return ExitStatus.SUCCESS


def cmd_describe(args: argparse.Namespace, ctx: Context) -> int:
    loaded = _load(args)
    profile = tables.pick_profile(loaded.config, args.profile)
    namespace, table = tables.split_table(args.table)
    described = tables.describe_table(
        loaded, profile=profile, namespace=namespace, table=table, environ=ctx.environ
    )
    document = {"ok": True, "profile": profile, **described.to_json()}
    if args.output is not None:
        text = json.dumps(document, indent=2) + "\n"
        try:
            atomic_write_bytes(args.output, text.encode())
        except OSError as exc:
            raise ConfigError(f"--output {args.output}: cannot write it: {exc.strerror}") from None
        log.info("wrote %s", args.output)
    if args.json:
        _json(ctx, document)
    elif args.output is not None:
        ctx.out(f"Wrote {namespace}.{table} schema version {described.version} to {args.output}")
    else:
        ctx.out(described.render_text())
    return ExitStatus.SUCCESS


def cmd_state_list(args: argparse.Namespace, ctx: Context) -> int:
    store = LocalStateStore(_load(args).state_path)
    state = store.read()
    if args.json:
        _json(ctx, state_json(state, store.path))
    else:
        ctx.out(render_list(state, store.path))
    return ExitStatus.SUCCESS


def cmd_state_show(args: argparse.Namespace, ctx: Context) -> int:
    store = LocalStateStore(_load(args).state_path)
    step = find_step(store.read(), args.address, path=store.path)
    if args.json:
        _json(ctx, {"address": args.address, **step.model_dump(mode="json")})
    else:
        ctx.out(render_step(args.address, step))
    return ExitStatus.SUCCESS


def cmd_state_rm(args: argparse.Namespace, ctx: Context) -> int:
    store = LocalStateStore(_load(args).state_path)
    forget(store, args.addresses, lock_timeout=args.lock_timeout)
    removed = list(dict.fromkeys(args.addresses))
    if args.json:
        _json(ctx, {"ok": True, "removed": removed})
    else:
        for address in removed:
            ctx.out(f"Removed {address}: the next apply takes a new snapshot of it.")
    return ExitStatus.SUCCESS


def cmd_force_unlock(args: argparse.Namespace, ctx: Context) -> int:
    store = LocalStateStore(_load(args).state_path)
    holder = unlock(store.lock_path, force=args.force)
    if args.json:
        removed = holder is not None
        _json(ctx, {"ok": True, "lock": str(store.lock_path), "removed": removed, "holder": holder})
    elif holder is None:
        ctx.out(f"{store.path} is not locked: nothing to do.")
    else:
        ctx.out(f"Removed the lock on {store.path}, held by {describe_holder(holder)}.")
    return ExitStatus.SUCCESS


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


def cmd_emulator(args: argparse.Namespace, ctx: Context) -> int:
    from dapctl.emulator import cli as emulator_cli

    return emulator_cli.run(args)


def config_schema_text() -> str:
    """The config's JSON Schema, exactly as ``schemas/dapctl.schema.json`` holds it."""
    return json.dumps(Config.model_json_schema(), indent=2, ensure_ascii=False)


def _load(args: argparse.Namespace) -> LoadedConfig:
    loaded = load_config(args.config)
    for warning in loaded.warnings:
        log.warning(warning)
    return loaded


HANDLERS: dict[str, Handler] = {
    "init": cmd_init,
    "validate": cmd_validate,
    "plan": cmd_plan,
    "apply": cmd_apply,
    "tables": cmd_tables,
    "describe": cmd_describe,
    "state list": cmd_state_list,
    "state show": cmd_state_show,
    "state rm": cmd_state_rm,
    "force-unlock": cmd_force_unlock,
    "token": cmd_token,
    "config-schema": cmd_config_schema,
    "emulator": cmd_emulator,
}

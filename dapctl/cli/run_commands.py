"""The run commands: ``validate``, ``plan`` and ``apply``.

Each ``cmd_NAME(args, ctx)`` loads the config, checks the extras and credentials it needs,
calls the library (``plan``, ``wiring.run_apply``) and renders the result: text through
``render`` (with live progress on a terminal for ``apply``) or one JSON document with
``--json``. It returns an ``ExitStatus``: ``plan --detailed-exitcode`` tells pending steps
apart, and a step that failed or could not be planned makes the status an error.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from dapctl.apply import ApplyOptions
from dapctl.cli.context import Context, emit_json, load
from dapctl.cli.operate_commands import after_apply
from dapctl.cli.progress import Progress
from dapctl.cli.render import render_plan, render_result, summary, summary_table
from dapctl.cli.stores import open_databases, state_store, warn_unreachable
from dapctl.cli.style import Style, is_terminal
from dapctl.credentials import check_locations, check_used
from dapctl.errors import DapctlError, ExitStatus
from dapctl.events import EventSink, ignore
from dapctl.files import atomic_write_bytes
from dapctl.loading import LoadedConfig, require_extras
from dapctl.outputs.records import DatabaseRecords
from dapctl.plan import Plan, orphans, plan
from dapctl.results import StepResult, all_ok
from dapctl.runs import Run
from dapctl.saved_plans import SavedPlan, saved_plan_at
from dapctl.state import State
from dapctl.text import plural
from dapctl.wiring import run_apply
from dapctl.wiring.refresh import schema_changes

log = logging.getLogger("dapctl")


def cmd_validate(args: argparse.Namespace, ctx: Context) -> int:
    loaded = load(args)
    require_extras(loaded, importer=ctx.importer)
    names = list(loaded.config.profiles)
    require = args.require_credentials
    warnings = check_used(loaded, names, environ=ctx.environ, require=require)
    warnings += check_locations(loaded, environ=ctx.environ, require=require)
    config = loaded.config
    if args.json:
        emit_json(ctx, _validated(loaded, warnings))
        return ExitStatus.SUCCESS
    counts = f"{plural(len(config.profiles), 'profile')}, {plural(len(config.targets), 'target')}"
    ctx.out(f"{loaded.path}: valid ({counts})")
    return ExitStatus.SUCCESS


def _validated(loaded: LoadedConfig, warnings: Sequence[str]) -> dict[str, Any]:
    config = loaded.config
    return {
        "ok": True,
        "config": str(loaded.path),
        "state": loaded.state_location,
        "profiles": list(config.profiles),
        "targets": [
            {"name": t.name, "namespace": t.namespace, "profiles": config.target_profiles(t)}
            for t in config.targets
        ],
        "warnings": [*loaded.warnings, *warnings],
    }


def cmd_plan(args: argparse.Namespace, ctx: Context) -> int:
    loaded = load(args)
    require_extras(loaded, importer=ctx.importer)
    with open_databases(loaded, ctx) as databases:
        store = state_store(loaded, ctx)
        stored = store.read()
        overlay = DatabaseRecords(loaded.config, databases).overlay(stored or State())
        result: Plan = plan(
            loaded.config,
            overlay.state,
            profiles=args.profile,
            targets=args.target,
            replace=args.replace,
            unreachable=overlay.unreachable,
        )
        warn_unreachable(overlay)
        lost = orphans(loaded.config, overlay.recorded)
        for address in lost:
            log.warning(
                "%s: in the state, but no target declares it any more; renamed? `dapctl "
                "state mv`; removed? `dapctl state rm`",
                address,
            )
        used = sorted({step.profile for step in result.steps})
        require = args.require_credentials or args.refresh  # --refresh logs in
        check_used(loaded, used, environ=ctx.environ, require=require)
        changes = (
            schema_changes(loaded, result, environ=ctx.environ, databases=databases)
            if args.refresh
            else None
        )
    if args.json:
        blocked = any(step.error for step in result.steps)
        document = {"ok": not blocked, **result.to_json(), "orphans": lost}
        if changes is not None:
            for step in document["steps"]:
                step["schema_changes"] = changes.get(step["address"])
        emit_json(ctx, document)
    else:
        ctx.out(render_plan(result, ctx.style, schema_changes=changes))
    if any(step.error for step in result.steps):
        return ExitStatus.ERROR  # each such step says which database it could not read
    if args.out:
        _save_plan(args, ctx, result, stored)
    if args.detailed_exitcode and result.has_changes:
        return ExitStatus.CHANGES_PENDING
    return ExitStatus.SUCCESS


def _save_plan(args: argparse.Namespace, ctx: Context, result: Plan, stored: State | None) -> None:
    saved = SavedPlan.of(
        result,
        config=args.config,
        lineage=stored.lineage if stored else None,
        serial=stored.serial if stored else 0,
        profiles=args.profile,
        targets=args.target,
        replace=args.replace,
    )
    try:
        atomic_write_bytes(Path(args.out), saved.to_bytes())
    except OSError as exc:
        raise DapctlError(f"{args.out}: cannot write the plan: {exc.strerror}") from None
    if not args.json:
        ctx.out(f"\nSaved the plan to {args.out}: `dapctl apply {args.out}` carries it out.")


def _saved_plan(args: argparse.Namespace) -> SavedPlan | None:
    """The saved plan ``apply`` was given instead of a config, its selection taken over."""
    saved = saved_plan_at(Path(args.config))
    if saved is None:
        return None
    if args.profile or args.target or args.replace:
        raise DapctlError(
            f"{args.config}: a saved plan carries its own selection; apply it without "
            "--profile, --target or --replace"
        )
    args.plan_file, args.config = args.config, Path(saved.config)
    args.profile, args.target, args.replace = saved.profiles, saved.targets, saved.replace
    return saved


def cmd_apply(args: argparse.Namespace, ctx: Context) -> int:
    saved = _saved_plan(args)
    loaded = load(args)
    require_extras(loaded, importer=ctx.importer)
    if saved is not None:
        current = state_store(loaded, ctx).read()
        saved.check(
            lineage=current.lineage if current else None,
            serial=current.serial if current else 0,
            max_age=loaded.config.settings.plan_max_age,
            where=str(args.plan_file),
        )
    options = ApplyOptions(
        concurrency=args.concurrency or loaded.config.settings.concurrency,
        no_wait=args.no_wait,
        job_timeout=args.job_timeout,
        targets=args.target,
        replace=args.replace,
    )

    width = 0

    def show_plan(steps: Plan) -> None:
        nonlocal width
        if saved is not None:
            saved.same_steps(steps, where=str(args.plan_file))  # before any job starts
        width = max((len(s.address) for s in steps.steps if s.action != "list"), default=0)
        if not args.json:
            ctx.out(f"{render_plan(steps, ctx.style)}\n")

    def show(result: StepResult) -> None:
        if not args.json:
            ctx.out(render_result(result, ctx.style, width=width))

    runs: list[Run] = []
    with _progress(args, ctx) as on_event:
        results = run_apply(
            loaded,
            environ=ctx.environ,
            profiles=args.profile,
            options=options,
            lock_timeout=args.lock_timeout,
            store=state_store(loaded, ctx),
            on_plan=show_plan,
            on_result=show,
            on_event=on_event,
            on_run=runs.append,
        )
    ok = all_ok(results)
    run_id = runs[-1].run_id if runs else None
    if args.json:
        ordered = [r.to_json() for r in _in_plan_order(results)]
        emit_json(ctx, {"ok": ok, "run_id": run_id, "results": ordered})
    else:
        if run_id:
            ctx.out(f"\nRun {run_id} (`dapctl runs show {args.config} {run_id}`)")
        table = f"\n{summary_table(results, ctx.style)}\n" if results else ""
        ctx.out(f"{table}\n{ctx.style(summary(results), 'bold')}")
    after_apply(loaded, ctx, args, results, runs[-1] if runs else None)
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

"""The commands for operating scheduled runs: ``status``, ``runs list`` and ``runs show``;
and the metrics file ``apply`` and ``status`` write (`write_metrics_for`).

``status`` reads the state as apply sees it (table targets' records from their databases)
and the run history, and prints each table's freshness; its exit status is
`status.exit_status`'s. Nothing here talks to DAP or needs a credential.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from dapctl import metrics
from dapctl.cli.context import Context, emit_json, load
from dapctl.cli.render import render_plan
from dapctl.cli.stores import read_state, state_store
from dapctl.config.durations import text as duration_text
from dapctl.errors import DapctlError, ExitStatus
from dapctl.loading import LoadedConfig
from dapctl.notify import alert_for, notify_all
from dapctl.results import StepResult
from dapctl.runs import Run, RunLog, last_results, run_log
from dapctl.saved_plans import saved_plan_at
from dapctl.state import State, StateStore
from dapctl.status import AddressStatus, exit_status, statuses
from dapctl.text import format_count, format_table, format_time, human_bytes

log = logging.getLogger("dapctl")
_NOT_KEPT = "this state's backend keeps no run history"


def cmd_status(args: argparse.Namespace, ctx: Context) -> int:
    loaded = load(args)
    found, recent = status_of(loaded, ctx, profiles=args.profile, targets=args.target)
    latest = recent[0] if recent else None
    form = "json" if getattr(args, "json", False) else (args.format or "text")
    if form == "json":
        verdict = exit_status(found)
        emit_json(
            ctx,
            {"ok": verdict == ExitStatus.SUCCESS, "exit": int(verdict),
             "tables": [s.to_json() for s in found]},
        )  # fmt: skip
    elif form == "prometheus":
        ctx.out(metrics.render(found, latest).rstrip("\n"))
    else:
        ctx.out(render_status(found) if found else "No tables: the config declares none.")
    write_metrics_for(loaded, ctx, args, found, latest)
    return exit_status(found)


def status_of(
    loaded: LoadedConfig,
    ctx: Context,
    *,
    profiles: Sequence[str] = (),
    targets: Sequence[str] = (),
    store: StateStore | None = None,
) -> tuple[list[AddressStatus], list[Run]]:
    """Every selected table's status now, and the runs of the history, newest first."""
    store = store or state_store(loaded, ctx)
    overlay = read_state(loaded, ctx, store)
    state = overlay.state if overlay is not None else State()
    unreachable = overlay.unreachable if overlay is not None else {}
    runs = _runs(store)
    recent = runs.recent(loaded.config.settings.keep_runs) if runs is not None else []
    found = statuses(
        loaded.config,
        state,
        now=datetime.now(UTC),
        profiles=profiles,
        targets=targets,
        unreachable=unreachable,
        last=last_results(recent),
    )
    return found, recent


def write_metrics_for(
    loaded: LoadedConfig,
    ctx: Context,
    args: argparse.Namespace,
    found: Sequence[AddressStatus] | None = None,
    latest: Run | None = None,
) -> None:
    """Write the metrics file ``--metrics-file`` or ``[settings] metrics_file`` names, if
    any; a failure is logged, never raised (the command's own result stands)."""
    where = getattr(args, "metrics_file", None) or loaded.config.settings.metrics_file
    if not where:
        return
    path = Path(where) if Path(where).is_absolute() else loaded.base_dir / where
    try:
        if found is None:
            found, recent = status_of(loaded, ctx)
            latest = recent[0] if recent else None
        metrics.write_metrics(path, metrics.render(found, latest))
    except (OSError, DapctlError) as exc:
        log.error("could not write the metrics file %s: %s", path, exc)


def after_apply(
    loaded: LoadedConfig,
    ctx: Context,
    args: argparse.Namespace,
    results: Sequence[StepResult],
    run: Run | None,
) -> None:
    """The alerts and the metrics file an apply owes, if the config or flags ask for them."""
    wants_metrics = getattr(args, "metrics_file", None) or loaded.config.settings.metrics_file
    if not (loaded.config.notify or wants_metrics):
        return
    try:
        found, recent = status_of(loaded, ctx)
    except DapctlError as exc:
        log.error("could not read the state back for alerts and metrics: %s", exc.message)
        return
    if run is not None and loaded.config.notify:
        previous = last_results(r for r in recent if r.run_id != run.run_id)
        alert = alert_for(run, results, found, previous)
        notify_all(loaded.config, alert, environ=ctx.environ, base_dir=loaded.base_dir)
    write_metrics_for(loaded, ctx, args, found, run or (recent[0] if recent else None))


def cmd_runs_list(args: argparse.Namespace, ctx: Context) -> int:
    loaded = load(args)
    runs = _runs(state_store(loaded, ctx))
    found = runs.recent(max(args.limit, 1)) if runs is not None else []
    if getattr(args, "json", False):
        emit_json(ctx, {"runs": [_summary(r) for r in found], "where": _where(runs)})
        return ExitStatus.SUCCESS
    if not found:
        ctx.out(f"No runs recorded yet in {_where(runs)}." if runs else f"No runs: {_NOT_KEPT}.")
        return ExitStatus.SUCCESS
    header = ("RUN", "STARTED", "DURATION", "OUTCOME", "STEPS", "RECORDS", "HOST")
    rows = [
        (
            r.run_id, format_time(r.started),
            "-" if r.duration is None else f"{r.duration:.1f}s", r.outcome,
            ", ".join(f"{n} {s}" for s, n in sorted(r.counts().items())) or "-",
            format_count(sum(s.records for s in r.steps)), f"{r.host}:{r.pid}",
        )
        for r in found
    ]  # fmt: skip
    ctx.out(format_table(header, rows, right=(2, 5)))
    return ExitStatus.SUCCESS


def cmd_runs_show(args: argparse.Namespace, ctx: Context) -> int:
    loaded = load(args)
    runs = _runs(state_store(loaded, ctx))
    run = runs.get(args.run_id) if runs is not None else None
    if run is None:
        raise DapctlError(
            f"no run {args.run_id!r} in {_where(runs)}",
            hint="`dapctl runs CONFIG` lists the runs kept",
        )
    if getattr(args, "json", False):
        emit_json(ctx, run.model_dump(mode="json"))
        return ExitStatus.SUCCESS
    head = (
        f"Run {run.run_id} ({run.config}) on {run.host}, pid {run.pid}: {run.outcome}\n"
        f"  started {format_time(run.started)}"
        + (f", ended {format_time(run.ended)} ({run.duration:.1f}s)" if run.ended else "")
    )
    rows = [
        (
            s.address, s.kind, s.status, s.job_id or "-", format_count(s.records),
            human_bytes(s.bytes), f"{s.duration:.1f}s", str(s.transient_errors),
            s.landed or (", ".join(s.files) if s.files else "-"),
        )
        for s in run.steps
    ]  # fmt: skip
    header = ("ADDRESS", "KIND", "STATUS", "JOB", "RECORDS", "BYTES", "TIME", "RETRIES", "LANDED")
    table = format_table(header, rows, right=(4, 5, 6, 7)) if rows else "  (no step finished)"
    errors = [f"  {s.address}: {s.message}" for s in run.steps if s.error]
    ctx.out("\n\n".join(filter(None, [head, table, "\n".join(errors)])))
    return ExitStatus.SUCCESS


def cmd_show(args: argparse.Namespace, ctx: Context) -> int:
    saved = saved_plan_at(args.plan)
    if saved is None:
        raise DapctlError(f"{args.plan}: not a saved plan (`dapctl plan CONFIG -out FILE`)")
    if getattr(args, "json", False):
        emit_json(ctx, saved.model_dump(mode="json"))
        return ExitStatus.SUCCESS
    made = f"Saved plan for {saved.config}, made {format_time(saved.created)} "
    ctx.out(f"{made}(state serial {saved.serial})\n\n{render_plan(saved.plan(), ctx.style)}")
    return ExitStatus.SUCCESS


def render_status(found: Sequence[AddressStatus]) -> str:
    header = ("ADDRESS", "WATERMARK", "AGE", "FRESHNESS", "LAST RUN", "PENDING")
    rows = [
        (
            s.address,
            format_time(s.watermark) if s.watermark else "-",
            _age(s.age),
            _verdict(s),
            s.last_status or "-",
            s.pending_job or "-",
        )
        for s in found
    ]
    lines = [format_table(header, rows)]
    lines += [
        f"  {s.address}: last run {s.last_status}: {s.last_error}" for s in found if s.last_error
    ]
    lines += [f"  {s.address}: {s.problem}" for s in found if s.problem]
    return "\n".join(lines)


def _verdict(s: AddressStatus) -> str:
    limit = {"warn": s.warn_after, "error": s.error_after}.get(s.verdict)
    return f"{s.verdict} (> {duration_text(limit)})" if limit else s.verdict


def _age(age: float | None) -> str:
    if age is None:
        return "-"
    return duration_text(round(age / 60) * 60) if age >= 60 else f"{age:.0f}s"


def _runs(store: StateStore) -> RunLog | None:
    return run_log(store)


def _where(runs: RunLog | None) -> str:
    return runs.location if runs is not None else _NOT_KEPT


def _summary(run: Run) -> dict[str, object]:
    document = run.model_dump(mode="json", exclude={"steps"})
    return {**document, "duration": run.duration, "steps": run.counts()}

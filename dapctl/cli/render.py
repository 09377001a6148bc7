"""How results look to a person: plans, step results, summaries and the state, as text.

Every renderer takes a ``Style`` and colours while it builds its lines, so nothing rendered
is parsed again. With ``PLAIN`` the text is exactly what a log or a pipe should get. JSON
documents are built by the models' own ``to_json``; this module is only for people.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from dapctl.cli.style import PLAIN, Style
from dapctl.plan import Action, Plan
from dapctl.results import StepResult, all_ok
from dapctl.state import State, StepState
from dapctl.text import format_count, format_table, format_time, human_bytes, plural

LEGEND = "Legend: + snapshot  ~ incremental  > resume a started job  ? list tables, then plan each"
SYMBOLS: dict[Action, str] = {"snapshot": "+", "incremental": "~", "resume": ">", "list": "?"}
SYMBOL_COLOURS: dict[Action, str] = {
    "snapshot": "green",
    "incremental": "yellow",
    "resume": "cyan",
    "list": "magenta",
}
SUMMARY_COLUMNS = ("ADDRESS", "KIND", "RECORDS", "BYTES", "TIME", "STATUS")


def render_plan(
    plan: Plan, style: Style = PLAIN, *, schema_changes: Mapping[str, list[str]] | None = None
) -> str:
    """Terraform-like: a count by action, one line per step (and, after ``--refresh``, its
    table's pending schema changes), and the legend."""
    if not plan.steps:
        return "Nothing to do: no step matches."
    width = max(len(s.address) for s in plan.steps)
    described = [s.describe() for s in plan.steps]
    action_width = max(len(d) for d in described)
    lines = []
    for s, d in zip(plan.steps, described, strict=True):
        symbol = (
            style("!", "red", "bold")
            if s.error
            else style(SYMBOLS[s.action], SYMBOL_COLOURS[s.action], "bold")
        )
        lines.append(f"  {symbol} {s.address:<{width}}  {d:<{action_width}}  ({s.reason})")
        for change in (schema_changes or {}).get(s.address, []):
            lines.append(f"      {style('schema:', 'dim')} {change}")
    counts = Counter("cannot run" if step.error else step.action for step in plan.steps)
    summary = ", ".join(f"{n} {action}" for action, n in sorted(counts.items()))
    legend = LEGEND + ("  ! cannot run" if "cannot run" in counts else "")
    return "\n".join(
        [f"Plan: {plural(len(plan.steps), 'step')} ({summary})", "", *lines, "", legend]
    )


def render_result(result: StepResult, style: Style = PLAIN, *, width: int = 0) -> str:
    """One line for a human, printed as the step finishes (address padded to ``width``)."""
    status = style.status(f"{result.status:<7}", result.status)
    head = f"{status} {result.address:<{width}}  {result.kind}"
    if result.status == "ok":
        line = (
            f"{head}  {plural(result.records, 'record')}  {human_bytes(result.bytes)}  "
            f"{result.duration:.1f}s"
        )
    elif result.status == "started":
        line = f"{head}  job {result.job_id} started; a later apply collects it"
    else:
        error = result.error
        detail = f"{error.type}: {error.message}" if error else "unknown error"
        uuid = f" (error uuid {error.uuid})" if error and error.uuid else ""
        line = f"{head}  {detail}{uuid}"
        if error and error.hint:
            line += f"\n        hint: {error.hint}"
    return "\n".join([line, *(f"        note: {note}" for note in result.notes)])


def summary(results: Sequence[StepResult]) -> str:
    """The verdict of an apply, one sentence; a second counts the transient errors that
    retries rode out (each is logged at info, and only running out of retries warns)."""
    counts = Counter(result.status for result in results)
    records = sum(result.records for result in results)
    size = sum(result.bytes for result in results)
    parts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    verdict = "Apply complete" if all_ok(results) else "Apply finished with failures"
    transient = sum(result.transient_errors for result in results)
    rode_out = f" Rode out {plural(transient, 'transient error')} by retrying." if transient else ""
    return (
        f"{verdict}: {parts or 'nothing to do'}; {plural(records, 'record')}, "
        f"{human_bytes(size)}.{rode_out}"
    )


def summary_table(results: Sequence[StepResult], style: Style = PLAIN) -> str:
    """Every step in address order: address, kind, records, bytes, time and status."""
    rows = [
        (
            r.address,
            r.kind,
            format_count(r.records) if r.status == "ok" else "-",
            human_bytes(r.bytes) if r.status == "ok" else "-",
            f"{r.duration:.1f}s",
            style.status(r.status, r.status),
        )
        for r in sorted(results, key=lambda r: r.address)
    ]
    return format_table(SUMMARY_COLUMNS, rows, right=(2, 3, 4))


def render_state(state: State | None, where: str) -> str:
    """``dapctl state list``: one row per address."""
    if state is None:
        return f"{where}: no state yet; the first apply creates it."
    head = (
        f"{where}: {len(state.steps)} address{'' if len(state.steps) == 1 else 'es'} "
        f"(serial {state.serial}, lineage {state.lineage})"
    )
    if not state.steps:
        return head
    rows = [
        (
            address,
            step.kind or "-",
            format_time(step.watermark),
            format_count(step.records),
            human_bytes(step.bytes),
            f"{step.pending.kind} job {step.pending.job_id}" if step.pending else "-",
        )
        for address, step in sorted(state.steps.items())
    ]
    table = format_table(
        ("ADDRESS", "KIND", "WATERMARK", "RECORDS", "BYTES", "PENDING"), rows, right=(3, 4)
    )
    return f"{head}\n\n{table}"


def render_step(address: str, step: StepState) -> str:
    """``dapctl state show``: every field of one address."""
    pending = step.pending
    lines = [
        ("address", address),
        ("watermark", format_time(step.watermark)),
        ("kind", step.kind or "-"),
        ("schema version", str(step.schema_version or "-")),
        ("job", step.job_id or "-"),
        ("completed at", format_time(step.completed_at)),
        ("records", format_count(step.records)),
        ("bytes", f"{format_count(step.bytes)} ({human_bytes(step.bytes)})"),
        ("sha256", step.sha256 or "-"),
        ("files", "\n".join(step.files) or "-"),
        ("pending", f"{pending.kind} job {pending.job_id}" if pending else "-"),
    ]
    if pending is not None:
        lines.append(("pending since", format_time(pending.started_at)))
        lines.append(("pending output", pending.output or "-"))
    width = max(len(label) for label, _ in lines)
    pad = " " * (width + 2)
    return "\n".join(
        f"{label:<{width}}  {value.replace(chr(10), chr(10) + pad)}" for label, value in lines
    )

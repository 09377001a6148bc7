"""The rules apply asks mid-run, as pure functions of what it has learned by then.

Apply carries out the plan and never re-derives intent: when the server or a destination
tells it something the plan could not know, it passes that in here and does what comes back.
None does I/O or reads a clock (the time is passed in).

``after_lost_job`` plans a table afresh when its recorded job is gone; ``fallback_snapshot``
replaces an incremental whose window is gone (if the config allows it), and
``stale_fallback`` refuses that snapshot when it comes back no later than the watermark it
replaces. ``publishes`` says whether a job with no records is written, ``follow_up`` is the
incremental that brings a resumed table current, and ``reload_snapshot`` the snapshot that
rebuilds a database table whose new schema cannot be applied in place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from dapctl.config import Settings, Target
from dapctl.plan.planner import plan_table
from dapctl.plan.step import Step
from dapctl.state import Kind, StepState
from dapctl.text import format_time

# -- starting and resuming a job ------------------------------------------------------------


def fallback_snapshot(step: Step, since: datetime | None, settings: Settings) -> Step | None:
    """The snapshot that replaces an incremental whose window is gone, or ``None`` when the
    config says to fail instead (or the step was no incremental)."""
    if since is None or settings.on_snapshot_required != "snapshot":
        return None
    return step.as_snapshot(
        f"the incremental window since {format_time(since)} is gone: took a snapshot "
        'instead (on_snapshot_required = "snapshot")'
    )


def after_lost_job(step: Step, target: Target, state: StepState) -> Step:
    """The step again, planned afresh, when its recorded job can no longer be collected."""
    return plan_table(step.profile, target, step.table, state.forgotten())


# -- landing a finished job -----------------------------------------------------------------


def stale_fallback(gone_since: datetime | None, at: datetime) -> str | None:
    """Why a fallback snapshot at ``at`` cannot replace the incremental window since
    ``gone_since`` (``None`` when it can, or when the snapshot was no fallback).

    A snapshot no later than that watermark would not move it: the next apply would find the
    same window gone and fall back again, forever.
    """
    if gone_since is None or at > gone_since:
        return None
    return (
        f"the snapshot taken because the window since {format_time(gone_since)} is gone is "
        f"at {format_time(at)}, not later than that watermark; not written, the watermark stays"
    )


def publishes(kind: Kind, records: int) -> bool:
    """Whether a collected job's output is published: an incremental with no records writes
    nothing (its watermark still moves); a snapshot is the table's whole content, so even an
    empty one is written."""
    return kind == "snapshot" or records > 0


NO_RECORDS = "no records in this window: no file written"


def follow_up(
    step: Step,
    target: Target,
    state: StepState,
    *,
    began: datetime | None,
    catch_up_after: float | Literal["never"],
) -> Step | None:
    """The incremental that brings a table current after this apply collected a job an
    earlier apply started, when that job's data is older than ``catch_up_after`` seconds
    (``settings.catch_up_after``; ``0``: any age, ``"never"``: no follow-up) at ``began``, the
    server's time when this apply first reached it. Without it a run that succeeds would
    leave the table behind until the next run; but each costs one of DAP's five job creations
    a minute, and data that refreshes every few hours is rarely worth one for a job minutes
    old: the collect run after ``--no-wait`` would start a new job per table (issue 20, item
    3). ``None`` when the table is current enough, or its target takes snapshots only."""
    if step.action != "resume" or target.sync == "snapshot" or began is None:
        return None
    if state.watermark is None or catch_up_after == "never":
        return None
    age = (began - state.watermark).total_seconds()
    if age <= 0 or age <= catch_up_after:
        return None
    return dataclasses.replace(
        plan_table(step.profile, target, step.table, state),
        reason=f"the resumed job ended at {format_time(state.watermark)}, {age:.0f} s before "
        f"this apply began (catch_up_after = {catch_up_after:g}): continues from there",
    )


def reload_snapshot(step: Step, table: str, changes: Sequence[str]) -> Step | None:
    """The snapshot that rebuilds a database table whose new schema an incremental cannot
    apply in place (``None`` if ``step`` was no incremental)."""
    if step.action not in ("incremental", "resume"):
        return None
    return step.as_snapshot(
        f"table {table} needs a reload ({'; '.join(changes)}): took a snapshot instead"
    )

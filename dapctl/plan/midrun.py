"""The rules apply asks mid-run, as pure functions of what it has learned by then.

Apply carries out the plan and never re-derives intent: when the server or a destination
tells it something the plan could not know, it passes that in here and does what comes back.
None does I/O or reads a clock (the time is passed in).

Starting and resuming a step's job (``dapctl.jobs``): ``ask_for`` is the job a step asks for;
when the server says an incremental window is gone, ``fallback_snapshot`` is the snapshot
that replaces it (if the config allows one) and ``fallback_ask`` the job to ask for then. A
recorded job is resumed as ``resumed`` says, unless it ``expired`` or was asked for in an
``other_format`` than its target now wants; then, or when it is gone, ``after_lost_job`` plans
the table afresh.

Landing a finished job (``dapctl.landing``): ``stale_fallback`` refuses a fallback snapshot no
later than the watermark it replaces, ``empty_window`` writes nothing for an incremental that
ends where it starts, ``name_taken`` refuses an incremental whose file name another output
holds, ``publishes`` says whether a job with no records is written, ``follow_up`` is the
incremental that brings a resumed table current, and ``reload_snapshot`` the snapshot that
rebuilds a database table whose new schema cannot be applied in place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from dapctl.config import Settings, Target
from dapctl.errors import OutputError
from dapctl.plan.planner import plan_table
from dapctl.plan.step import Step
from dapctl.state import Kind, StepState
from dapctl.text import format_time

# A resumed job must outlive its download: its objects expire with it.
RESUME_MARGIN = timedelta(minutes=5)

Wire = tuple[str, str | None]  # a query's format and mode (``Destination.wire_format``)


# -- starting and resuming a job ------------------------------------------------------------


@dataclass(frozen=True)
class Ask:
    """The query job a step asks the server for, or resumes: its kind, the start of an
    incremental's window, notes on why, and the window a fallback snapshot replaces (which
    ``stale_fallback`` checks the snapshot against)."""

    kind: Kind
    since: datetime | None = None
    notes: tuple[str, ...] = ()
    gone_since: datetime | None = None

    @property
    def fallback(self) -> bool:
        """Whether this is a snapshot taken because an incremental window was gone."""
        return self.gone_since is not None


def ask_for(step: Step) -> Ask:
    """The job ``step`` asks for: an incremental since ``step.since``, else a snapshot."""
    since = step.since if step.action == "incremental" else None
    return Ask("incremental" if since is not None else "snapshot", since)


def fallback_snapshot(step: Step, since: datetime | None, settings: Settings) -> Step | None:
    """The snapshot that replaces an incremental whose window is gone, or ``None`` when the
    config says to fail instead (or the step was no incremental)."""
    if since is None or settings.on_snapshot_required != "snapshot":
        return None
    return step.as_snapshot(
        f"the incremental window since {format_time(since)} is gone: took a snapshot "
        'instead (on_snapshot_required = "snapshot")'
    )


def fallback_ask(ask: Ask, snapshot: Step) -> Ask:
    """The job to ask for in place of ``ask``, whose incremental window the server says is
    gone: ``snapshot`` (from ``fallback_snapshot``), noting why and remembering the window."""
    return Ask("snapshot", None, (*ask.notes, snapshot.reason), gone_since=ask.since)


def expired(expires_at: datetime | None, now: datetime) -> bool:
    """Whether a recorded job expires too soon to resume: its objects go with it, and a job
    about to expire would vanish mid-download (``RESUME_MARGIN``)."""
    return expires_at is not None and expires_at <= now + RESUME_MARGIN


def other_format(asked: Wire, wanted: Wire) -> str | None:
    """Why a recorded job asked for as ``asked`` no longer fits a target that now wants
    ``wanted`` (the config changed while the job waited), or ``None`` when it still does."""
    if asked == wanted:
        return None
    return f"was asked for as {_shown(asked)}, the target now wants {_shown(wanted)}"


def _shown(wire: Wire) -> str:
    fmt, mode = wire
    return f"{fmt} ({mode})" if mode else fmt


def resumed(step: Step, state: StepState, job_id: str) -> Ask:
    """The job ``job_id`` that ``step`` resumes, as its recorded state describes it. A
    fallback snapshot replaces the window since the watermark, which has not moved."""
    pending = state.pending
    return Ask(
        pending.kind if pending else "snapshot",
        step.since,
        (f"resumed job {job_id} started by an earlier apply",),
        gone_since=state.watermark if pending and pending.fallback else None,
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


def empty_window(kind: Kind, since: datetime | None, watermark: datetime) -> str | None:
    """Why a finished job writes nothing, when it is an incremental whose window ends no later
    than it starts (``None`` otherwise). Nothing can have changed in it, and a file named by
    its ``until`` would replace the previous run's file of the same name."""
    if kind != "incremental" or since is None or watermark > since:
        return None
    return f"nothing new since {format_time(since)}: no file written"


def name_taken(kind: Kind, location: str, *, taken: bool) -> OutputError | None:
    """The error that refuses an incremental whose output ``location`` is ``taken`` by
    another output (a resumed job's own partial output does not count), or ``None``. An
    incremental never replaces a file, which may hold changes found nowhere else; a snapshot
    is the table's whole content and replaces it."""
    if kind != "incremental" or not taken:
        return None
    return OutputError(
        f"{location} exists already; an incremental never replaces a file, which "
        "may hold changes found nowhere else",
        hint="two windows that end within the same second share a file name; the next "
        "apply starts a new job, whose window ends later",
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

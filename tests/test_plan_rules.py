"""The rules apply asks mid-run (``dapctl.plan.midrun``): pure functions of what jobs and landing
have learned, each given the facts and checked for the step, reason or verdict it returns
(issue 21, item 5: the decisions jobs and landing made inline now live in the plan)."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dapctl.config import Config, Settings
from dapctl.errors import OutputError
from dapctl.plan import (
    RESUME_MARGIN,
    Ask,
    Step,
    ask_for,
    empty_window,
    expired,
    fallback_ask,
    fallback_snapshot,
    name_taken,
    other_format,
    plan_table,
    resumed,
)
from dapctl.state import PendingJob, StepState
from dapctl.text import format_time

T1 = datetime(2026, 11, 2, 3, 4, 5, tzinfo=UTC)
T2 = datetime(2026, 11, 1, tzinfo=UTC)
PLAN = Path(__file__).resolve().parent.parent / "dapctl" / "plan"


def step_for(state: StepState | None = None, **target: object) -> Step:
    config = Config.model_validate(
        {
            "profiles": {"univ_a": {"emulator": True}},
            "targets": [{"name": "core", "tables": ["accounts"], **target}],
        }
    )
    return plan_table("univ_a", config.targets[0], "accounts", state or StepState())


def job(kind: str = "incremental", since: datetime | None = T2, **kw: object) -> PendingJob:
    return PendingJob(job_id="job-7", kind=kind, since=since, started_at=T1, **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- starting a job


def test_an_incremental_step_asks_for_its_window():
    ask = ask_for(step_for(StepState(watermark=T2)))

    assert ask == Ask("incremental", T2)
    assert not ask.fallback


@pytest.mark.parametrize(
    ("state", "target"),
    [(StepState(), {}), (StepState(watermark=T2), {"sync": "snapshot"})],
    ids=["first run", "snapshots only"],
)
def test_a_step_that_is_no_incremental_asks_for_a_snapshot(state, target):
    step = step_for(state, **target)

    assert ask_for(step) == Ask("snapshot", None)


def test_a_gone_window_falls_back_to_a_snapshot_that_remembers_it():
    step = step_for(StepState(watermark=T2))
    snapshot = fallback_snapshot(step, T2, Settings())
    assert snapshot is not None

    ask = fallback_ask(ask_for(step), snapshot)

    assert ask == Ask("snapshot", None, (snapshot.reason,), gone_since=T2)
    assert ask.fallback
    assert f"window since {format_time(T2)} is gone" in snapshot.reason


def test_a_fallback_keeps_the_notes_before_it():
    snapshot = step_for().as_snapshot("the window is gone")

    ask = fallback_ask(Ask("incremental", T2, ("earlier",)), snapshot)

    assert ask.notes == ("earlier", "the window is gone")


def test_no_fallback_snapshot_when_the_config_says_fail_or_there_was_no_window():
    step = step_for(StepState(watermark=T2))

    assert fallback_snapshot(step, T2, Settings(on_snapshot_required="fail")) is None
    assert fallback_snapshot(step, None, Settings()) is None


# --------------------------------------------------------------------------- resuming a job


@pytest.mark.parametrize(
    ("expires_at", "verdict"),
    [
        (None, False),  # a job without an expiry never expires
        (T1 + RESUME_MARGIN + timedelta(seconds=1), False),
        (T1 + RESUME_MARGIN, True),  # would vanish mid-download
        (T1 + timedelta(seconds=1), True),
        (T1 - timedelta(hours=1), True),
    ],
)
def test_a_job_expiring_within_the_margin_is_not_resumed(expires_at, verdict):
    assert expired(expires_at, T1) is verdict


@pytest.mark.parametrize(
    ("asked", "wanted", "why"),
    [
        (("csv", None), ("csv", None), None),
        (("tsv", "condensed"), ("tsv", "condensed"), None),
        (("csv", None), ("jsonl", None), "was asked for as csv, the target now wants jsonl"),
        (
            ("tsv", "condensed"),
            ("tsv", "expanded"),
            "was asked for as tsv (condensed), the target now wants tsv (expanded)",
        ),
    ],
)
def test_a_job_asked_for_in_another_format_is_not_resumed(asked, wanted, why):
    assert other_format(asked, wanted) == why


def test_a_resumed_job_is_what_its_record_says():
    state = StepState(watermark=T1, pending=job("incremental", T2))
    step = step_for(state)

    ask = resumed(step, state, "job-7")

    assert ask == Ask(
        "incremental", T2, ("resumed job job-7 started by an earlier apply",), gone_since=None
    )


def test_a_resumed_fallback_snapshot_replaces_the_window_since_the_watermark():
    state = StepState(watermark=T2, pending=job("snapshot", None, fallback=True))

    ask = resumed(step_for(state), state, "job-7")

    assert (ask.kind, ask.since, ask.gone_since, ask.fallback) == ("snapshot", None, T2, True)


def test_a_resumed_snapshot_that_was_no_fallback_replaces_no_window():
    state = StepState(watermark=T2, pending=job("snapshot", None))

    assert resumed(step_for(state), state, "job-7").gone_since is None


def test_a_resume_without_a_record_is_a_snapshot():
    step = step_for(StepState(pending=job()))

    assert resumed(step, StepState(), "job-7").kind == "snapshot"


# --------------------------------------------------------------------------- landing a job


@pytest.mark.parametrize("watermark", [T2, T2 - timedelta(seconds=1)])
def test_an_incremental_ending_where_it_starts_writes_nothing(watermark):
    assert empty_window("incremental", T2, watermark) == (
        f"nothing new since {format_time(T2)}: no file written"
    )


@pytest.mark.parametrize(
    ("kind", "since"),
    [("incremental", T2), ("snapshot", None), ("snapshot", T2), ("incremental", None)],
)
def test_a_window_with_time_in_it_or_a_snapshot_is_written(kind, since):
    assert empty_window(kind, since, T1) is None


def test_an_incremental_never_replaces_a_taken_name():
    refused = name_taken("incremental", "out/accounts/x.jsonl", taken=True)

    assert isinstance(refused, OutputError)
    assert refused.message.startswith("out/accounts/x.jsonl exists already;")
    assert refused.hint is not None and "the next apply starts a new job" in refused.hint


@pytest.mark.parametrize(("kind", "taken"), [("snapshot", True), ("incremental", False)])
def test_a_snapshot_replaces_a_name_and_a_free_name_is_used(kind, taken):
    assert name_taken(kind, "out/accounts/x.jsonl", taken=taken) is None


# --------------------------------------------------------------------------- purity


IMPURE = ("dapctl.api", "dapctl.outputs", "dapctl.databases", "dapctl.cli", "dapctl.jobs")
IMPURE_STDLIB = {"os", "time", "socket", "threading", "logging", "random", "pathlib", "shutil"}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("module", sorted(p.name for p in PLAN.glob("*.py")))
def test_the_plan_does_no_io_and_reads_no_clock(module):
    path = PLAN / module
    imported = _imports(path)
    text = path.read_text(encoding="utf-8")

    assert [m for m in imported if m.startswith(IMPURE)] == []
    assert imported & IMPURE_STDLIB == set()
    assert ".now(" not in text and ".today(" not in text

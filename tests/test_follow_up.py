"""A clean apply leaves every table current: a job an earlier apply started, whose data is
older than ``settings.catch_up_after`` when this apply begins, is followed by an incremental in
the same run (issue "Tried as a new user would", item 5). A job fresher than that is not: each
follow-up spends one of DAP's five job creations a minute, and the collect run after
``--no-wait`` would start a new job per table and wait for its quota (issue 20, item 3)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from dapctl.config import Config
from dapctl.loading import load_config
from dapctl.plan import follow_up, plan_table
from dapctl.state import LocalStateStore, PendingJob, StepState
from tests.apply_helpers import apply, config_text, environ

USERS = "univ_a/core/canvas.users"
HOUR = 3600
ENDED = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)  # the resumed job's watermark


# --------------------------------------------------------------------------- plan.follow_up


def after_resume(
    age: float, catch_up_after: float | str = HOUR, **target: Any
) -> tuple[str, Any] | None:
    """``follow_up`` for a resumed incremental that ended ``age`` seconds before the apply
    began: ``None``, or the follow-up's action and since."""
    config = Config.model_validate(
        {
            "profiles": {"univ_a": {"emulator": True}},
            "targets": [{"name": "core", "tables": ["users"], **target}],
        }
    )
    [target_] = config.targets
    job = PendingJob(job_id="job-7", kind="incremental", since=ENDED, started_at=ENDED)
    resumed = plan_table("univ_a", target_, "users", StepState(pending=job))
    after = follow_up(
        resumed,
        target_,
        StepState(watermark=ENDED),  # the state once the resumed job is collected
        began=ENDED + timedelta(seconds=age),
        catch_up_after=catch_up_after,  # type: ignore[arg-type]
    )
    return None if after is None else (after.action, after.since)


def test_a_job_fresher_than_the_bound_needs_no_follow_up():
    assert after_resume(60) is None
    assert after_resume(HOUR) is None  # as old as the bound, not older


def test_a_job_older_than_the_bound_is_followed_from_its_end():
    assert after_resume(HOUR + 1) == ("incremental", ENDED)
    assert after_resume(90, catch_up_after=60) == ("incremental", ENDED)


def test_catch_up_after_0_follows_any_job_that_ended_before_the_apply():
    assert after_resume(1, catch_up_after=0) == ("incremental", ENDED)
    assert after_resume(0, catch_up_after=0) is None  # current: nothing to catch up


def test_catch_up_after_never_follows_no_job():
    assert after_resume(30 * 24 * HOUR, catch_up_after="never") is None


def test_a_snapshot_only_target_is_never_followed():
    assert after_resume(2 * HOUR, sync="snapshot") is None


def test_the_reason_says_how_old_the_job_was_and_the_bound():
    config = Config.model_validate(
        {"profiles": {"univ_a": {"emulator": True}}, "targets": [{"name": "core", "tables": ["u"]}]}
    )
    target = config.targets[0]
    job = PendingJob(job_id="job-7", kind="snapshot", started_at=ENDED)
    resumed = plan_table("univ_a", target, "u", StepState(pending=job))
    after = follow_up(
        resumed,
        target,
        StepState(watermark=ENDED),
        began=ENDED + timedelta(hours=2),
        catch_up_after=HOUR,
    )
    assert after is not None
    assert "7200 s before this apply began (catch_up_after = 3600)" in after.reason


# --------------------------------------------------------------------------- against the emulator


def test_a_resumed_job_behind_the_server_is_followed_by_an_incremental(make_emulator, write_config):
    # Behind by more than catch_up_after (the README's table of guarantees names this test).
    emu = make_emulator()
    path = write_config(config_text(emu, tables='["users"]'))
    apply(path, emu)
    apply(path, emu, no_wait=True)  # an incremental job, recorded, not collected
    started_at = emu.now
    emu.advance(2 * HOUR)  # the default bound is an hour
    emu.change("canvas", "users", inserts=3, updates=2)

    results = apply(path, emu)

    assert [(r.kind, r.status) for r in results] == [("incremental", "ok")] * 2
    resumed, follow = results
    assert resumed.until == started_at and follow.since == started_at
    assert follow.until == emu.now and follow.records == 5
    assert LocalStateStore(load_config(path).state_path).read().step(USERS).watermark == emu.now


def test_a_resumed_job_that_is_current_needs_no_follow_up(make_emulator, write_config):
    emu = make_emulator()
    path = write_config(config_text(emu, tables='["users"]'))
    apply(path, emu, no_wait=True)  # a snapshot job; the data clock stays where it is

    results = apply(path, emu)

    assert [(r.kind, r.status) for r in results] == [("snapshot", "ok")]
    assert emu.stats.jobs_created == 1


THREE = '["accounts", "users", "courses"]'


def no_wait_then_collect(
    make_emulator, write_config, run_cli, settings: str = ""
) -> tuple[Any, list[dict[str, Any]]]:
    """``dapctl apply --no-wait`` on three tables, a minute of the server's clock, then the
    collect run, through ``main(argv)``: the emulator and the collect run's results.

    The emulator is live, its data clock (its ``Date`` header) the wall clock as a real
    server's is; the minute makes sure each job's watermark is before the collect run began,
    as it always is against DAP, so the jobs are behind, but fresher than the bound.
    """
    emu = make_emulator(live=True)
    path = write_config(config_text(emu, tables=THREE, settings=settings))
    started = run_cli("apply", str(path), "--no-wait", "--json", environ=environ(emu))
    assert [r["status"] for r in json.loads(started.stdout)["results"]] == ["started"] * 3
    emu.advance(60)
    collected = run_cli("apply", str(path), "--json", environ=environ(emu))
    assert collected.code == 0, collected.stderr
    document = json.loads(collected.stdout)
    assert document["ok"] is True
    return emu, document["results"]


def test_a_collect_run_after_no_wait_starts_no_job(make_emulator, write_config, run_cli):
    emu, collected = no_wait_then_collect(make_emulator, write_config, run_cli)

    assert [(r["kind"], r["status"]) for r in collected] == [("snapshot", "ok")] * 3
    assert emu.stats.jobs_created == 3  # the --no-wait run's, and no other


def test_catch_up_after_0_follows_even_a_fresh_job(make_emulator, write_config, run_cli):
    emu, collected = no_wait_then_collect(
        make_emulator, write_config, run_cli, settings="catch_up_after = 0"
    )

    kinds = sorted((r["kind"], r["status"]) for r in collected)
    assert kinds == [("incremental", "ok")] * 3 + [("snapshot", "ok")] * 3
    assert emu.stats.jobs_created == 6


def test_catch_up_after_never_leaves_even_an_old_job_to_the_next_run(make_emulator, write_config):
    emu = make_emulator()
    path = write_config(config_text(emu, tables='["users"]', settings='catch_up_after = "never"'))
    apply(path, emu, no_wait=True)
    emu.advance(24 * HOUR)

    results = apply(path, emu)

    assert [(r.kind, r.status) for r in results] == [("snapshot", "ok")]
    assert emu.stats.jobs_created == 1

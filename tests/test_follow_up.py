"""A clean apply leaves every table current: a job an earlier apply started, which ends
before this apply began, is followed by an incremental in the same run (issue "Tried as a
new user would", item 5)."""

from __future__ import annotations

from dapctl.loading import load_config
from dapctl.state import LocalStateStore
from tests.apply_helpers import apply, config_text

USERS = "univ_a/core/canvas.users"


def test_a_resumed_job_behind_the_server_is_followed_by_an_incremental(make_emulator, write_config):
    emu = make_emulator()
    path = write_config(config_text(emu, tables='["users"]'))
    apply(path, emu)
    apply(path, emu, no_wait=True)  # an incremental job, recorded, not collected
    started_at = emu.now
    emu.advance(600)
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

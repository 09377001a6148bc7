"""DAP's five independent rate limits, end to end against an emulator that enforces them.

A 429 costs the ``Retry-After`` the server asked for and no slot of the client's budget; a
table listing spends no job-creation slot; and the budget outlives the process, so applies
run back to back earn no 429 from a server that remembers the last window.
"""

from __future__ import annotations

import dataclasses
import time

from dapctl.apply import ApplyOptions
from dapctl.emulator import RateLimits
from dapctl.loading import load_config
from dapctl.wiring import run_apply
from tests.apply_helpers import FAST, config_text, environ

DEFAULT_LIMITS = "# the published limits: rate_limits left at their defaults"
FIVE = ["*/core/canvas.[aceu]*"]  # accounts, assignments, courses, enrollments, users


def _apply(path, emu, connection=FAST, **options):
    return run_apply(
        load_config(path),
        environ=environ(emu),
        options=ApplyOptions(**options),
        connection=connection,
    )


def test_every_third_call_refused_with_retry_after_1_costs_seconds_not_a_minute(
    make_emulator, write_config
):
    # Five tables use the whole job-creation budget of a minute; a refused creation that
    # was charged a slot would hold the last table back a whole window.
    emu = make_emulator(rate_limits=True)
    emu.faults.fail_every(3, status=429, retry_after=1)
    tables = '["accounts", "users", "courses", "enrollments", "assignments"]'
    path = write_config(config_text(emu, tables=tables, profile_extra=DEFAULT_LIMITS))
    started = time.monotonic()

    results = _apply(path, emu)

    elapsed = time.monotonic() - started
    assert [r.status for r in results] == ["ok"] * 5, results
    assert emu.stats.injected_errors >= 2  # the fault fired
    assert elapsed < 10, f"{elapsed:.1f} s: a refused send was charged a whole window"


def test_listing_all_tables_spends_no_job_creation_slot(make_emulator, write_config):
    emu = make_emulator(rate_limits=True)
    path = write_config(config_text(emu, tables='"all"', profile_extra=DEFAULT_LIMITS))
    started = time.monotonic()

    results = _apply(path, emu, targets=FIVE)

    assert [r.status for r in results if r.kind != "list"] == ["ok"] * 5, results
    assert time.monotonic() - started < 30  # a second job-creation window would be 60 s
    assert emu.stats.rate_limited == 0


def _back_to_back(make_emulator, write_config, *, keep: bool) -> int:
    window = 3.0  # the published quota, squeezed into 3 s on both sides
    emu = make_emulator(rate_limits=RateLimits(window=window))
    path = write_config(config_text(emu, tables='"all"', profile_extra=DEFAULT_LIMITS))
    connection = dataclasses.replace(FAST, window=window, keep_budgets=keep)
    for _ in range(3):
        results = _apply(path, emu, connection=connection, targets=FIVE)
        assert all(r.status == "ok" for r in results), results
    return emu.stats.rate_limited


def test_applies_back_to_back_earn_no_429_because_the_budget_outlives_the_process(
    make_emulator, write_config
):
    assert _back_to_back(make_emulator, write_config, keep=True) == 0


def test_without_the_kept_budget_the_same_applies_do_earn_429s(make_emulator, write_config):
    """The control: this is what the kept budget prevents."""
    assert _back_to_back(make_emulator, write_config, keep=False) > 0

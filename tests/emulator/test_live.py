"""Live data (issue 14 #20): the embedded demo's data follows from the clock alone, so two
emulators minutes apart (two processes) agree on the past and the later one sees inserts,
updates and deletes. Clocks are pinned, so every number here is the same on every run."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dapctl.emulator import Emulator, EmulatorSettings
from dapctl.emulator.live import Life, Schedule
from tests.clock import T0, FakeClock

TABLES = ("accounts", "courses", "users", "enrollments")


def demo(now: float) -> Emulator:
    """An embedded emulator as a process started at ``now`` would have it (not serving)."""
    return Emulator(EmulatorSettings.embedded(), clock=FakeClock(now))


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def fold(snapshot: list[dict], changes: list[dict]) -> dict[str, dict]:
    rows = {str(r["key"]): r for r in snapshot}
    for record in changes:
        if record["meta"]["action"] == "D":
            rows.pop(str(record["key"]), None)
        else:
            rows[str(record["key"])] = record
    return rows


@pytest.mark.parametrize("table", TABLES)
def test_two_processes_minutes_apart_agree_on_the_past_and_the_later_sees_changes(table):
    first, later = demo(T0), demo(T0 + 300)

    then = first.expected_snapshot("canvas", table)
    assert later.expected_snapshot("canvas", table, at=at(T0)) == then
    changes = later.expected_changes("canvas", table, since=at(T0))

    before = {str(r["key"]) for r in then}
    upserts = [r for r in changes if r["meta"]["action"] == "U"]
    inserts = [r for r in upserts if str(r["key"]) not in before]
    deletes = [r for r in changes if r["meta"]["action"] == "D"]
    assert inserts and deletes and len(upserts) > len(inserts), changes  # updates too
    now = {str(r["key"]): r for r in later.expected_snapshot("canvas", table)}
    assert fold(then, changes) == now


def test_the_live_clock_is_the_clock_and_advance_moves_it_on():
    clock = FakeClock(T0)
    emu = Emulator(EmulatorSettings.embedded(), clock=clock)
    assert emu.now == at(T0)
    clock.tick(90.5)
    assert emu.now == at(T0 + 90)
    assert emu.advance(3600) == at(T0 + 3690)
    with pytest.raises(ValueError, match="changes with the clock"):
        emu.change("canvas", "accounts", inserts=1)


def test_a_live_tables_history_replays_at_any_grain():
    # Folding changes over many small windows gives the same table as over one large one.
    emu = demo(T0 + 6 * 3600)
    start = int(T0)
    rows = {str(r["key"]): r for r in emu.expected_snapshot("canvas", "users", at=at(start))}
    end = start + 157 * 137  # about six hours, in windows of 137 s
    for step in range(start, end, 137):
        window = emu.expected_changes("canvas", "users", since=at(step), until=at(step + 137))
        rows = fold(list(rows.values()), window)
    assert rows == {str(r["key"]): r for r in emu.expected_snapshot("canvas", "users", at=at(end))}


def test_a_records_versions_only_move_forward_and_end_with_its_deletion():
    life = Life(key=7, base_rows=10, epoch=1_000_000, schedule=Schedule())
    record = 11 + 40  # an inserted record
    born, died = life.born(record), life.died(record)
    assert died is not None and born < died
    seen = [life.as_of(record, born, t) for t in range(born - 10, died + 7200, 97)]
    versions = [(v.version, v.ts) for v in seen if v is not None]
    assert versions == sorted(versions) and seen[0] is None
    assert seen[-1] is not None and seen[-1].deleted and seen[-1].ts == died
    assert life.died(5) is None  # base records live for ever


def test_the_static_emulator_is_unchanged():
    emu = Emulator(EmulatorSettings.for_tests(), clock=FakeClock(T0))
    before = emu.now
    emu.change("canvas", "accounts", inserts=1)
    assert emu.now == at(before.timestamp() + 1)

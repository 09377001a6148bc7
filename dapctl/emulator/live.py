"""Data that moves with the wall clock: the demo's changes, derived from time alone.

A live table (``EmulatorSettings.live``, which the embedded emulator behind ``emulator =
true`` uses) is not changed by anyone: what it holds at any moment is a pure function of the
seed, the table and that moment, so two processes minutes apart agree on the whole past and
the later one sees what happened in between (issue 14 #20: the quickstart's second run
showed no changes because each process made up new data). From the ``epoch``, each table
inserts a record about every ``insert_gap`` seconds (record ``rows + 1 + k`` is born in slot
``k``), which lives between ``min_life`` and ``max_life`` seconds and is then deleted; every
record, the base ones (``1..rows``, born before the epoch, never deleted) included, is
updated every ``period`` seconds, a period and phase of its own between ``min_period`` and
``max_period``. A record's version as of any moment is computed in constant time, and a
query looks only at the records that can have lived in its window (`Life.candidates`), so
the cost does not grow with the time since the epoch.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from dapctl.emulator.catalog import mix

#: when the demo's changes begin, unless ``EmulatorSettings.start`` says otherwise
LIVE_EPOCH = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Schedule:
    """How often a live table changes (seconds): for a 100-row table, a few inserts,
    updates and deletes in any five minutes."""

    insert_gap: int = 120
    min_life: int = 1800
    max_life: int = 5400
    min_period: int = 3600
    max_period: int = 5 * 3600


@dataclass(frozen=True)
class Version:
    """A record's latest version before some moment: its number, commit time, deletion."""

    version: int
    ts: int
    deleted: bool = False


class Life:
    """The schedule of one table: when each record is born, updated and deleted."""

    def __init__(self, key: int, base_rows: int, epoch: int, schedule: Schedule) -> None:
        self.key = key  # mixes the seed and the table, so tables change independently
        self.base_rows = base_rows
        self.epoch = epoch
        self.schedule = schedule

    def _hash(self, record_id: int, salt: int) -> int:
        return mix(self.key, record_id, salt)

    def born(self, record_id: int) -> int:
        """When an inserted record (``record_id > base_rows``) is committed."""
        gap = self.schedule.insert_gap
        slot = record_id - self.base_rows - 1
        return self.epoch + slot * gap + self._hash(record_id, 1) % gap

    def died(self, record_id: int) -> int | None:
        """When an inserted record is deleted; base records live for ever."""
        if record_id <= self.base_rows:
            return None
        s = self.schedule
        return (
            self.born(record_id)
            + s.min_life
            + self._hash(record_id, 2) % (s.max_life - s.min_life + 1)
        )

    def _updates(self, record_id: int, born: int) -> tuple[int, int]:
        """The first update's time and the period of the record's updates."""
        s = self.schedule
        period = s.min_period + self._hash(record_id, 3) % (s.max_period - s.min_period + 1)
        if record_id <= self.base_rows:
            return self.epoch + self._hash(record_id, 4) % period, period
        return born + period, period

    def as_of(self, record_id: int, born: int, until: int) -> Version | None:
        """The latest version committed before ``until`` (``born``: the record's birth)."""
        if born >= until:
            return None
        first, period = self._updates(record_id, born)
        died = self.died(record_id)
        end = until if died is None or died >= until else died
        updates = 0 if end <= first else (end - first + period - 1) // period
        if end != until:
            return Version(updates + 1, end, deleted=True)
        return Version(updates, first + (updates - 1) * period if updates else born)

    def candidates(self, since: int, until: int) -> range:
        """The inserted records that may have a version in ``[since, until)`` or be alive at
        ``until`` (a snapshot passes ``since = until``); base records are always candidates."""
        gap, lo = self.schedule.insert_gap, since - self.schedule.max_life - self.epoch
        first = max(0, lo // gap - 1)
        last = (until - self.epoch - 1) // gap
        return range(self.base_rows + 1 + first, self.base_rows + 2 + max(first - 1, last))

"""The data clock and the versioned record store behind every query.

Each table starts with ``rows`` base records (ids 1..n, version 0) whose commit times are
spread over the ``history`` before the data clock's start. `DataStore.change` commits inserts,
updates and deletes at the data clock's *now* and then moves the clock on by one second: a
commit takes time, so a query made after it (``at`` / ``until`` = now) always includes it and a
query made before it never does. Time is whole seconds since the epoch throughout.

With ``settings.live`` (the embedded demo) nothing is committed: the data clock is the wall
clock (plus whatever `DataStore.advance` added) and each table's changes follow from time
alone (`live.Life`), so emulators in two processes agree on the past; ``settings.start``, if
given, is the moment those changes begin, and `DataStore.change` is refused.

Query semantics, as the service documents them: a snapshot at ``at`` holds the latest version
of every record committed before ``at`` that is not deleted; an incremental over
``[since, until)`` holds, for every record whose latest version before ``until`` was committed
at or after ``since``, that version (deletions included, as ``meta.action = "D"``). Results
are lists of `Row` (id + version), sorted by id; `DataStore.record` turns a row into the
JSON Lines shaped dict that every format encodes.
"""

from __future__ import annotations

import bisect
import itertools
import random
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dapctl.emulator.catalog import (
    TABLES,
    TableSpec,
    format_ts,
    generic_table,
    mix,
    table_hash,
    values,
)
from dapctl.emulator.live import LIVE_EPOCH, Life, Schedule
from dapctl.emulator.settings import EmulatorSettings


@dataclass(frozen=True)
class Row:
    """One record version: which record, which version, committed when, deleted or not."""

    id: int
    version: int
    ts: int
    deleted: bool = False


@dataclass(frozen=True)
class ChangeResult:
    """What one `DataStore.change` committed, and when."""

    ts: int
    inserted: tuple[int, ...]
    updated: tuple[int, ...]
    deleted: tuple[int, ...]


@dataclass
class TableData:
    """The base records of one table plus the history of every record changed since."""

    spec: TableSpec
    base_rows: int
    start: int
    history_span: int
    seed: int
    history: dict[int, list[Row]] = field(default_factory=dict)
    next_id: int = 0
    changes: int = 0
    life: Life | None = None  # a live table's schedule: its history follows from time

    def base(self, record_id: int) -> Row:
        offset = 1 + mix(self.seed, table_hash(self.spec), record_id) % self.history_span
        return Row(record_id, 0, self.start - offset)

    def as_of(self, record_id: int, until: int) -> Row | None:
        """The latest version committed before ``until``, or None if there is none."""
        if self.life is not None:
            return self._live(self.life, record_id, until)
        versions = self.history.get(record_id)
        if versions:
            index = bisect.bisect_left([v.ts for v in versions], until)
            if index:
                return versions[index - 1]
        if record_id <= self.base_rows:
            row = self.base(record_id)
            return row if row.ts < until else None
        return None

    def _live(self, life: Life, record_id: int, until: int) -> Row | None:
        born = self.base(record_id).ts if record_id <= self.base_rows else life.born(record_id)
        found = life.as_of(record_id, born, until)
        return None if found is None else Row(record_id, found.version, found.ts, found.deleted)

    def ids(self, since: int | None = None, until: int | None = None) -> Iterable[int]:
        """The ids a query must look at: a snapshot's (no ``since``; ``until`` is its ``at``),
        or an incremental's over ``[since, until)``."""
        if self.life is not None:
            assert until is not None, "a live table is queried as of a moment"
            window = self.life.candidates(until if since is None else since, until)
            return itertools.chain(range(1, self.base_rows + 1), window)
        if since is None or since < self.start:
            return range(1, self.next_id)
        # Base records were all committed before the clock's start, so a window that starts
        # later only needs the records with a history.
        return sorted(self.history)


class DataStore:
    """All tables of one emulator, the data clock, and the change log. Thread-safe."""

    def __init__(
        self, settings: EmulatorSettings, start: int, clock: Callable[[], float] | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._now = start
        self._offset = 0  # a live clock's advances
        self._clock = clock if settings.live else None
        if settings.live:
            start = int((settings.start or LIVE_EPOCH).timestamp())
        self.seed = settings.seed
        self.generation = 0  # bumped on every commit; keys the job cache
        specs = {spec.dotted: spec for spec in TABLES}
        for dotted in settings.rows:
            specs.setdefault(dotted, generic_table(dotted))
        self.tables = {dotted: self._table(spec, settings, start) for dotted, spec in specs.items()}

    def _table(self, spec: TableSpec, settings: EmulatorSettings, start: int) -> TableData:
        rows = settings.rows.get(spec.dotted, settings.rows_per_table)
        span = max(1, int(settings.history))
        key = mix(settings.seed, table_hash(spec))
        life = Life(key, rows, start, Schedule()) if settings.live else None
        return TableData(spec, rows, start, span, settings.seed, next_id=rows + 1, life=life)

    @property
    def live(self) -> bool:
        """True when the data moves with the wall clock and nobody commits changes."""
        return self._clock is not None

    @property
    def now(self) -> int:
        with self._lock:
            return self._current()

    def _current(self) -> int:
        return self._now if self._clock is None else int(self._clock()) + self._offset

    def advance(self, seconds: float) -> int:
        """Move the data clock forward (whole seconds, rounded up); returns the new now."""
        if seconds < 0:
            raise ValueError("the data clock only moves forward")
        with self._lock:
            step = -int(-seconds // 1)
            self._now += step
            self._offset += step
            return self._current()

    def namespaces(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for table in self.tables.values():
            out.setdefault(table.spec.namespace, []).append(table.spec.name)
        return out

    def table(self, namespace: str, name: str) -> TableData | None:
        return self.tables.get(f"{namespace}.{name}")

    def snapshot(self, table: TableData, at: int) -> list[Row]:
        with self._lock:
            rows = (table.as_of(i, at) for i in table.ids(until=at))
            return [row for row in rows if row is not None and not row.deleted]

    def changes(self, table: TableData, since: int, until: int) -> list[Row]:
        with self._lock:
            rows = (table.as_of(i, until) for i in table.ids(since, until))
            return [row for row in rows if row is not None and row.ts >= since]

    def record(self, table: TableData, row: Row) -> dict[str, Any]:
        """The JSON Lines shaped record of one row (``value`` omitted for deletions)."""
        meta = {"ts": format_ts(row.ts), "action": "D" if row.deleted else "U"}
        if row.deleted:
            return {"key": table.spec.key(row.id), "meta": meta}
        value = values(table.spec, self.seed, row.id, row.version)
        return {"key": table.spec.key(row.id), "value": value, "meta": meta}

    def change(
        self,
        table: TableData,
        inserts: int = 0,
        updates: int | Sequence[int] = 0,
        deletes: int | Sequence[int] = 0,
    ) -> ChangeResult:
        """Commit changes at the data clock's now, then move the clock one second on."""
        if self.live:
            raise ValueError("a live emulator's data changes with the clock; nothing is committed")
        with self._lock:
            now = self._now
            gone = {i for i, versions in table.history.items() if versions[-1].deleted}
            live = [i for i in table.ids() if i not in gone]
            rng = random.Random(f"{self.seed}:{table.spec.dotted}:{table.changes}")
            updated = _pick(rng, live, updates, ())
            deleted = _pick(rng, live, deletes, updated)
            inserted = tuple(range(table.next_id, table.next_id + inserts))
            table.next_id += inserts
            for record_id in (*inserted, *updated, *deleted):
                versions = table.history.setdefault(record_id, [])
                version = (versions[-1].version if versions else 0) + 1
                versions.append(Row(record_id, version, now, record_id in deleted))
            table.changes += 1
            self.generation += 1
            self._now += 1
            return ChangeResult(now, inserted, updated, deleted)


def _pick(
    rng: random.Random, live: list[int], wanted: int | Sequence[int], taken: Sequence[int]
) -> tuple[int, ...]:
    """Explicit ids are used as given; a count picks that many live ids not yet taken."""
    if not isinstance(wanted, int):
        missing = sorted(set(wanted) - set(live))
        if missing:
            raise ValueError(f"cannot change records that do not exist: {missing}")
        return tuple(sorted(wanted))
    pool = sorted(set(live) - set(taken))
    if wanted > len(pool):
        raise ValueError(f"asked to change {wanted} records but only {len(pool)} are live")
    return tuple(sorted(rng.sample(pool, wanted)))

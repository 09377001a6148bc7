"""History tables (type 2 slowly changing dimension): every version of every row, kept in
the same transaction as the table and its watermark.

A history table holds the table's columns and ``valid_from``, ``valid_to`` (NULL while the
version is current), ``deleted`` (a version that records a delete), ``load_id`` (the job
that wrote it) and ``run_id`` (the apply). `Versioning` writes one load's versions, the same
way on every engine, from ``source``: a subquery of the load's latest record per key, with
the table's column names and ``_action`` (``D`` for a delete):

1. seed: a history table with no rows starts from the table as it is (one open version per
   row, from its ``meta_ts``), so history turned on mid-life needs no new job;
2. a snapshot first records a delete, at its time, for every live key it no longer holds;
3. new versions: an incremental's every record (a delete of a key with no live version is
   nothing to record), a snapshot's rows that differ from their open version, each from its
   ``meta.ts`` (else the window's time);
4. close: every older open version of a key this load gave a new one ends where the new
   one begins. An incremental closes them from its own records, found through an index on
   the open versions (PostgreSQL: partial, ``WHERE valid_to IS NULL``; MySQL: on the key),
   so its cost follows the changes, not the history's size; a snapshot, which versions
   only the rows that changed, finds them by the load's id.

Precision: DAP shows the last change of a key within each window, so versions between two
runs are not visible to anyone; a version's times are DAP's ``meta.ts``.
"""

# ruff: noqa: S608 - every name here is quoted by its dialect; every value is a parameter
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dapctl.databases.columns import META_TS, Column
from dapctl.databases.engine import load_id, snapshot_time

EXTRA = ("valid_from", "valid_to", "deleted", "load_id", "run_id")


@dataclass(frozen=True)
class Dialect:
    quote: Callable[[str], str]
    time: str  # the timestamp type
    text: str
    mark: str  # the driver's parameter marker
    same: Callable[[str, str], str]  # null-safe equality of two expressions
    # Around an incremental's versioning: statements that make the planner walk the open
    # versions' index (a few thousand probes) rather than hash or sort the whole history.
    walk: tuple[str, ...] = ()
    unwalk: tuple[str, ...] = ()


def pg_quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def my_quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


POSTGRESQL = Dialect(
    pg_quote,
    "timestamptz",
    "text",
    "%s",
    lambda a, b: f"{a} IS NOT DISTINCT FROM {b}",
    walk=("SET LOCAL enable_hashjoin = off", "SET LOCAL enable_mergejoin = off"),
    unwalk=("SET LOCAL enable_hashjoin TO DEFAULT", "SET LOCAL enable_mergejoin TO DEFAULT"),
)
DUCKDB = Dialect(
    pg_quote, "TIMESTAMPTZ", "VARCHAR", "?", lambda a, b: f"{a} IS NOT DISTINCT FROM {b}"
)
MYSQL = Dialect(my_quote, "DATETIME(6)", "VARCHAR(64)", "%s", lambda a, b: f"{a} <=> {b}")


def extra_columns(d: Dialect) -> list[tuple[str, str]]:
    return [
        ("valid_from", d.time),
        ("valid_to", d.time),
        ("deleted", "BOOLEAN NOT NULL"),
        ("load_id", d.text),
        ("run_id", d.text),
    ]


@dataclass(frozen=True)
class Versioning:
    """One load's versions into ``history`` (a quoted table name) of ``table``."""

    d: Dialect
    history: str
    table: str
    columns: Sequence[Column]

    def statements(
        self, source: str, *, snapshot: bool, at: datetime | None, load: str, run: str | None
    ) -> list[tuple[str, tuple[Any, ...]]]:
        """The statements (and parameters) of the four steps of the module doc, in order."""
        q, m = self.d.quote, self.d.mark
        keys = [q(c.name) for c in self.columns if c.key]
        names = [q(c.name) for c in self.columns]
        values = [q(c.name) for c in self.columns if not c.key]
        match = " AND ".join(f"h.{k} = s.{k}" for k in keys)
        live = "h.valid_to IS NULL AND NOT h.deleted"
        out: list[tuple[str, tuple[Any, ...]]] = [
            (
                f"INSERT INTO {self.history} ({', '.join(names)}, {self._extra()}) "
                f"SELECT {', '.join(names)}, coalesce({q(META_TS)}, {m}), NULL, FALSE, "
                f"'seed', NULL FROM {self.table} "
                f"WHERE NOT EXISTS (SELECT 1 FROM {self.history})",
                (at,),
            )
        ]
        if snapshot:
            out.append(
                (
                    f"INSERT INTO {self.history} ({', '.join(keys)}, {self._extra()}) "
                    f"SELECT {', '.join('h.' + k for k in keys)}, {m}, NULL, TRUE, {m}, {m} "
                    f"FROM {self.history} h WHERE {live} AND NOT EXISTS "
                    f"(SELECT 1 FROM {source} s WHERE {match})",
                    (at, load, run),
                )
            )
            same = " AND ".join(self.d.same(f"h.{v}", f"s.{v}") for v in values) or "TRUE"
            wanted = [
                f"NOT EXISTS (SELECT 1 FROM {self.history} h WHERE {live} AND {match} AND {same})"
            ]
        else:  # deletes first, as two statements: an OR would hide their semi-join
            wanted = [
                f"s._action = 'D' AND EXISTS (SELECT 1 FROM {self.history} h WHERE {live} "
                f"AND {match})",
                "s._action <> 'D'",
            ]
        out += [
            (
                f"INSERT INTO {self.history} ({', '.join(names)}, {self._extra()}) "
                f"SELECT {', '.join('s.' + n for n in names)}, coalesce(s.{q(META_TS)}, {m}), "
                f"NULL, s._action = 'D', {m}, {m} FROM {source} s WHERE {w}",
                (at, load, run),
            )
            for w in wanted
        ]
        return out

    def newest(self, load: str) -> tuple[str, tuple[Any, ...]]:
        """Each key this load versioned, with the start of its new version."""
        keys = ", ".join(self.d.quote(c.name) for c in self.columns if c.key)
        return (
            f"SELECT {keys}, min(valid_from) AS vf FROM {self.history} "
            f"WHERE load_id = {self.d.mark} AND valid_to IS NULL GROUP BY {keys}",
            (load,),
        )

    def close(self, newest: str, load: str) -> tuple[str, tuple[Any, ...]]:
        """End the older open versions of the keys in ``newest`` (a table or subquery)."""
        q, m = self.d.quote, self.d.mark
        match = " AND ".join(f"h.{q(c.name)} = n.{q(c.name)}" for c in self.columns if c.key)
        mine = self.d.same("h.load_id", m)
        if self.d is MYSQL:
            return (
                f"UPDATE {self.history} h JOIN {newest} n ON {match} SET h.valid_to = n.vf "
                f"WHERE h.valid_to IS NULL AND NOT ({mine})",
                (load,),
            )
        return (
            f"UPDATE {self.history} AS h SET valid_to = n.vf FROM {newest} AS n "
            f"WHERE {match} AND h.valid_to IS NULL AND NOT ({mine})",
            (load,),
        )

    def close_from(
        self, source: str, at: datetime | None, load: str
    ) -> tuple[str, tuple[Any, ...]]:
        """An incremental's step 4, from its own records: each key's open version from an
        earlier load ends at the record's time, but a delete ends only a live version (a
        delete of a key already deleted versioned nothing, so its open delete stays)."""
        q, m = self.d.quote, self.d.mark
        match = " AND ".join(f"h.{q(c.name)} = s.{q(c.name)}" for c in self.columns if c.key)
        ends = f"coalesce(s.{q(META_TS)}, {m})"
        mine = self.d.same("h.load_id", m)
        which = f"h.valid_to IS NULL AND NOT ({mine}) AND (s._action <> 'D' OR NOT h.deleted)"
        if self.d is MYSQL:
            return (
                f"UPDATE {self.history} h JOIN {source} s ON {match} SET h.valid_to = {ends} "
                f"WHERE {which}",
                (at, load),
            )
        return (
            f"UPDATE {self.history} AS h SET valid_to = {ends} FROM {source} AS s "
            f"WHERE {match} AND {which}",
            (at, load),
        )

    def _extra(self) -> str:
        return ", ".join(self.d.quote(n) for n in EXTRA)


def create(
    d: Dialect,
    history: str,
    columns: Sequence[Column],
    spell: Callable[[Column], str],
    options: str = "",
) -> str:
    """The history table, if it is not there yet (no key: a key has many versions)."""
    defs = [f"{d.quote(c.name)} {spell(c)}" for c in columns]
    defs += [f"{d.quote(n)} {t}" for n, t in extra_columns(d)]
    return f"CREATE TABLE IF NOT EXISTS {history} ({', '.join(defs)}){options}"


def setup(
    d: Dialect,
    history: str,
    columns: Sequence[Column],
    spell: Callable[[Column], str],
    options: str = "",
) -> list[str]:
    """The history table made if missing, and the table's columns it lacks added (a schema
    change reaches it as it reaches the table: NULL in older versions). MySQL adds columns
    without IF NOT EXISTS: its engine adds only the missing ones itself."""
    made = create(d, history, columns, spell, options)
    if d is MYSQL:
        return [made]
    return [made, *(f"ALTER TABLE {history} ADD COLUMN IF NOT EXISTS {d.quote(c.name)} "
                    f"{spell(c)}" for c in columns)]  # fmt: skip


def key_index(history: str, columns: Sequence[Column]) -> str:
    """MySQL's index on the history's key (it has no partial index), ``dapctl_key``: how an
    incremental finds the versions it closes."""
    keys = ", ".join(MYSQL.quote(c.name) for c in columns if c.key)
    return f"ALTER TABLE {history} ADD KEY dapctl_key ({keys})"


def open_index(history: str, columns: Sequence[Column], index: str) -> str:
    """PostgreSQL's partial index on the open versions' keys, named ``index`` (quoted). Made
    after a load's versions, so a first snapshot's million versions are indexed once, not
    row by row."""
    keys = ", ".join(POSTGRESQL.quote(c.name) for c in columns if c.key)
    return f"CREATE INDEX IF NOT EXISTS {index} ON {history} ({keys}) WHERE valid_to IS NULL"


def write_versions(
    execute: Callable[[str, tuple[Any, ...]], object],
    v: Versioning,
    source: str,
    *,
    snapshot: bool,
    record: str,
    run_id: str | None,
) -> None:
    """Run one load's versioning (see the module doc) through ``execute``, inside the load's
    transaction and before the table changes (the seed reads the table as it was)."""
    at, load = snapshot_time(record), load_id(record)
    steps = v.statements(source, snapshot=snapshot, at=at, load=load, run=run_id)
    if not snapshot:  # seed, deletes, close, then the other new versions (none to close)
        seed, deletes, others = steps
        walk, unwalk = ([(w, ()) for w in ws] for ws in (v.d.walk, v.d.unwalk))
        for text, params in [seed, *walk, deletes, v.close_from(source, at, load), others, *unwalk]:
            execute(text, params)
        return
    for text, params in steps:
        execute(text, params)
    newest, found = v.newest(load)
    if v.d is MYSQL:  # MySQL cannot update a table it reads in the same statement
        execute(f"CREATE TEMPORARY TABLE dapctl__newest AS {newest}", found)
        text, params = v.close("dapctl__newest", load)
        execute(text, params)
        execute("DROP TEMPORARY TABLE dapctl__newest", ())
    else:
        text, params = v.close(f"({newest})", load)
        execute(text, found + params)


def keep(
    execute: Callable[[str, tuple[Any, ...]], object],
    d: Dialect,
    names: tuple[str, str],
    columns: Sequence[Column],
    spell: Callable[[Column], str],
    source: str,
    *,
    kind: str,
    record: str,
    run_id: str | None,
    index: str | None = None,
) -> None:
    """`setup` then `write_versions`, for an engine whose DDL may run in the load's
    transaction; ``names``: the history table's and the table's, quoted; ``index``, on
    PostgreSQL, the name of its `open_index`."""
    history, table = names
    for text in setup(d, history, columns, spell):
        execute(text, ())
    v = Versioning(d, history, table, columns)
    write_versions(execute, v, source, snapshot=kind == "snapshot", record=record, run_id=run_id)
    if index is not None:
        execute(open_index(history, columns, index), ())

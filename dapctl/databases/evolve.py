"""Schema evolution as a pure diff: what a load must change in an existing table, if anything.

`diff(existing, wanted, mapper)` compares the columns a table has (name -> type, as the
database spells it) with the columns the DAP schema asks for (as the engine's `TypeMapper`
spells them) and returns `Change` values: ``add`` for a new column (always nullable),
``retype`` for a type the server changed. Columns the server no longer sends and columns a
user added are never touched. A retype is *in place* when every old value converts without
loss (`widens`: the neutral rules below, on the type the engine's mapper reads the old
spelling as); any other retype cannot be applied to rows that must survive, so an
incremental load raises `NeedsReload`, while a snapshot (which replaces every row) empties
the table first and then may change any type. No I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from dapctl.databases.columns import Column, ColumnType, TypeMapper
from dapctl.errors import NeedsReload as NeedsReload  # an outputs-side error the loads raise

# Old type -> new types it converts to without loss; any type converts to TEXT.
_WIDENINGS: dict[ColumnType, frozenset[ColumnType]] = {
    ColumnType.INT16: frozenset({ColumnType.INT32, ColumnType.INT64, ColumnType.FLOAT64}),
    ColumnType.INT32: frozenset({ColumnType.INT64, ColumnType.FLOAT64}),
    ColumnType.FLOAT32: frozenset({ColumnType.FLOAT64}),
}


@dataclass(frozen=True)
class Change:
    """One change to an existing table; ``old_type`` is None for an added column."""

    kind: Literal["add", "retype"]
    column: Column
    new_type: str
    old_type: str | None = None

    def describe(self) -> str:
        if self.old_type is None:
            return f"add column {self.column.name} {self.new_type}"
        return f"change type of {self.column.name}: {self.old_type} -> {self.new_type}"


def widens(old: str, new: ColumnType, mapper: TypeMapper) -> bool:
    """True when every value of the engine's type ``old`` converts to ``new`` without loss."""
    if new is ColumnType.TEXT:
        return True
    read = mapper.read(_base(old))
    return read is not None and (read is new or new in _WIDENINGS.get(read, frozenset()))


def diff(existing: Mapping[str, str], wanted: Sequence[Column], mapper: TypeMapper) -> list[Change]:
    """The changes that bring ``existing`` (name -> type) up to ``wanted``; see module doc."""
    changes = []
    for column in wanted:
        new = mapper.spell(column.type)
        old = existing.get(column.name)
        if old is None:
            changes.append(Change("add", column, new))
        elif _base(old) != _base(new):
            changes.append(Change("retype", column, new, old))
    return changes


def unsafe(changes: Sequence[Change], mapper: TypeMapper) -> list[str]:
    """Descriptions of the retypes that would not keep every existing value."""
    return [
        c.describe()
        for c in changes
        if c.old_type is not None and not widens(c.old_type, c.column.type, mapper)
    ]


def _base(type_name: str) -> str:
    # `character varying(255)` and `VARCHAR` are both plain text to DAP.
    lowered = type_name.lower().split("(")[0].strip()
    return "varchar" if lowered in ("character varying", "varchar", "text") else lowered

"""Schema evolution as a pure diff: what a load must change in an existing table, if anything.

`diff(existing, wanted, ...)` compares the columns a table has (name -> type, as the database
spells it) with the columns the DAP schema asks for and returns `Change` values: ``add`` for a
new column (always nullable), ``retype`` for a type the server changed. Columns the server no
longer sends and columns a user added are never touched. A retype is *in place* when every
old value converts without loss (`widens`); any other retype cannot be applied to rows that
must survive, so an incremental load raises `NeedsReload`, while a snapshot (which replaces
every row) empties the table first and then may change any type. No I/O here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from dapctl.databases.columns import Column
from dapctl.errors import NeedsReload as NeedsReload  # an outputs-side error the loads raise

# Old type -> new types it converts to without loss, in either backend's spelling (lowercased).
_WIDENINGS: dict[str, frozenset[str]] = {
    "smallint": frozenset({"integer", "bigint", "double precision", "double"}),
    "integer": frozenset({"bigint", "double precision", "double"}),
    "real": frozenset({"double precision", "double"}),
    "float": frozenset({"double"}),
    "json": frozenset({"jsonb"}),
    # Tables made by `dap initdb` hold UTC wall-clock times without a zone.
    "timestamp without time zone": frozenset({"timestamp with time zone"}),
    "timestamp": frozenset({"timestamp with time zone"}),
}
_TEXT = frozenset({"text", "varchar"})


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


def widens(old: str, new: str) -> bool:
    """True when every value of type ``old`` converts to ``new`` without loss."""
    old, new = old.lower(), new.lower()
    return new in _TEXT or new in _WIDENINGS.get(old, frozenset())


def diff(
    existing: Mapping[str, str],
    wanted: Sequence[Column],
    type_of: Callable[[Column], str],
) -> list[Change]:
    """The changes that bring ``existing`` (name -> type) up to ``wanted``; see module doc."""
    changes = []
    for column in wanted:
        new = type_of(column)
        old = existing.get(column.name)
        if old is None:
            changes.append(Change("add", column, new))
        elif _base(old) != _base(new):
            changes.append(Change("retype", column, new, old))
    return changes


def unsafe(changes: Sequence[Change]) -> list[str]:
    """Descriptions of the retypes that would not keep every existing value."""
    return [
        c.describe()
        for c in changes
        if c.old_type is not None and not widens(_base(c.old_type), _base(c.new_type))
    ]


def _base(type_name: str) -> str:
    # `character varying(255)` and `VARCHAR` are both plain text to DAP.
    lowered = type_name.lower().split("(")[0].strip()
    return "varchar" if lowered in ("character varying", "varchar", "text") else lowered

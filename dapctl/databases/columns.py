"""From a DAP table schema to the columns of a database table, named as ``dap initdb`` names them.

`table_columns(dap_schema)` reads the JSON the schema endpoint serves (``{"version", "schema"}``
or the bare JSON Schema) and returns the key columns first, then the value columns in schema
order, then ``meta_ts``. Fields keep their own names (``key.id`` is ``id``, ``value.name`` is
``name``), as the official client's tables have them, so queries written against those keep
working; the key fields form the primary key. Each `Column` carries its JSON ``path`` in a
record, which the backends turn into an extraction expression, and its type once, neutrally,
as a `ColumnType`; each engine's `TypeMapper` spells it (``pg_sql.TYPES``, ``duck_sql.TYPES``).

=====================================  ==========
DAP JSON Schema                        ColumnType
=====================================  ==========
integer, format int16                  INT16
integer, format int32                  INT32
integer (int64 or no format)           INT64
number, format float32 / float         FLOAT32
number (float64, double, none)         FLOAT64
boolean                                BOOLEAN
string, format date-time               TIMESTAMP
string, format date                    DATE
string, format time                    TIME
string, format uuid                    UUID
string (also enum, maxLength)          TEXT
object, array, oneOf, anything else    JSON
meta.ts (extra column ``meta_ts``)     TIMESTAMP
=====================================  ==========

Departures from ``dap initdb``, on purpose: timestamps keep their zone, enums are plain text (no
enum types to migrate when the server adds a value), strings are never ``varchar(n)``, arrays
are JSON rather than SQL arrays, and ``meta_ts`` records when DAP last changed the row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from dapctl.errors import ConfigError
from dapctl.identifiers import IDENTIFIER_RULE as IDENTIFIER_RULE
from dapctl.identifiers import check_identifier as check_identifier
from dapctl.identifiers import is_identifier as is_identifier

META_TS = "meta_ts"


class ColumnType(Enum):
    """DAP's column types, as no engine in particular spells them."""

    INT16 = "int16"
    INT32 = "int32"
    INT64 = "int64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    BOOLEAN = "boolean"
    TIMESTAMP = "timestamp"  # with its time zone
    DATE = "date"
    TIME = "time"  # of day, no zone
    UUID = "uuid"
    TEXT = "text"
    JSON = "json"  # objects, arrays and anything else


_INTEGERS = {"int16": ColumnType.INT16, "int32": ColumnType.INT32}
_STRINGS = {
    "date-time": ColumnType.TIMESTAMP,
    "date": ColumnType.DATE,
    "time": ColumnType.TIME,
    "uuid": ColumnType.UUID,
}


@dataclass(frozen=True)
class Column:
    """One column of a DAP-managed table and where its value lives in a record."""

    name: str
    type: ColumnType
    nullable: bool
    key: bool
    path: tuple[str, ...]

    @property
    def is_json(self) -> bool:
        return self.type is ColumnType.JSON


@dataclass(frozen=True)
class TypeMapper:
    """How one engine spells each `ColumnType` (``names``, every type), and the other
    spellings of its own that a table may hold (``adopted``, lowercased, no modifiers: a
    ``dap initdb`` table's zoneless timestamps), each read as the type its values convert to
    without loss."""

    names: Mapping[ColumnType, str]
    adopted: Mapping[str, ColumnType] = field(default_factory=dict)

    def spell(self, column_type: ColumnType) -> str:
        return self.names[column_type]

    def read(self, spelling: str) -> ColumnType | None:
        """The type a table's column type (lowercased, no modifiers) holds, if known."""
        for column_type, name in self.names.items():
            if name.lower() == spelling:
                return column_type
        return self.adopted.get(spelling)


def table_columns(dap_schema: Mapping[str, Any]) -> list[Column]:
    """The table's columns: key fields, value fields, then ``meta_ts``; see the module doc."""
    schema = dap_schema.get("schema", dap_schema)
    props = schema.get("properties", {})
    key = props.get("key", {})
    if not key.get("properties"):
        raise ConfigError("the DAP schema has no key fields (properties.key.properties)")
    out = _fields("key", key, key=True)
    out += _fields("value", props.get("value", {}), key=False)
    out.append(Column(META_TS, ColumnType.TIMESTAMP, True, False, ("meta", "ts")))
    seen: set[str] = set()
    for column in out:
        if column.name in seen:
            raise ConfigError(f"the DAP schema names column {column.name!r} twice")
        seen.add(column.name)
    return out


def _fields(section: str, node: Mapping[str, Any], *, key: bool) -> list[Column]:
    required = set(node.get("required", ()))
    out = []
    for name, spec in node.get("properties", {}).items():
        kind = column_type(spec)
        check_identifier(name, f"column name in {section}")
        out.append(Column(name, kind, not key and name not in required, key, (section, name)))
    return out


def column_type(spec: Mapping[str, Any]) -> ColumnType:
    """The `ColumnType` of one JSON Schema property (see the module docstring)."""
    kind, fmt = spec.get("type"), spec.get("format")
    if isinstance(kind, list):  # ["string", "null"]: the non-null member decides
        rest = [k for k in kind if k != "null"]
        kind = rest[0] if len(rest) == 1 else None
    if kind == "integer":
        return _INTEGERS.get(str(fmt), ColumnType.INT64)
    if kind == "number":
        return ColumnType.FLOAT32 if fmt in ("float32", "float") else ColumnType.FLOAT64
    if kind == "boolean":
        return ColumnType.BOOLEAN
    if kind == "string":
        return _STRINGS.get(str(fmt), ColumnType.TEXT)
    return ColumnType.JSON

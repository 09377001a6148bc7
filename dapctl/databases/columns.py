"""From a DAP table schema to the columns of a database table, named as ``dap initdb`` names them.

`table_columns(dap_schema)` reads the JSON the schema endpoint serves (``{"version", "schema"}``
or the bare JSON Schema) and returns the key columns first, then the value columns in schema
order, then ``meta_ts``. Fields keep their own names (``key.id`` is ``id``, ``value.name`` is
``name``), as the official client's tables have them, so queries written against those keep
working; the key fields form the primary key. Each `Column` carries its JSON ``path`` in a
record, which the backends turn into an extraction expression.

=====================================  ======================  ==============
DAP JSON Schema                        PostgreSQL              DuckDB
=====================================  ======================  ==============
integer, format int16                  smallint                SMALLINT
integer, format int32                  integer                 INTEGER
integer (int64 or no format)           bigint                  BIGINT
number, format float32 / float         real                    FLOAT
number (float64, double, none)         double precision        DOUBLE
boolean                                boolean                 BOOLEAN
string, format date-time               timestamptz             TIMESTAMPTZ
string, format date                    date                    DATE
string, format time                    time                    TIME
string, format uuid                    uuid                    UUID
string (also enum, maxLength)          text                    VARCHAR
object, array, oneOf, anything else    jsonb                   JSON
meta.ts (extra column ``meta_ts``)     timestamptz             TIMESTAMPTZ
=====================================  ======================  ==============

Departures from ``dap initdb``, on purpose: timestamps keep their zone, enums are plain text (no
enum types to migrate when the server adds a value), strings are never ``varchar(n)``, arrays
are jsonb rather than SQL arrays, and ``meta_ts`` records when DAP last changed the row.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dapctl.errors import ConfigError

META_TS = "meta_ts"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*\Z")
_INTEGERS = {"int16": ("smallint", "SMALLINT"), "int32": ("integer", "INTEGER")}
TIMESTAMPTZ = ("timestamp with time zone", "TIMESTAMP WITH TIME ZONE")
_STRINGS = {
    "date-time": TIMESTAMPTZ,
    "date": ("date", "DATE"),
    "time": ("time without time zone", "TIME"),
    "uuid": ("uuid", "UUID"),
}
JSON_TYPES = ("jsonb", "JSON")


@dataclass(frozen=True)
class Column:
    """One column of a DAP-managed table and where its value lives in a record."""

    name: str
    pg_type: str
    duck_type: str
    nullable: bool
    key: bool
    path: tuple[str, ...]

    @property
    def is_json(self) -> bool:
        return self.pg_type == "jsonb"


IDENTIFIER_RULE = (
    "use letters, digits and underscores, starting with a letter or underscore, at most 63 bytes"
)


def is_identifier(name: str) -> bool:
    """Whether ``name`` is a plain SQL identifier (63 bytes at most), as both backends take."""
    return bool(_IDENTIFIER.match(name)) and len(name.encode()) <= 63


def check_identifier(name: str, what: str = "name") -> str:
    """Return ``name`` if it is a plain SQL identifier (63 bytes at most), else raise."""
    if not is_identifier(name):
        raise ConfigError(f"invalid {what} {name!r}: {IDENTIFIER_RULE}")
    return name


def table_columns(dap_schema: Mapping[str, Any]) -> list[Column]:
    """The table's columns: key fields, value fields, then ``meta_ts``; see the module doc."""
    schema = dap_schema.get("schema", dap_schema)
    props = schema.get("properties", {})
    key = props.get("key", {})
    if not key.get("properties"):
        raise ConfigError("the DAP schema has no key fields (properties.key.properties)")
    out = _fields("key", key, key=True)
    out += _fields("value", props.get("value", {}), key=False)
    out.append(Column(META_TS, *TIMESTAMPTZ, True, False, ("meta", "ts")))
    seen: set[str] = set()
    for column in out:
        if column.name in seen:
            raise ConfigError(f"the DAP schema names column {column.name!r} twice")
        seen.add(column.name)
    return out


def _fields(section: str, node: Mapping[str, Any], *, key: bool) -> list[Column]:
    required = set(node.get("required", ()))
    out = []
    for name, field in node.get("properties", {}).items():
        pg, duck = column_types(field)
        check_identifier(name, f"column name in {section}")
        out.append(Column(name, pg, duck, not key and name not in required, key, (section, name)))
    return out


def column_types(field: Mapping[str, Any]) -> tuple[str, str]:
    """The (PostgreSQL, DuckDB) types of one JSON Schema property."""
    kind, fmt = field.get("type"), field.get("format")
    if isinstance(kind, list):  # ["string", "null"]: the non-null member decides
        rest = [k for k in kind if k != "null"]
        kind = rest[0] if len(rest) == 1 else None
    if kind == "integer":
        return _INTEGERS.get(str(fmt), ("bigint", "BIGINT"))
    if kind == "number":
        return ("real", "FLOAT") if fmt in ("float32", "float") else ("double precision", "DOUBLE")
    if kind == "boolean":
        return "boolean", "BOOLEAN"
    if kind == "string":
        return _STRINGS.get(str(fmt), ("text", "VARCHAR"))
    return JSON_TYPES

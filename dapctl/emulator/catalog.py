"""The synthetic Canvas-like tables: their columns, JSON schemas and deterministic values.

A `TableSpec` names a table and its value columns. `values(spec, seed, record_id, version)`
derives a record's ``value`` object from nothing but its arguments (a hash per column, no
shared random state), so any record can be regenerated at any time in any order, which is what
lets the emulator serve million-row tables without storing them. Values deliberately stress
the text formats: commas, quotes, newlines, tabs, backslashes, the literal strings ``NULL``
and ``\\N``, empty strings, unicode, nulls, nested fixed objects and free-form JSON objects.
Null properties are omitted, as in the service's JSON Lines output.
"""

from __future__ import annotations

import functools
import hashlib
import struct
import time
import zlib
from dataclasses import dataclass
from typing import Any

MASK = (1 << 64) - 1
YEAR = 365 * 86400

TRICKY = (
    "plain",
    "comma, inside",
    'double "quotes"',
    "new\nline",
    "crlf\r\nline",
    "tab\tinside",
    "back\\slash",
    "NULL",
    "\\N",
    "",
    " padded ",
    "unicodé ünïcödé",
    "中文课程",
    "emoji 🎓📚",
    'mixed, "all"\tof\nthem\\',
    "trailing backslash\\",
)
NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Zoë", "Ōta")
SURNAMES = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "O'Neil", "Müller")


@dataclass(frozen=True)
class Column:
    """One value column. ``kind`` drives both the JSON schema and the generator."""

    name: str
    kind: str  # int, float, bool, str, text, name, email, ts, enum, json, nested
    nullable: bool = True
    choices: tuple[str, ...] = ()
    children: tuple[Column, ...] = ()


@dataclass(frozen=True)
class TableSpec:
    """A table: namespace, name, key type and value columns."""

    namespace: str
    name: str
    columns: tuple[Column, ...]
    string_key: bool = False

    @property
    def dotted(self) -> str:
        return f"{self.namespace}.{self.name}"

    def key(self, record_id: int) -> dict[str, Any]:
        """The record's ``key`` object."""
        if self.string_key:
            return {"id": f"{record_id:08x}-{zlib.crc32(str(record_id).encode()):08x}"}
        return {"id": record_id}


def _c(name: str, kind: str, nullable: bool = True, *choices: str) -> Column:
    return Column(name, kind, nullable, tuple(choices))


_STATES = ("active", "deleted", "completed")
_SETTINGS = Column("settings", "nested", True, (), (_c("hide_grades", "bool"), _c("theme", "text")))
TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        "canvas",
        "accounts",
        (
            _c("name", "text", False),
            _c("parent_account_id", "int"),
            _c("workflow_state", "enum", False, *_STATES),
            _c("settings", "json"),
            _c("created_at", "ts", False),
            _c("updated_at", "ts"),
        ),
    ),
    TableSpec(
        "canvas",
        "users",
        (
            _c("name", "name", False),
            _c("sortable_name", "text"),
            _c("email", "email"),
            _c("locale", "enum", True, "en", "de", "ja", "pt-BR"),
            _c("workflow_state", "enum", False, "registered", "pre_registered", "deleted"),
            _c("created_at", "ts", False),
        ),
    ),
    TableSpec(
        "canvas",
        "courses",
        (
            _c("name", "text", False),
            _c("course_code", "text"),
            _c("account_id", "int", False),
            _c("is_public", "bool"),
            _SETTINGS,
            _c("workflow_state", "enum", False, *_STATES),
            _c("start_at", "ts"),
        ),
    ),
    TableSpec(
        "canvas",
        "enrollments",
        (
            _c("user_id", "int", False),
            _c("course_id", "int", False),
            _c("type", "enum", False, "StudentEnrollment", "TeacherEnrollment", "TaEnrollment"),
            _c("workflow_state", "enum", False, *_STATES),
            _c("created_at", "ts", False),
        ),
    ),
    TableSpec(
        "canvas",
        "assignments",
        (
            _c("title", "text", False),
            _c("description", "text"),
            _c("points_possible", "float"),
            _c("context_id", "int", False),
            _c("due_at", "ts"),
            _c("muted", "bool"),
        ),
    ),
    TableSpec(
        "canvas",
        "submissions",
        (
            _c("user_id", "int", False),
            _c("assignment_id", "int", False),
            _c("score", "float"),
            _c("body", "text"),
            _c("submitted_at", "ts"),
            _c("attempt", "int"),
            _c("workflow_state", "enum", False, "submitted", "graded", "unsubmitted"),
        ),
    ),
    TableSpec(
        "canvas_logs",
        "web_logs",
        (
            _c("user_id", "int"),
            _c("url", "text", False),
            _c("http_method", "enum", False, "GET", "POST"),
            _c("http_status", "int", False),
            _c("user_agent", "text"),
            _c("timestamp", "ts", False),
        ),
        string_key=True,
    ),
)
GENERIC_COLUMNS = TABLES[5].columns


def generic_table(dotted: str) -> TableSpec:
    """An extra table (e.g. ``canvas.big`` for benchmarks) shaped like ``submissions``."""
    namespace, _, name = dotted.partition(".")
    if not namespace or not name:
        raise ValueError(f"table names are 'namespace.table', got {dotted!r}")
    return TableSpec(namespace, name, GENERIC_COLUMNS)


def mix(*parts: int) -> int:
    """A splitmix64-style hash of a few integers: cheap, deterministic, well spread."""
    h = 0x9E3779B97F4A7C15
    for part in parts:
        h = ((h ^ (part & MASK)) * 0xBF58476D1CE4E5B9) & MASK
        h = ((h ^ (h >> 31)) * 0x94D049BB133111EB) & MASK
    return h ^ (h >> 29)


def table_hash(spec: TableSpec) -> int:
    return zlib.crc32(spec.dotted.encode())


_WORDS = struct.Struct("<8Q")
_GOLDEN = 0x9E3779B97F4A7C15


def _hashes(seed: int, table: int, record_id: int, version: int) -> tuple[int, ...]:
    # One blake2b call yields eight 64-bit words, one per column: far cheaper than hashing
    # per column in Python, which matters when a benchmark table has a million rows.
    key = f"{seed}:{table}:{record_id}:{version}".encode()
    return _WORDS.unpack(hashlib.blake2b(key, digest_size=64).digest())


def values(spec: TableSpec, seed: int, record_id: int, version: int) -> dict[str, Any]:
    """The ``value`` object of one record version, null properties omitted."""
    words = _hashes(seed, table_hash(spec), record_id, version)
    out: dict[str, Any] = {}
    for index, column in enumerate(spec.columns):
        h = words[index & 7] ^ ((index >> 3) * _GOLDEN)
        value = _value(column, h & MASK)
        if value is not None:
            out[column.name] = value
    return out


def _value(column: Column, h: int) -> Any:
    if column.nullable and (h >> 40) % 8 == 0:
        return None
    kind = column.kind
    if kind == "nested":
        nested = {
            c.name: v
            for i, c in enumerate(column.children)
            if (v := _value(c, (h ^ (_GOLDEN * (i + 1))) & MASK)) is not None
        }
        return nested or None
    if kind == "int":
        return h % 100_000
    if kind == "float":
        return (h % 40_000) / 4  # quarters: exact in binary, so text round-trips are exact
    if kind == "bool":
        return bool(h & 1)
    if kind == "enum":
        return column.choices[h % len(column.choices)]
    return _string(kind, h)


def _string(kind: str, h: int) -> Any:
    if kind == "text":
        return TRICKY[h % len(TRICKY)]
    if kind == "name":
        return f"{NAMES[h % len(NAMES)]} {SURNAMES[(h >> 8) % len(SURNAMES)]}"
    if kind == "email":
        return f"user{h % 100_000}@example.edu"
    if kind == "ts":
        return format_ts(1_700_000_000 + h % (2 * YEAR), (h >> 32) % 1000)
    if kind == "json":
        return {"theme": TRICKY[h % len(TRICKY)], "quota": h % 500, "tags": ["a", "b,c"][: h % 3]}
    raise ValueError(f"unknown column kind {kind!r}")


@functools.lru_cache(maxsize=4096)
def _day(day: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(day * 86400))


def format_ts(seconds: int, millis: int | None = None) -> str:
    """RFC 3339 in UTC with a ``Z``; milliseconds only when given."""
    day, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    text = f"{_day(day)}T{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{text}.{millis:03d}Z" if millis is not None else f"{text}Z"


def json_schema(spec: TableSpec, version: int) -> dict[str, Any]:
    """The versioned schema document served by the schema endpoint."""
    key_type = {"type": "string"} if spec.string_key else {"type": "integer", "format": "int64"}
    value_props = {c.name: _column_schema(c) for c in spec.columns}
    required = [c.name for c in spec.columns if not c.nullable]
    meta = {
        "type": "object",
        "properties": {
            "ts": {"type": "string", "format": "date-time"},
            "action": {"type": "string", "enum": ["U", "D"]},
        },
        "required": ["ts", "action"],
    }
    schema = {
        # The service names its dialect; the official client refuses a schema without it.
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "title": f"Synthetic {spec.dotted} table served by the dapctl emulator.",
        "properties": {
            "key": {"type": "object", "properties": {"id": key_type}, "required": ["id"]},
            "value": {"type": "object", "properties": value_props, "required": required},
            "meta": meta,
        },
        "required": ["key", "meta"],
    }
    return {"version": version, "schema": schema}


def _column_schema(column: Column) -> dict[str, Any]:
    kind = column.kind
    if kind == "nested":
        props = {c.name: _column_schema(c) for c in column.children}
        return {"type": "object", "properties": props, "additionalProperties": False}
    simple: dict[str, dict[str, Any]] = {
        "int": {"type": "integer", "format": "int64"},
        "float": {"type": "number", "format": "double"},
        "bool": {"type": "boolean"},
        "ts": {"type": "string", "format": "date-time"},
        "json": {"type": "object"},
        "enum": {"type": "string", "enum": list(column.choices)},
    }
    return dict(simple.get(kind, {"type": "string"}))

"""Encoders for the four output formats, and the split of a result into parts.

Text formats arrive as gzip files, one per part, each with its own header row:

- ``jsonl``: one JSON object per line, null properties omitted.
- ``csv``: RFC 4180. A string is quoted when it holds a quote, comma, CR, LF or tab, when it is
  empty (always ``""``) or when it reads ``NULL``; NULL itself is the unquoted ``NULL``.
- ``tsv``: PostgreSQL COPY text. NULL is ``\\N``; backslash, tab, LF, CR, BS, FF and VT are
  backslash-escaped.
- ``parquet``: only when pyarrow is importable (the ``parquet`` extra); otherwise
  `FormatUnavailable`, which the server answers with a 400 that says how to get it.

Header rows use dotted names in the order ``meta.ts, meta.action, key.*, value.*``, except that
a snapshot's TSV has no ``meta.action`` column (every row of a snapshot is live): the service's
has none, and ``dap initdb`` (client 2.3.1) fails on a snapshot header that holds one. Mode
``expanded`` (the default) lays out nested fixed objects as ``value.x.y`` columns; mode
``condensed`` keeps them as one embedded-JSON column, written blank in CSV and ``\\N`` in TSV
when the whole object is null. Free-form JSON objects are always embedded JSON.
"""

from __future__ import annotations

import importlib
import io
import json
import zlib
from collections.abc import Iterable
from typing import Any

from dapctl.emulator.catalog import TableSpec

FORMATS = ("jsonl", "csv", "tsv", "parquet")
MODES = ("expanded", "condensed")
EXTENSIONS = {"jsonl": "jsonl.gz", "csv": "csv.gz", "tsv": "tsv.gz", "parquet": "parquet"}
MISSING = object()  # a blank CSV field: "no value", as opposed to NULL
_TSV_ESCAPES = str.maketrans(
    {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\b": "\\b", "\f": "\\f", "\v": "\\v"}
)
_CSV_SPECIAL = frozenset('",\r\n\t')


class FormatUnavailable(Exception):
    """The format needs an optional dependency that is not installed."""


Column = tuple[str, tuple[str, ...], bool]  # header, path into the record, condensed object


def columns(spec: TableSpec, mode: str | None, *, action: bool = True) -> list[Column]:
    """The flattened columns of a table in a mode, header order; ``meta.action`` if ``action``."""
    out: list[Column] = [("meta.ts", ("meta", "ts"), False)]
    if action:
        out.append(("meta.action", ("meta", "action"), False))
    out.append(("key.id", ("key", "id"), False))
    for column in spec.columns:
        if column.kind == "nested" and mode != "condensed":
            for child in column.children:
                path = ("value", column.name, child.name)
                out.append((".".join(path), path, False))
        else:
            out.append((f"value.{column.name}", ("value", column.name), column.kind == "nested"))
    return out


def _lookup(record: dict[str, Any], path: tuple[str, ...], condensed: bool) -> Any:
    node: Any = record
    for step in path:
        if not isinstance(node, dict) or step not in node:
            return MISSING if condensed else None
        node = node[step]
    return node


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def csv_cell(value: Any) -> str:
    if value is MISSING:
        return ""
    if value is None:
        return "NULL"
    text = _text(value)
    if not text or text == "NULL" or not _CSV_SPECIAL.isdisjoint(text):
        return '"' + text.replace('"', '""') + '"'
    return text


def tsv_cell(value: Any) -> str:
    if value is None or value is MISSING:
        return "\\N"
    return _text(value).translate(_TSV_ESCAPES)


def encode_text(
    records: Iterable[dict[str, Any]],
    spec: TableSpec,
    fmt: str,
    mode: str | None,
    *,
    snapshot: bool = False,
) -> str:
    """The uncompressed text of one part (of a snapshot's result if ``snapshot``)."""
    if fmt == "jsonl":
        dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        return "".join(dumps(record) + "\n" for record in records)
    cols = columns(spec, mode, action=not (snapshot and fmt == "tsv"))
    cell, sep, eol = (csv_cell, ",", "\r\n") if fmt == "csv" else (tsv_cell, "\t", "\n")
    lines = [sep.join(header for header, _, _ in cols)]
    for record in records:
        lines.append(sep.join(cell(_lookup(record, path, c)) for _, path, c in cols))
    return eol.join(lines) + eol


def encode_part(
    records: Iterable[dict[str, Any]],
    spec: TableSpec,
    fmt: str,
    mode: str | None,
    level: int,
    *,
    snapshot: bool = False,
) -> bytes:
    """The bytes of one part object as served: gzip for text formats, Parquet as is."""
    if fmt == "parquet":
        return _parquet(list(records), spec, mode)
    data = encode_text(records, spec, fmt, mode, snapshot=snapshot).encode()
    # wbits=31 writes a gzip container; mtime stays 0 so equal parts are equal bytes.
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


def require(fmt: str) -> None:
    """Raise `FormatUnavailable` when ``fmt`` cannot be produced on this machine."""
    if fmt == "parquet":
        try:
            importlib.import_module("pyarrow.parquet")
        except ImportError as exc:
            raise FormatUnavailable(
                "format 'parquet' needs pyarrow on the emulator's machine: "
                "pip install 'dapctl[parquet]', or ask for jsonl, csv or tsv"
            ) from exc


def _parquet(records: list[dict[str, Any]], spec: TableSpec, mode: str | None) -> bytes:
    # Imported lazily: pyarrow is an optional extra and heavy to import.
    pa = importlib.import_module("pyarrow")
    pq = importlib.import_module("pyarrow.parquet")
    cols = columns(spec, mode)
    rows = []
    for record in records:
        row = {}
        for header, path, condensed in cols:
            value = _lookup(record, path, condensed)
            row[header] = None if value is MISSING else _parquet_value(value)
        rows.append(row)
    # An empty part still carries the table's columns: inferred from no rows, a table has
    # none, and an empty snapshot became a column-less file (issue "Tried as a new user").
    if rows:
        table = pa.Table.from_pylist(rows)
    else:
        table = pa.schema(_arrow_fields(pa, spec, mode)).empty_table()
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _arrow_fields(pa: Any, spec: TableSpec, mode: str | None) -> list[Any]:
    kinds = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}
    by_path: dict[tuple[str, ...], Any] = {
        ("key", "id"): pa.string() if spec.string_key else pa.int64()
    }
    for column in spec.columns:
        by_path[("value", column.name)] = kinds.get(column.kind, pa.string())
        for child in column.children:
            by_path[("value", column.name, child.name)] = kinds.get(child.kind, pa.string())
    return [
        pa.field(header, by_path.get(path, pa.string())) for header, path, _ in columns(spec, mode)
    ]


def _parquet_value(value: Any) -> Any:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value

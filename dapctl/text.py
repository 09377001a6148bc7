"""Plain-text helpers every layer shares: times, counts, sizes and aligned tables.

Counts are written one way everywhere (``format_count``, ``plural``): with thousands
separators, ``2,000 records``, in result lines, summaries, tables and progress alike.

Times are written one way everywhere a person or the API reads them: RFC 3339 in UTC with a
``Z`` (``format_time``), or the compact ``20261128T204000Z`` that sorts and is safe in a file
name (``compact_time``). Nothing here knows about terminals beyond ignoring colour codes when
it measures a cell.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def format_time(
    value: datetime | None, *, timespec: Literal["auto", "seconds", "milliseconds"] = "auto"
) -> str:
    """RFC 3339 in UTC with a ``Z``, as the API writes it; ``-`` for no time."""
    if value is None:
        return "-"
    return value.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def compact_time(value: datetime) -> str:
    """``2026-11-28T20:40:00Z`` → ``20261128T204000Z``: sortable, and safe in a file name."""
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def format_count(count: int) -> str:
    """A count as people read it, with thousands separators: ``412,000``."""
    return f"{count:,}"


def plural(count: int, noun: str) -> str:
    """``1 record``, ``2,000 records``: every count of things dapctl prints goes through here."""
    return f"{format_count(count)} {noun}{'' if count == 1 else 's'}"


def human_bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def visible_len(text: str) -> int:
    """Length on screen, without colour codes."""
    return len(_ANSI.sub("", text))


def format_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, right: Sequence[int] = ()
) -> str:
    """Columns padded to their widest cell (colour codes not counted), two spaces apart."""
    columns = zip(header, *rows, strict=True)
    widths = [max(visible_len(cell) for cell in column) for column in columns]

    def line(cells: Sequence[str]) -> str:
        padded = []
        for i, (cell, width) in enumerate(zip(cells, widths, strict=True)):
            pad = " " * (width - visible_len(cell))
            padded.append(pad + cell if i in right else cell + pad)
        return "  ".join(padded).rstrip()

    return "\n".join([line(header), *(line(row) for row in rows)])

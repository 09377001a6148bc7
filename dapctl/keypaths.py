"""Key paths in a TOML config: ``targets[1].format`` for people, and the line each stands on.

A key path (``Loc``) is a tuple of keys and list indexes, as pydantic reports it. TOML parsers
do not report where a key stands, so ``key_lines`` reads the file's lines once more to map
each table header and assigned key to its line; ``line_of`` finds a path's line, or its
nearest enclosing table's. Every message about a config names its key this way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_HEADER = re.compile(r"^\[(\[)?\s*([^\]]+?)\s*\]")
_ASSIGN = re.compile(
    r"^((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*="
)

Loc = tuple[str | int, ...]


def format_loc(loc: Loc) -> str:
    """``('targets', 1, 'format')`` → ``targets[1].format``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _split_key(key: str) -> Loc:
    parts = re.finditer(r"\"([^\"]*)\"|'([^']*)'|([A-Za-z0-9_-]+)", key)
    # A quoted key may be empty (`"" = 1`): take the group that matched, not a non-empty one.
    return tuple(match.group(match.lastindex or 0) for match in parts)


def key_lines(text: str) -> dict[Loc, int]:
    """Map each table header and key the file assigns to the line it stands on.

    TOML parsers do not report key positions, so this reads the file's lines once more:
    headers (``[a.b]``, ``[[targets]]`` counted per array) and ``key =`` lines.
    """
    lines: dict[Loc, int] = {}
    header: Loc = ()
    counts: dict[Loc, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        match = _HEADER.match(line)
        if match:
            base = _split_key(match.group(2))
            if match.group(1):
                counts[base] = counts.get(base, -1) + 1
                lines.setdefault(base, number)
                base = (*base, counts[base])
            header = base
            lines.setdefault(header, number)
            continue
        match = _ASSIGN.match(line)
        if match:
            lines.setdefault((*header, *_split_key(match.group(1))), number)
    return lines


def line_of(lines: Mapping[Loc, int], loc: Loc) -> int | None:
    """The line of ``loc``, or of the nearest table that holds it; None if not in ``lines``."""
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None

"""What a database schema or table name may be: a plain SQL identifier every engine takes.

A leaf: the config checks ``db_schema`` / ``db_table`` as rendered when it loads, and each
database engine checks again before it writes SQL; both ask here, so the two never differ.
"""

from __future__ import annotations

import re

from dapctl.errors import ConfigError

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*\Z")
MAX_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1, the tightest of the engines

IDENTIFIER_RULE = (
    "use letters, digits and underscores, starting with a letter or underscore, at most 63 bytes"
)


def is_identifier(name: str) -> bool:
    """Whether ``name`` is a plain SQL identifier (63 bytes at most), as every engine takes."""
    return bool(_IDENTIFIER.match(name)) and len(name.encode()) <= MAX_BYTES


def check_identifier(name: str, what: str = "name") -> str:
    """Return ``name`` if it is a plain SQL identifier (63 bytes at most), else raise."""
    if not is_identifier(name):
        raise ConfigError(f"invalid {what} {name!r}: {IDENTIFIER_RULE}")
    return name

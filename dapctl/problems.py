"""A config's validation errors as problems a user can act on, each located and explained.

``describe`` turns pydantic's ``ValidationError`` into one message listing every problem:
where (``file:line: key.path``), what is wrong, and what to write instead: a "did you mean"
for an unknown key, the allowed characters for a name, ``[[targets]]`` for ``[targets]``.
Of a union's failures only the branch the input was meant for is told. A value is echoed
only when short and never from a key that may hold a secret or a password-bearing URL.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from dapctl.config import FILE_MODE_PATTERN, NAME_PATTERN, Config, PathError
from dapctl.keypaths import Loc, format_loc, key_lines, line_of

_UNION_TAG = re.compile(r"[\[\]()]")
_QUALIFIED_TABLE = re.compile(r"[A-Za-z0-9_]+\.[A-Za-z0-9_]+")
_URL_KEYS = frozenset({"url", "url_env", "url_file", "state", "state_env"})

_FRIENDLY = {
    "timezone_aware": "give the time zone, e.g. 2026-11-01T00:00:00Z or +02:00",
    "union_mismatch": 'expected a list of table names or "all"',
}


def describe(exc: ValidationError, *, path: Path, text: str, raw: dict[str, Any]) -> str:
    """One message naming every problem ``exc`` found in the file at ``path``."""
    lines = key_lines(text)
    problems = []
    for error in _without_union_noise(exc.errors(), raw):
        loc = tuple(p for p in error["loc"] if not _is_union_tag(p))
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, PathError):
            loc = (*loc, *cause.loc)
        where = line_of(lines, loc)
        prefix = f"{path}:{where}" if where else str(path)
        shown = format_loc(tuple(p for p in loc if p != "[key]")) or "(top level)"
        problems.append(f"{prefix}: {shown}: {_message(error, loc)}")
    count = len(problems)
    head = f"{count} problem{'s' if count != 1 else ''} in the config:"
    return "\n".join([head, *(f"  {p}" for p in problems)])


def _message(error: ErrorDetails, loc: Loc) -> str:
    kind, value = error["type"], error.get("input")
    if kind == "extra_forbidden":
        return _unknown_key(loc)
    if kind == "missing":
        return "required key is missing"
    if kind == "string_pattern_mismatch":
        return _bad_name(error, loc)
    if kind == "list_or_literal":
        return f'expected a list of table names or "all"; for one table, write [{_toml(value)}]'
    if kind == "list_type" and isinstance(value, dict) and len(loc) == 1:
        return (
            f"expected [[{loc[0]}]] (double brackets, one block per entry); "
            f"[{loc[0]}] makes a single table"
        )
    message = _FRIENDLY.get(error["type"], error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    sensitive = _sensitive(loc)
    if (
        error["type"] not in ("value_error", "assertion_error")
        and _is_scalar(value)
        and not sensitive
    ):
        message += f" (got {value!r})"
    return message


def _bad_name(error: ErrorDetails, loc: Loc) -> str:
    pattern = error.get("ctx", {}).get("pattern")
    value = error.get("input")
    if pattern == FILE_MODE_PATTERN:
        return f'expected an octal mode such as "0640" (got {value!r})'
    allowed = "lowercase letters, digits, _ and -" if pattern == NAME_PATTERN else None
    message = f"use only {allowed or 'letters, digits and _'}"
    if loc and loc[-1] == "[key]":  # a table name, such as the NAME of [profiles.NAME]
        return f"the name {value!r}: {message}"
    if _sensitive(loc):
        return message
    message += f" (got {value!r})"
    if len(loc) >= 2 and loc[-2] == "tables" and isinstance(value, str):
        message += _table_hint(value)
    return message


def _table_hint(value: str) -> str:
    """What to write instead of a table given as ``namespace.table``, or as a path."""
    if _QUALIFIED_TABLE.fullmatch(value):
        namespace, _, table = value.partition(".")
        return f"; write the table as {_toml(table)} and set namespace = {_toml(namespace.lower())}"
    if any(mark in value for mark in ("/", "\\", "..")):
        return (
            '; a table is a DAP table\'s name, such as "accounts", not a path (`dapctl '
            "tables CONFIG` lists them; output says where files go)"
        )
    return ""


def _toml(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _sensitive(loc: Loc) -> bool:
    # A mistyped secret is still a secret: never echo what a *secret* key holds. A database
    # or state URL may carry a password, and one pasted where its variable's name belongs too.
    return any("secret" in str(part) or str(part) in _URL_KEYS for part in loc)


def _is_scalar(value: object) -> bool:
    return isinstance(value, str | int | float | bool) and len(repr(value)) < 80


def _unknown_key(loc: Loc) -> str:
    key = str(loc[-1])
    valid = _fields_at(loc[:-1])
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    listing = f" (valid keys: {', '.join(valid)})" if valid and not close else ""
    return f"unknown key {key!r}{hint}{listing}"


def _fields_at(loc: Loc) -> list[str]:
    """The valid key names of the model at a key path, walking the ``Config`` models."""
    model: type[BaseModel] = Config
    for part in loc:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part)
        if info is None:  # a dict key, such as a profile name
            continue
        inner = _model_of(info.annotation)
        if inner is None:
            return []
        model = inner
    return list(model.model_fields)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _is_union_tag(part: str | int) -> bool:
    return isinstance(part, str) and part != "[key]" and bool(_UNION_TAG.search(part))


def _without_union_noise(errors: Sequence[ErrorDetails], raw: dict[str, Any]) -> list[ErrorDetails]:
    """Keep, for a union such as ``list[str] | "all"``, only the branch the input was meant for.

    Pydantic reports every branch's failure; a user who wrote a list wants to hear about the
    list, not that it is not ``"all"``.
    """
    kept = []
    for error in errors:
        tags = [i for i, p in enumerate(error["loc"]) if _is_union_tag(p)]
        if tags:
            where = error["loc"][: tags[0]]
            value = _value_at(raw, where)
            tag = str(error["loc"][tags[0]])
            if isinstance(value, list) != tag.startswith("list["):
                continue
            if not isinstance(value, list | str):
                error = {**error, "type": "union_mismatch"}
            elif isinstance(value, str) and error["type"] == "literal_error":
                error = {**error, "type": "list_or_literal", "input": value}
        kept.append(error)
    return kept or list(errors)


def _value_at(raw: Any, loc: Loc) -> Any:
    for part in loc:
        try:
            raw = raw[part]
        except (KeyError, IndexError, TypeError):
            return None
    return raw

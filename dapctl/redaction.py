"""Passwords out of URLs and out of drivers' messages: a leaf every backend may import.

A database or state URL may hold a password in any form libpq reads one: the userinfo's
(``user:pw@``), a query parameter's (``?password=``, ``&sslpassword=``: any key naming a
password, in any case, percent-encoded or not) or a libpq keyword string's (``password=pw``,
``password='p w'``). `redact` masks each with ``***``, for any message that names the URL;
`holds_password` says whether there is one (a config or command line that must not hold it);
`passwords` lists them as written and decoded, and `scrub` takes those out of a driver's own
messages, which may quote either. Pure string work: no driver, nothing from ``databases/``
or ``state/``, so both may import it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote, unquote_plus

# libpq knows ``password`` and ``sslpassword``; ``passfile`` names a file and is no secret.
_PASSWORD_KEY = re.compile(r"pass(?:word|wd)|pwd", re.IGNORECASE)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:(?://)?")
# libpq's ``keyword = value``: a value is single-quoted (\' and \\ escaped), or runs to a space.
_KEYWORD = re.compile(r"(?P<key>[^\s=]+)(?P<eq>\s*=\s*)(?P<value>'(?:[^'\\]|\\.)*'?|[^\s]*)")


def redact(url: str) -> str:
    """``url`` with every password in it replaced by ``***`` (see the module docstring)."""
    return _mask(url)[0]


def holds_password(url: str) -> bool:
    """Whether ``url`` (a URL or a libpq keyword string) names a password, even an empty one."""
    return bool(_mask(url)[1])


def passwords(url: str) -> tuple[str, ...]:
    """Every password in ``url``, as written and percent-decoded (or unquoted), longest
    first: what `scrub` removes from a driver's messages, which may quote either."""
    found: set[str] = set()
    for raw in _mask(url)[1]:
        found.update((raw, unquote(raw), _unquote_keyword(raw)))
    return tuple(sorted((p for p in found if p), key=len, reverse=True))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each of ``secrets`` replaced by ``***``."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return text


def _mask(text: str) -> tuple[str, list[str]]:
    """``text`` with its passwords masked, and those passwords as written.

    Read as libpq reads a URL, but erring towards masking more: the userinfo runs to the
    last ``@`` before the first ``/`` (``?`` and ``#`` may stand in an unencoded password),
    and the query to the end. A query value that is a URL itself (a lake's catalog,
    ``?catalog=postgresql://...``, percent-encoded or not) is masked the same way.
    """
    head = _SCHEME.match(text)
    if head is None:
        return _mask_keywords(text)
    found: list[str] = []
    rest, shown = text[head.end() :], head[0]
    userinfo, at, _ = rest.split("/", 1)[0].rpartition("@")
    user, colon, password = userinfo.partition(":")
    if at and colon and head[0].endswith("//"):
        found.append(password)
        rest, shown = rest[len(userinfo) + 1 :], f"{shown}{user}:***@"
    before, mark, query = rest.partition("?")
    pieces = []
    for piece in query.split("&") if mark else ():
        key, eq, value = piece.partition("=")
        if eq and _PASSWORD_KEY.search(unquote_plus(key)):
            piece = f"{key}=***"
            found.append(value)
        elif eq and _SCHEME.match(inner := unquote_plus(value)):
            masked, nested = _mask(inner)
            if nested:
                piece = f"{key}={masked}"
                found.extend(nested)
        pieces.append(piece)
    return shown + before + mark + "&".join(pieces), found


def _mask_keywords(text: str) -> tuple[str, list[str]]:
    found: list[str] = []

    def mask(match: re.Match[str]) -> str:
        if not _PASSWORD_KEY.search(unquote(match["key"])):
            return match[0]
        found.append(match["value"])
        return f"{match['key']}{match['eq']}***"

    return _KEYWORD.sub(mask, text), found


def _unquote_keyword(value: str) -> str:
    """A keyword string's value as libpq reads it: quotes off, ``\\'`` and ``\\\\`` unescaped."""
    if not value.startswith("'"):
        return value
    inner = value[1:-1] if len(value) > 1 and value.endswith("'") else value[1:]
    return re.sub(r"\\(.)", r"\1", inner)

"""PostgreSQL connections shared by the table backend and the state backend: a leaf module.

`connect_url` opens an autocommit psycopg connection named for this process (host and pid, as
``pg_stat_activity`` shows it), with settings from the URL and libpq's own sources (``PG*``
variables, ``.pgpass``, service files). `guarded` turns a psycopg error into `DatabaseError`
with every password scrubbed (`url_password`: the URL's own, in every form it may hold one,
and ``PGPASSWORD``) and no chained cause, whose traceback would quote the driver's message.
It imports nothing from ``databases/`` or ``state/``, so ``state/`` needs nothing from
``databases/``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from dapctl.errors import DatabaseError
from dapctl.redaction import passwords, redact, scrub


@contextmanager
def guarded(doing: str, secrets: Sequence[str]) -> Iterator[None]:
    """Re-raise psycopg errors as `DatabaseError`, password scrubbed, no chained cause."""
    try:
        yield
    except psycopg.Error as exc:
        detail = scrub(str(exc).strip(), secrets) or type(exc).__name__
        raise DatabaseError(f"{doing}: {detail}") from None


def connect_url(url: str) -> psycopg.Connection[Any]:
    """An autocommit connection named for this process; errors scrubbed of the password."""
    name = f"dapctl {socket.gethostname()} pid {os.getpid()}"[:63]
    with guarded(f"cannot connect to {redact(url)}", url_password(url)):
        return psycopg.connect(url, autocommit=True, application_name=name, connect_timeout=15)


def url_password(url: str) -> tuple[str, ...]:
    """The passwords to scrub from messages: the URL's own, in every form a URL or keyword
    string may hold one (`redaction.passwords`), and libpq's ``PGPASSWORD``."""
    return (*passwords(url), *filter(None, [os.environ.get("PGPASSWORD")]))

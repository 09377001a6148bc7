"""The table engine's contract, and `open_database`, which picks a backend from a URL.

A `Database` keeps DAP tables in sync inside one database: it locks a table for one apply at
a time, keeps step records in ``dapctl.table_steps`` and starts a `TableLoad` per snapshot or
incremental. A step row is keyed by the table it describes (schema, table), not by the config's
step address: its watermark is true of that table's content and of nothing else, so two configs
loading one database into two schemas never share a row, and a table that is gone (dropped, a
new database, a renamed schema) has no row a plan could trust. The row also names the address
that last wrote it, for people. A load streams parts into a staging table as they arrive
(`TableLoad.add_part`) and makes them visible in ONE transaction together with the step row
(`TableLoad.commit`), so after a crash at any instant the table and its step row are either
both updated or neither.
`abort` drops the staging table; a killed run leaves one behind, which `sweep_staging` drops
later (never a live run's). Schema changes are applied on every load (`evolve`); an
incremental refuses a lossy one with `NeedsReload`, and the snapshot the caller then takes
applies any change (it empties the table first) while views, indexes and grants stay.
`wire_format` says which query format a backend loads fastest (PostgreSQL: condensed TSV,
COPYed as is; DuckDB: JSON Lines); a PostgreSQL load takes either.
Errors are `DapctlError` subclasses whose messages never hold a password.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, NamedTuple, Protocol
from urllib.parse import urlsplit, urlunsplit

from dapctl.errors import ConfigError, OutputError

LoadKind = Literal["snapshot", "incremental"]
SCHEMES = ("postgresql", "duckdb")
_EXTRAS = {"postgresql": ("psycopg", "postgresql"), "duckdb": ("duckdb", "duckdb")}


TableName = tuple[str, str]  # (schema, table)


class StepRow(NamedTuple):
    """A table's step row: the address that wrote it, and the step record (JSON)."""

    address: str
    record: str


class DatabaseError(OutputError):
    """The database could not be reached, or refused a statement; the message is redacted."""


class TableLoad(Protocol):
    """One snapshot or incremental of one table, staged until `commit`."""

    def add_part(self, path: Path) -> int:
        """Stage one decompressed part (JSON Lines; PostgreSQL also takes condensed TSV with its
        header row); return the number of records in it."""
        ...

    def commit(self, *, address: str, record: str) -> int:
        """In one transaction apply the staged records and upsert the table's step row (naming
        ``address``); return rows."""
        ...

    def abort(self) -> None:
        """Drop the staging table; the target table stays as it was. Idempotent."""
        ...


class Database(Protocol):
    """One database holding DAP tables and dapctl's step records."""

    def close(self) -> None: ...

    def lock(self, name: str, *, timeout: float) -> AbstractContextManager[None]:
        """Hold the exclusive apply lock on ``name``; `LockError` after ``timeout`` seconds."""
        ...

    def read_steps(self) -> dict[TableName, StepRow]:
        """Every step row, keyed by the table it describes."""
        ...

    def tables(self) -> set[TableName]:
        """Every table in the database outside dapctl's own schema."""
        ...

    def write_step(self, table: TableName, *, address: str, record: str) -> None:
        """Upsert ``table``'s step row in its own short transaction."""
        ...

    def begin_load(
        self, *, schema: str, table: str, dap_schema: Mapping[str, Any], kind: LoadKind
    ) -> TableLoad:
        """Start a load; raises `NeedsReload` if an incremental cannot evolve the table."""
        ...

    def sweep_staging(self) -> list[str]:
        """Drop staging tables of runs that are gone; return their names."""
        ...

    def pending_schema_changes(
        self, *, schema: str, table: str, dap_schema: Mapping[str, Any]
    ) -> list[str]:
        """What the next load would change in the table's columns, one line each."""
        ...


Importer = Callable[[str], ModuleType]


def open_database(
    url: str,
    *,
    base_dir: Path,
    importer: Importer = importlib.import_module,
    sleep: Callable[[float], None] = time.sleep,
) -> Database:
    """Connect to ``postgresql://...`` or ``duckdb:///path.duckdb`` (relative to ``base_dir``).

    ``importer`` is how the driver gets imported (tests pass one that fails); ``sleep`` is
    used while waiting for a lock.
    """
    scheme = scheme_of(url)
    if scheme not in SCHEMES:
        raise ConfigError(
            f"unsupported database URL {redact(url)!r}: the scheme must be one of "
            + ", ".join(f"{s}://" for s in SCHEMES)
        )
    _require_driver(scheme, importer)
    if scheme == "postgresql":
        from dapctl.databases.postgres import PostgresDatabase

        return PostgresDatabase.connect(url, sleep=sleep)
    from dapctl.databases.duck import DuckDatabase

    return DuckDatabase.connect(duck_path(url, base_dir), sleep=sleep)


def scheme_of(url: str) -> str:
    """The backend a URL names (``postgresql`` for its aliases too), lowercased."""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return ""
    return "postgresql" if scheme in ("postgres", "postgresql+psycopg") else scheme


def wire_format(url: str) -> tuple[Literal["jsonl", "tsv"], Literal["condensed"] | None]:
    """The query format the database at ``url`` loads fastest: PostgreSQL COPYs condensed TSV
    (its own text format) with nothing to parse; DuckDB reads JSON Lines."""
    return ("tsv", "condensed") if scheme_of(url) == "postgresql" else ("jsonl", None)


def _require_driver(scheme: str, importer: Importer) -> None:
    module, extra = _EXTRAS[scheme]
    try:
        importer(module)
    except ImportError:
        raise ConfigError(
            f"{scheme} databases need the {module} package, which is not installed",
            hint=f"pip install 'dapctl[{extra}]'",
        ) from None


def duck_path(url: str, base_dir: Path) -> Path:
    """The file a ``duckdb:///x.duckdb`` (relative) or ``duckdb:////abs/x.duckdb`` URL names."""
    rest = url.split("://", 1)[1]
    if not rest.startswith("/") or rest == "/":
        raise ConfigError(f"a DuckDB URL looks like duckdb:///file.duckdb, got {url!r}")
    path = Path(rest[1:])
    return path if path.is_absolute() else base_dir / path


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    userinfo = netloc[0].split(":", 1)[0] + ":***"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{netloc[1]}"))


def scrub(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ``***``."""
    return text.replace(secret, "***") if secret else text

"""The database engines dapctl knows, and `open_database`, which picks one from a URL.

`ENGINES` is the one list of engines: each names its URL scheme (and the aliases that mean
it), the backend module that implements `engine.Database` (imported only when a URL names
it, so a missing driver costs nothing until then), the driver package that module imports
and the ``dapctl[extra]`` that installs it, and its `Capabilities` (what dlt calls a
destination's ``capabilities()``): the query format it loads fastest, and whether it has
one writer, so that loads share its one connection, one at a time, instead of each opening
its own. Each backend module has ``open_url(url, *, base_dir, sleep) -> Database`` and
``TYPES``, its `columns.TypeMapper`, which spells every `columns.ColumnType`. Adding
an engine is its module (or modules) under ``dapctl/databases/``, one `Engine` line here,
its extra in ``pyproject.toml`` and a test URL in ``tests/databases/conftest.py``; nothing in
the core asks which engine it holds.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Literal, Protocol, cast
from urllib.parse import urlsplit

from dapctl.databases.engine import Database
from dapctl.errors import ConfigError
from dapctl.redaction import redact

WireFormat = tuple[Literal["jsonl", "tsv", "parquet"], Literal["condensed"] | None]
Importer = Callable[[str], ModuleType]


@dataclass(frozen=True)
class Capabilities:
    """What an engine can do, for the callers that must plan around it."""

    wire_format: WireFormat  # the query format its loads take fastest
    single_writer: bool  # one writer at a time (a DuckDB file): loads share one connection
    sql: bool = True  # a SQL database (views, indexes, dapctl.runs); False: a lake


@dataclass(frozen=True)
class Engine:
    """One database engine: its URL scheme, backend module, driver and capabilities."""

    scheme: str
    module: str
    driver: str
    extra: str
    capabilities: Capabilities
    aliases: tuple[str, ...] = ()


class Opener(Protocol):
    """A backend module's ``open_url``."""

    def __call__(self, url: str, *, base_dir: Path, sleep: Callable[[float], None]) -> Database: ...


ENGINES: tuple[Engine, ...] = (
    # PostgreSQL COPYs condensed TSV (its own text format) with nothing to parse.
    Engine(
        "postgresql",
        "dapctl.databases.postgres",
        driver="psycopg",
        extra="postgresql",
        capabilities=Capabilities(wire_format=("tsv", "condensed"), single_writer=False),
        aliases=("postgres", "postgresql+psycopg"),
    ),
    # DuckDB reads JSON Lines itself; one process, one writer per file.
    Engine(
        "duckdb",
        "dapctl.databases.duck",
        driver="duckdb",
        extra="duckdb",
        capabilities=Capabilities(wire_format=("jsonl", None), single_writer=True),
    ),
    # MySQL / MariaDB: parts are JSON Lines, converted to typed TSV for LOAD DATA LOCAL INFILE.
    Engine(
        "mysql",
        "dapctl.databases.mysql",
        driver="pymysql",
        extra="mysql",
        capabilities=Capabilities(wire_format=("jsonl", None), single_writer=False),
        aliases=("mariadb", "mysql+pymysql"),
    ),
    # Delta Lake tables in a folder, an S3 bucket or an Azure container
    # (``dapctl.databases.lake``): no SQL server, written by delta-rs; parts are staged in a
    # private DuckDB, and condensed Parquet is typed already (no JSON to parse).
    Engine(
        "delta+file",
        "dapctl.databases.lake.delta",
        driver="deltalake",
        extra="delta",
        capabilities=Capabilities(
            wire_format=("parquet", "condensed"), single_writer=False, sql=False
        ),
        aliases=("delta+s3", "delta+az"),
    ),
    # Apache Iceberg tables in a folder (a SQLite catalog beside them, or PostgreSQL's), an
    # S3 bucket or an Azure container (a catalog in PostgreSQL), by pyiceberg.
    Engine(
        "iceberg+file",
        "dapctl.databases.lake.iceberg",
        driver="pyiceberg",
        extra="iceberg",
        capabilities=Capabilities(
            wire_format=("parquet", "condensed"), single_writer=False, sql=False
        ),
        aliases=("iceberg+s3", "iceberg+az"),
    ),
)


def open_database(
    url: str,
    *,
    base_dir: Path,
    importer: Importer = importlib.import_module,
    sleep: Callable[[float], None] = time.sleep,
) -> Database:
    """Connect to the database ``url`` names (a DuckDB file relative to ``base_dir``).

    ``importer`` imports the driver and the backend module (tests pass one that fails);
    ``sleep`` is used while waiting for a lock.
    """
    engine = engine_of(url)
    _require_driver(engine, importer)
    opener = cast(Opener, importer(engine.module).open_url)
    return opener(url, base_dir=base_dir, sleep=sleep)


def engine_of(url: str, engines: Sequence[Engine] = ENGINES) -> Engine:
    """The engine ``url``'s scheme (or an alias of it) names; `ConfigError` listing the
    schemes there are, the URL redacted, if none."""
    scheme = scheme_of(url)
    for engine in engines:
        if scheme == engine.scheme or scheme in engine.aliases:
            return engine
    raise ConfigError(
        f"unsupported database URL {redact(url)!r}: the scheme must be one of "
        + ", ".join(f"{e.scheme}://" for e in engines)
    )


def scheme_of(url: str) -> str:
    """A URL's scheme, lowercased (empty if it has none)."""
    try:
        return urlsplit(url).scheme.lower()
    except ValueError:
        return ""


def capabilities(url: str) -> Capabilities:
    """What the engine ``url`` names can do; `ConfigError` for a scheme no engine has."""
    return engine_of(url).capabilities


def wire_format(url: str) -> WireFormat:
    """The query format the database at ``url`` loads fastest."""
    return capabilities(url).wire_format


def _require_driver(engine: Engine, importer: Importer) -> None:
    try:
        importer(engine.driver)
    except ImportError:
        raise ConfigError(
            f"{engine.scheme} databases need the {engine.driver} package, which is not installed",
            hint=f"pip install 'dapctl[{engine.extra}]'",
        ) from None

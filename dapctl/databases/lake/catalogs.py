"""Where an Iceberg lake keeps its catalog: the one place that says which metadata file is
each table's current one, so that swapping it is the commit.

pyiceberg's ``SqlCatalog`` (a SQLAlchemy database), in one of two places:

- SQLite beside the tables (the default): ``{root}/_dapctl/catalog.db``. One machine, or a
  shared folder whose file locks work.
- PostgreSQL, ``?catalog=postgresql://user@host:5432/db`` on the lake's URL: many
  machines, and the catalog Trino's and Spark's JDBC catalogs read. Its tables
  (``iceberg_tables``, ``iceberg_namespace_properties``) are made in that database on first
  use. As with a PostgreSQL target, the URL names no password (libpq's ``PGPASSWORD``,
  ``~/.pgpass``, or the whole lake URL from ``url_env``). ``catalog=`` comes last: the
  rest of the lake URL is the catalog's, its own ``?sslmode=...&...`` included (`split`).

Both commit by compare-and-swap (``UPDATE ... WHERE metadata_location = <the one read>``), so
of two writers that began from one version, the second fails and writes nothing. The catalog
name is ``dapctl``: a reader's catalog takes that name (or its ``catalog_name`` column).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from pyiceberg.catalog.sql import IcebergTables
from sqlalchemy import select
from sqlalchemy.orm import Session

from dapctl.databases.lake.steps import SIDE
from dapctl.errors import ConfigError
from dapctl.redaction import redact

NAME = "dapctl"  # the catalog's name: a reader's catalog must take the same
_POSTGRES = ("postgresql://", "postgres://", "postgresql+psycopg://")


def sqlalchemy_uri(catalog: str | None, root: Path | None) -> str:
    """The SQLAlchemy URL of the catalog ``catalog`` names (None: SQLite in the folder
    ``root``, which a lake in a bucket has not)."""
    if catalog is None:
        assert root is not None, "a lake in a bucket names its catalog"
        return f"sqlite:///{default_file(root)}"
    lowered = catalog.lower()
    if lowered.startswith(_POSTGRES):
        if importlib.util.find_spec("psycopg") is None:
            raise ConfigError(
                "an Iceberg catalog in PostgreSQL needs the psycopg package, "
                "which is not installed",
                hint="pip install 'dapctl[iceberg,postgresql]'",
            )
        return "postgresql+psycopg://" + catalog.split("://", 1)[1]
    if lowered.startswith("sqlite:///"):
        return catalog
    raise ConfigError(
        f"unsupported Iceberg catalog {redact(catalog)!r}: give ?catalog=postgresql://user@host/db "
        "(or sqlite:////absolute/path.db); without it the catalog is SQLite in the lake's "
        f"{SIDE} folder"
    )


def default_file(root: Path) -> Path:
    return root / SIDE / "catalog.db"


def shown(uri: str) -> str:
    """The catalog for a message: its URL, any password masked."""
    return redact(uri.replace("postgresql+psycopg://", "postgresql://", 1))


def split(query: str) -> tuple[str, str | None]:
    """The lake URL's query without its ``catalog=``, and the catalog's URL: the rest of the
    query, verbatim (its own ``?`` and ``&`` included; SQLAlchemy decodes it once), or one
    percent-encoded whole."""
    head, mark, raw = query.partition("catalog=")
    if not mark or (head and not head.endswith("&")):
        return query, None
    return head.rstrip("&"), raw if "://" in raw else unquote(raw)


def listed(catalog: Any) -> list[tuple[str, str, str]]:
    """Every table of the catalog named `NAME`: namespace, name and current metadata file,
    in one query of the catalog's own table (``iceberg_tables``)."""
    rows = select(
        IcebergTables.table_namespace, IcebergTables.table_name, IcebergTables.metadata_location
    ).where(IcebergTables.catalog_name == NAME)
    with Session(catalog.engine) as session:
        found = session.execute(rows).all()
    return [(str(ns), str(name), str(where)) for ns, name, where in found if where]

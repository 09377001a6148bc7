"""The Apache Iceberg engine: DAP tables as Iceberg tables in a folder or a bucket, with a
SQL catalog (pyiceberg's ``SqlCatalog``, in SQLite or PostgreSQL), read by any Iceberg reader.

``iceberg+file:///srv/lake`` (or relative, ``iceberg+file:lake``) is the warehouse: table
files at ``{root}/{schema}/{table}``, the catalog (`catalogs`) SQLite in ``{root}/_dapctl``
or PostgreSQL (``?catalog=postgresql://user@host/db``), where a reader's catalog finds them.
A table the catalog places outside this lake is refused, never written. A lake in a bucket
(``iceberg+s3://bucket/prefix``, ``iceberg+az://``; `stores`) must name its catalog.

- Step records: each load's commit sets the table properties ``dapctl.record`` and
  ``dapctl.address`` and puts the same in its snapshots' summaries, in the one metadata
  commit that also holds the data: the catalog swaps the table's metadata pointer once, so
  table and watermark change together or not at all. A commit that changes no row still
  moves the properties.
- Snapshots overwrite the table in one commit, their rows streamed into data files;
  incrementals delete the window's keys (`iceberg_cow`: copy-on-write) and append its
  upserts, one transaction.
- Concurrent writers: a load checks the table's last update before writing, and every
  commit adds a snapshot (an empty append when no row changed) that asserts the one it read;
  the catalog's commit is a compare-and-swap of the metadata pointer, so of two writers that
  began from one version the second fails (`DatabaseError`), writes nothing, and the next
  run retries. pyiceberg's own retry (re-applying the loser's changes to the winner's table)
  is switched off per table (``ONE_TRY``).
- Schema changes: new columns join by name, and ``int`` -> ``long`` and ``float`` ->
  ``double`` widen in place (Iceberg's own promotions, in the load's commit); any other
  change is a reload (the snapshot re-creates the table with the new types).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow.compute as pc  # type: ignore[import-untyped]
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NoSuchTableError

from dapctl.databases.columns import Column, ColumnType, TypeMapper
from dapctl.databases.engine import DatabaseError, LoadKind, StepRow, TableLoad, TableName
from dapctl.databases.lake import catalogs, iceberg_cow, iceberg_upkeep, stores, upkeep
from dapctl.databases.lake.common import ADDRESS, RECORD, LakeDatabase, LakeLoad, folder_of, marks
from dapctl.databases.lake.iceberg_cow import shaped
from dapctl.databases.lake.iceberg_upkeep import LOADS
from dapctl.databases.lake.stage import ACTION
from dapctl.databases.lake.steps import SIDE, Side, SideFolder
from dapctl.databases.loads import RunRow
from dapctl.errors import ConfigError
from dapctl.files import ensure_private_dir
from dapctl.redaction import passwords, redact, scrub

__all__ = ["TYPES", "IcebergDatabase", "open_url"]

# pyiceberg warns when an overwrite or delete matched no row; a window's keys may all be new
# and a first snapshot replaces nothing. Set once, here: catch_warnings is not thread-safe,
# and an apply loads tables in threads.
warnings.filterwarnings("ignore", "Delete operation did not match", UserWarning)

# pyiceberg retries a commit that lost a race by re-applying its appends and deletes to the
# winner's table; a load's rows and step record were read from the loser's, so a load commits
# once, and a lost race fails (the next run starts again from the winner's record).
RETRIES = "commit.retry.num-retries"
ONE_TRY = {RETRIES: "0"}
MOVED = object()  # what `_one_try` found: not the version the load began from

TYPES = TypeMapper(
    {
        ColumnType.INT16: "int",
        ColumnType.INT32: "int",
        ColumnType.INT64: "long",
        ColumnType.FLOAT32: "float",
        ColumnType.FLOAT64: "double",
        ColumnType.BOOLEAN: "boolean",
        ColumnType.TIMESTAMP: "timestamptz",
        ColumnType.DATE: "date",
        ColumnType.TEXT: "string",
        ColumnType.TIME: "string",
        ColumnType.UUID: "string",
        ColumnType.JSON: "string",
    }
)


def open_url(url: str, *, base_dir: Path, sleep: Callable[[float], None]) -> IcebergDatabase:
    """The registry's opener for ``iceberg+file:``, ``iceberg+s3:`` and ``iceberg+az:`` URLs
    (see the module doc); the query may name the catalog (`catalogs`), and must for a
    bucket."""
    url, _, query = url.partition("?")
    query, catalog_url = catalogs.split(query)
    kept = upkeep.parse(query, redact(url))
    if stores.store_of(url) is not None:
        if catalog_url is None:
            raise ConfigError(
                f"the Iceberg lake {redact(url)!r} is in a bucket, and its catalog needs a "
                "database: add ?catalog=postgresql://user@host/db (or sqlite:////path/catalog.db)"
            )
        where, side, store = stores.open_bucket(url)
        catalog = catalogs.sqlalchemy_uri(catalog_url, None)
        located = store.located(where)
        return IcebergDatabase(
            located, side, catalog=catalog, sleep=sleep, io=store.iceberg(), settings=kept
        )
    if not url.lower().startswith("iceberg+file:"):
        raise ConfigError(
            "unsupported lake URL: Iceberg tables go in a folder (iceberg+file:///absolute/path "
            "or iceberg+file:relative/path), an S3 bucket (iceberg+s3://bucket/prefix) or an "
            "Azure container (iceberg+az://container/prefix)"
        )
    root = folder_of(url, base_dir)
    catalog = catalogs.sqlalchemy_uri(catalog_url, root)
    return IcebergDatabase(
        str(root), SideFolder(root), catalog=catalog, sleep=sleep, local=root, settings=kept
    )


@contextmanager
def guarded(doing: str, secrets: Callable[[], Iterable[str]] = tuple) -> Iterator[None]:
    """Re-raise pyiceberg's (and its catalog's) errors as `DatabaseError`, without any of
    ``secrets()`` (the catalog's password, a bucket's key; asked for only on a failure)."""
    try:
        yield
    except (ConfigError, DatabaseError):
        raise
    except Exception as exc:  # pyiceberg raises many kinds, SQLAlchemy's among them
        said = scrub(f"{type(exc).__name__}: {exc}", secrets())
        raise DatabaseError(f"{doing}: {said}") from None


class IcebergDatabase(LakeDatabase):
    """A warehouse (``root``: a folder, ``local``, or a bucket prefix) of Iceberg tables, its
    catalog, and dapctl's records."""

    format, types = "Iceberg", TYPES
    in_place = frozenset({("int", "long"), ("float", "double")})  # Iceberg's type promotions

    def __init__(
        self,
        root: str,
        side: Side,
        *,
        catalog: str,
        sleep: Callable[[float], None],
        local: Path | None = None,
        io: dict[str, str] | None = None,
        settings: upkeep.Upkeep = upkeep.NONE,
    ) -> None:
        super().__init__(root, side, sleep=sleep, settings=settings)
        self._uri, self._local, self._io = catalog, local, io or {}
        self._catalog: SqlCatalog | None = None

    @property
    def catalog(self) -> SqlCatalog:
        if self._catalog is None:
            if self._local is not None:
                ensure_private_dir(self._local / SIDE)
            warehouse = self.root if self._local is None else f"file://{self._local}"
            with self.guarded(f"cannot open the Iceberg catalog {catalogs.shown(self._uri)}"):
                self._catalog = SqlCatalog(
                    catalogs.NAME, uri=self._uri, warehouse=warehouse, **self._io
                )
        return self._catalog

    def guarded(self, doing: str) -> AbstractContextManager[None]:
        return guarded(doing, lambda: passwords(self._uri) + stores.secrets())

    def close(self) -> None:
        """Close the catalog's connections (its SQLAlchemy pool)."""
        if self._catalog is not None:
            self._catalog.engine.dispose()
            self._catalog = None

    def make_namespace(self, name: str) -> None:
        """The namespace, if missing; two loads may both find it missing (threads of one
        apply, or two applies): the one that loses the race finds it made."""
        try:
            self.catalog.create_namespace_if_not_exists(name)
        except Exception:
            if (name,) not in self.catalog.list_namespaces():
                raise

    def open_table(self, table: TableName) -> Any:
        """The table, or None; `DatabaseError` if the catalog's table of that name lives
        elsewhere (another lake sharing the catalog: it must never be written from here)."""
        with self.guarded(f"cannot read the Iceberg table {'.'.join(table)}"):
            try:
                found = self.catalog.load_table(table)
            except NoSuchTableError:
                return None
        where = found.location()
        if not self._holds(where):
            raise DatabaseError(
                f"the Iceberg catalog {catalogs.shown(self._uri)} has {'.'.join(table)} at "
                f"{where}, not in this lake ({self.root}): give each lake a catalog of its own"
            )
        return found

    def _holds(self, where: str) -> bool:
        """Whether ``where`` (a table's location) is in this lake."""
        if self._local is None:
            return where.startswith(self.root + "/")
        if urlsplit(where).scheme not in ("", "file"):
            return False  # in a bucket: another lake's
        return Path(where.removeprefix("file://")).resolve().is_relative_to(self._local.resolve())

    def tables(self) -> set[TableName]:
        """This lake's tables: the catalog's, where their metadata is in this lake (a
        catalog may be shared by lakes; the one query reads where each table is)."""
        local = self._local
        if (
            local
            and self._uri == catalogs.sqlalchemy_uri(None, local)
            and not (catalogs.default_file(local).exists())
        ):
            return set()  # nothing made yet: no catalog file made just to list nothing
        with self.guarded("cannot list the Iceberg catalog's tables"):
            rows = catalogs.listed(self.catalog)
        return {(ns, name) for ns, name, where in rows if self._holds(where)}

    def version(self, table: TableName) -> int:
        found = self.open_table(table)
        return -1 if found is None else int(found.metadata.last_updated_ms)

    def committed(self, table: TableName) -> StepRow | None:
        found = self.open_table(table)
        if found is None or RECORD not in found.properties:
            return None
        return StepRow(found.properties.get(ADDRESS, ""), found.properties[RECORD])

    def existing_columns(self, table: TableName) -> dict[str, str]:
        found = self.open_table(table)
        if found is None:
            return {}
        return {f.name: str(f.field_type) for f in found.schema().fields}

    def start_load(
        self, table: TableName, columns: list[Column], kind: LoadKind, *, append_only: bool
    ) -> TableLoad:
        return IcebergLoad(self, table, columns, kind, append_only=append_only)

    def arrow(self, table: TableName) -> Any:
        with self.guarded(f"cannot read the Iceberg table {'.'.join(table)}"):
            return self.catalog.load_table(table).scan().to_arrow()


class IcebergLoad(LakeLoad):
    """One snapshot or incremental of one Iceberg table (see the module doc)."""

    def __init__(
        self,
        db: IcebergDatabase,
        target: TableName,
        columns: list[Column],
        kind: LoadKind,
        *,
        append_only: bool,
    ) -> None:
        began = db.version(target)  # before the stage: a failure leaves nothing
        super().__init__(target, columns, kind, append_only=append_only)
        self.db, self.began = db, began

    def commit(self, *, address: str, record: str, run: RunRow | None = None) -> int:
        given = marks(address, record, run)
        try:
            with self.db.guarded(f"cannot apply the {self.kind} of {self.where}"):
                table = self.db.open_table(self.target)
                self.refuse_if_moved(-1 if table is None else int(table.metadata.last_updated_ms))
                table = self._one_try(table)
                loads = 1 if table is None else int(table.properties.get(LOADS, "0")) + 1
                settled = {**given, **ONE_TRY, LOADS: str(loads)}
                rows = (self._merge if self.merge else self._replace)(table, given, settled)
        finally:
            self.abort()  # the stage, whatever happened
        self.db.side.clear_pending(self.target)
        if self.db.upkeep != upkeep.NONE and (done := self.db.open_table(self.target)):
            iceberg_upkeep.after_commit(done, self.db.upkeep, self.where)
        return rows

    def _one_try(self, table: Any) -> Any:
        """``table`` with pyiceberg's retry off: pyiceberg reads it from the table as the
        transaction begins, so a table made before dapctl set it gets it in a commit of its
        own first; if the table moved meanwhile, the load is refused."""
        if table is None or table.properties.get(RETRIES) == "0":
            return table
        before = table.metadata.current_snapshot_id
        with table.transaction() as tx:
            tx.set_properties(ONE_TRY)
        table = self.db.open_table(self.target)
        if table is None or table.metadata.current_snapshot_id != before:
            self.refuse_if_moved(MOVED)
        return table

    def _replace(self, table: Any, given: dict[str, str], settled: dict[str, str]) -> int:
        """A snapshot: its rows streamed (`Stage.live`) into new data files a chunk at a
        time, and one overwrite snapshot that swaps the table's files for them."""
        with self.streamed() as live:
            table = self._table(table, live.schema, fresh=True)
            old = [t.file for t in table.scan().plan_files()] if table.current_snapshot() else []
            with table.transaction() as tx:
                tx.update_schema().union_by_name(live.schema).commit()
                chunks = (shaped(chunk, tx) for chunk in iceberg_cow.chunks(live.batches()))
                new = iceberg_cow.data_files(tx.table_metadata, table.io, chunks)
                if old or new:
                    with tx.update_snapshot(snapshot_properties=given).overwrite() as swap:
                        for data_file in old:
                            swap.delete_data_file(data_file)
                        for data_file in new:
                            swap.append_data_file(data_file)
                else:  # nothing before, nothing now: a snapshot all the same
                    tx.append(shaped(live.schema.empty_table(), tx), snapshot_properties=given)
                tx.set_properties(settled)
        return live.rows

    def _merge(self, table: Any, given: dict[str, str], settled: dict[str, str]) -> int:
        """An incremental (or an append-only load): the window's keys deleted copy-on-write
        (`iceberg_cow`), its upserts appended, one transaction."""
        data = self.staged(action=True)
        rows = data.drop_columns([ACTION])
        table = self._table(table, rows.schema, fresh=False)
        with table.transaction() as tx:
            tx.update_schema().union_by_name(rows.schema).commit()
            upserts = rows.filter(pc.not_equal(data[ACTION], "D"))
            gone, removed = data if not self.append_only else upserts, 0
            if gone.num_rows and table.current_snapshot() is not None:
                keys = [c.name for c in self.columns if c.key]
                removed = iceberg_cow.delete_keys(tx, table.io, keys, gone, given)
            if upserts.num_rows or not removed:  # empty: a snapshot all the same
                tx.append(shaped(upserts, tx), snapshot_properties=given)
            tx.set_properties(settled)
        return int(data.num_rows)

    def _table(self, table: Any, schema: Any, *, fresh: bool) -> Any:
        """The table (``table``, as the load found it), made if missing; a snapshot that
        changes a column's type re-creates it (Iceberg widens only a few types in place)."""
        if table is not None and fresh and self.db._retypes(self.target, self.columns):
            self.db.catalog.drop_table(self.target)
            table = None
        if table is None:
            self.db.make_namespace(self.target[0])
            table = self.db.catalog.create_table(
                self.target,
                schema=schema,
                location=self.db.location(self.target),
                properties=ONE_TRY,
            )
        return table

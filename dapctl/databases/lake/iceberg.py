"""The Apache Iceberg engine: DAP tables as Iceberg tables in a folder, with a SQL catalog
(pyiceberg's ``SqlCatalog``, in SQLite), read by any Iceberg reader.

``iceberg+file:///srv/lake`` (absolute) or ``iceberg+file:lake`` (relative to the config's
folder) is the warehouse: each table's files go to ``{root}/{schema}/{table}``, and the
catalog (which metadata file is each table's current one) is ``{root}/_dapctl/catalog.db``.
A reader points its Iceberg catalog at the same SQLite file, or reads a table's current
metadata file directly.

- Step records: each load's commit sets the table properties ``dapctl.record`` and
  ``dapctl.address`` and puts the same in its snapshots' summaries, in the one metadata
  commit that also holds the data: the catalog swaps the table's metadata pointer once, so
  table and watermark change together or not at all. A commit that changes no row still
  moves the properties.
- Snapshots overwrite the table in one commit; incrementals delete the window's keys
  (`iceberg_cow`: copy-on-write, file by file) and append its upserts in one transaction
  (one catalog commit).
- Concurrent writers: a load checks the table's last update before writing; the catalog's
  commit is a compare-and-swap of the metadata pointer, so of two writers that began from
  one version the second fails (`DatabaseError`), writes nothing, and the next run retries.
- Schema changes: new columns join by name, and ``int`` -> ``long`` and ``float`` ->
  ``double`` widen in place (Iceberg's own promotions, in the load's commit); any other
  change is a reload (the snapshot re-creates the table with the new types).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NoSuchTableError

from dapctl.databases.columns import Column, ColumnType, TypeMapper
from dapctl.databases.engine import DatabaseError, LoadKind, StepRow, TableLoad, TableName
from dapctl.databases.lake import iceberg_cow, upkeep
from dapctl.databases.lake.common import ADDRESS, RECORD, LakeDatabase, LakeLoad, folder_of, marks
from dapctl.databases.lake.stage import ACTION
from dapctl.databases.lake.steps import SIDE, SideFolder
from dapctl.databases.loads import RunRow
from dapctl.errors import ConfigError
from dapctl.files import ensure_private_dir

__all__ = ["TYPES", "IcebergDatabase", "open_url"]

# pyiceberg warns when an overwrite or delete matched no row; a window's keys may all be new
# and a first snapshot replaces nothing. Set once, here: catch_warnings is not thread-safe,
# and an apply loads tables in threads.
warnings.filterwarnings("ignore", "Delete operation did not match", UserWarning)

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
    """The registry's opener for ``iceberg+file:`` URLs (see the module doc)."""
    url, _, query = url.partition("?")
    if query:
        raise ConfigError(f"an Iceberg lake URL takes no settings yet, got ?{query}")
    if not url.lower().startswith("iceberg+file:"):
        raise ConfigError(
            "unsupported lake URL: Iceberg tables go in a folder, iceberg+file:///absolute/path "
            "or iceberg+file:relative/path"
        )
    return IcebergDatabase(folder_of(url, base_dir), sleep=sleep)


@contextmanager
def guarded(doing: str) -> Iterator[None]:
    """Re-raise pyiceberg's (and its catalog's) errors as `DatabaseError`."""
    try:
        yield
    except (ConfigError, DatabaseError):
        raise
    except Exception as exc:  # pyiceberg raises many kinds, SQLAlchemy's among them
        raise DatabaseError(f"{doing}: {type(exc).__name__}: {exc}") from None


class IcebergDatabase(LakeDatabase):
    """A warehouse folder of Iceberg tables, its SQLite catalog, and dapctl's records."""

    format, types = "Iceberg", TYPES
    in_place = frozenset({("int", "long"), ("float", "double")})  # Iceberg's type promotions

    def __init__(self, root: Path, *, sleep: Callable[[float], None]) -> None:
        super().__init__(str(root), SideFolder(root), sleep=sleep, settings=upkeep.NONE)
        self._root = root
        self._catalog: SqlCatalog | None = None

    @property
    def catalog(self) -> SqlCatalog:
        if self._catalog is None:
            ensure_private_dir(self._root / SIDE)
            with guarded(f"cannot open the Iceberg catalog in {self._root / SIDE}"):
                self._catalog = SqlCatalog(
                    "dapctl",
                    uri=f"sqlite:///{self._root / SIDE / 'catalog.db'}",
                    warehouse=f"file://{self._root}",
                )
        return self._catalog

    def make_namespace(self, name: str) -> None:
        """The namespace, if missing; two loads may both find it missing (threads of one
        apply, or two applies): the one that loses the race finds it made."""
        try:
            self.catalog.create_namespace_if_not_exists(name)
        except Exception:
            if (name,) not in self.catalog.list_namespaces():
                raise

    def open_table(self, table: TableName) -> Any:
        with guarded(f"cannot read the Iceberg table {'.'.join(table)}"):
            try:
                return self.catalog.load_table(table)
            except NoSuchTableError:
                return None

    def tables(self) -> set[TableName]:
        if not (self._root / SIDE / "catalog.db").exists():
            return set()
        with guarded("cannot list the Iceberg catalog's tables"):
            return {
                (str(namespace[0]), str(identifier[-1]))
                for namespace in self.catalog.list_namespaces()
                for identifier in self.catalog.list_tables(namespace)
            }

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
        with guarded(f"cannot read the Iceberg table {'.'.join(table)}"):
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
        super().__init__(target, columns, kind, append_only=append_only)
        self.db = db
        self.began = db.version(target)

    def commit(self, *, address: str, record: str, run: RunRow | None = None) -> int:
        data = self.staged(action=True)
        self.refuse_if_moved(self.db.version(self.target))
        given = marks(address, record, run)
        rows = data.drop_columns([ACTION])
        with guarded(f"cannot apply the {self.kind} of {self.where}"):
            table = self._table(rows.schema, fresh=not self.merge)
            with table.transaction() as tx:
                tx.update_schema().union_by_name(rows.schema).commit()
                upserts = rows.filter(pc.not_equal(data[ACTION], "D"))
                if not self.merge:
                    tx.overwrite(_shaped(upserts, tx), snapshot_properties=given)
                else:
                    gone = data if not self.append_only else upserts
                    if gone.num_rows and table.current_snapshot() is not None:
                        keys = [c.name for c in self.columns if c.key]
                        iceberg_cow.delete_keys(tx, table.io, keys, gone, given)
                    if upserts.num_rows:
                        tx.append(_shaped(upserts, tx), snapshot_properties=given)
                tx.set_properties(given)
        self.db.side.clear_pending(self.target)
        return int(data.num_rows)

    def _table(self, schema: Any, *, fresh: bool) -> Any:
        """The table, made if missing; a snapshot that changes a column's type re-creates it
        (Iceberg widens only a few types in place)."""
        table = self.db.open_table(self.target)
        if table is not None and fresh and self.db._retypes(self.target, self.columns):
            self.db.catalog.drop_table(self.target)
            table = None
        if table is None:
            self.db.make_namespace(self.target[0])
            table = self.db.catalog.create_table(
                self.target, schema=schema, location=self.db.location(self.target)
            )
        return table


def _shaped(rows: Any, tx: Any) -> Any:
    """``rows`` as the table's own Arrow schema (after this load's new columns): its column
    order and types (DAP's 16-bit integers are Iceberg ints), NULL for a column DAP no
    longer sends."""
    schema = tx.table_metadata.schema().as_arrow()
    arrays = [
        rows[f.name].cast(f.type) if f.name in rows.column_names
        else pa.nulls(rows.num_rows, f.type)
        for f in schema
    ]  # fmt: skip
    return pa.Table.from_arrays(arrays, schema=schema)

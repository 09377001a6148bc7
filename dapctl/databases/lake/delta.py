"""The Delta Lake engine: DAP tables as Delta tables in a folder, written by ``deltalake``
(delta-rs), read by any Delta reader.

``delta+file:///srv/lake`` (absolute) or ``delta+file:lake`` (relative to the config's
folder), ``delta+s3://bucket/prefix`` or ``delta+az://container/prefix`` (`stores`) is the
lake's root; each table is the Delta table ``{root}/{schema}/{table}``.

- Step records: each load commits with ``dapctl.address`` and ``dapctl.record`` in its
  ``commitInfo`` (Delta's commit metadata), so the watermark is in the same atomic log entry
  as the data. `read_steps` takes the newest commit that has one; a pending record (`steps`)
  overrides it only while the table is still at the version it names.
- Snapshots overwrite the table in one commit (its schema too); incrementals are one
  ``MERGE`` by key (deletes, then updates and inserts, the latest record per key first);
  append-only tables never delete.
- Concurrent writers: Delta's optimistic commit protocol, plus dapctl's own ``txn`` action
  (app id ``dapctl``, a version counted per load). A load checks the count it began with
  before writing, and the commit carries the next count: two loads that began from the same
  count cannot both commit (the second fails with `DatabaseError`, the next run retries),
  even where Delta alone would let a stale overwrite through. Locks (`steps`) keep two
  applies on one machine from trying.
- Schema changes: new columns join through the merge (``merge_schema``); Delta-rs cannot
  change a column's type in place, so an incremental refuses any type change with
  `NeedsReload` and the next snapshot rewrites the table with the new types.
- History tables and soft deletes are database features: a lake target refuses them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import DeltaError, TableNotFoundError

from dapctl.databases.columns import Column
from dapctl.databases.engine import DatabaseError, LoadKind, StepRow, TableLoad, TableName, redact
from dapctl.databases.lake import stores, upkeep
from dapctl.databases.lake.common import ADDRESS, RECORD, LakeDatabase, LakeLoad, folder_of, marks
from dapctl.databases.lake.stage import ACTION, TYPES
from dapctl.databases.lake.steps import Side, SideFolder
from dapctl.databases.loads import RunRow
from dapctl.errors import ConfigError
from dapctl.redaction import scrub

__all__ = ["TYPES", "DeltaDatabase", "open_url"]

APP = "dapctl"  # the txn action's app id
_HISTORY = 100  # commits searched back for dapctl's newest (others: OPTIMIZE, a user's)


def open_url(url: str, *, base_dir: Path, sleep: Callable[[float], None]) -> DeltaDatabase:
    """The registry's opener for ``delta+file:``, ``delta+s3:`` and ``delta+az:`` URLs (the
    module doc; a bucket's options: `stores`); the query holds the `upkeep` settings."""
    url, _, query = url.partition("?")
    kept = upkeep.parse(query, redact(url))
    scheme = url.partition(":")[0].lower()
    if scheme in ("delta+s3", "delta+az"):
        where, side, store = stores.open_bucket(url)
        return DeltaDatabase(where, side, sleep=sleep, options=store.delta(), settings=kept)
    if scheme != "delta+file":
        raise ConfigError(
            f"unsupported lake URL {redact(url)!r}: Delta tables go in a folder "
            "(delta+file:///absolute/path or delta+file:relative/path), an S3 bucket "
            "(delta+s3://bucket/prefix) or an Azure container (delta+az://container/prefix)"
        )
    root = folder_of(url, base_dir)
    return DeltaDatabase(str(root), SideFolder(root), sleep=sleep, settings=kept)


@contextmanager
def guarded(doing: str, secrets: Callable[[], Iterable[str]] = tuple) -> Iterator[None]:
    """Re-raise delta-rs errors as `DatabaseError` naming what was being done, without any
    of ``secrets()`` (a bucket's key; asked for only when there is a message to clean)."""
    try:
        yield
    except (DeltaError, OSError) as exc:
        raise DatabaseError(scrub(f"{doing}: {exc}", secrets())) from None


class DeltaDatabase(LakeDatabase):
    """A folder or bucket prefix (``root``) of Delta tables, and dapctl's records of them."""

    format, types = "Delta", TYPES

    def __init__(
        self,
        root: str,
        side: Side,
        *,
        sleep: Callable[[float], None],
        options: dict[str, str] | None = None,
        settings: upkeep.Upkeep = upkeep.NONE,
    ) -> None:
        super().__init__(root, side, sleep=sleep, settings=settings)
        self.options = options or {}

    def guarded(self, doing: str) -> AbstractContextManager[None]:
        return guarded(doing, stores.secrets)

    def open_table(self, table: TableName) -> DeltaTable | None:
        """The table as it is now, or None if there is none."""
        with self.guarded(f"cannot read the Delta table {'.'.join(table)}"):
            try:
                return DeltaTable(self.location(table), storage_options=self.options)
            except TableNotFoundError:
                return None

    def tables(self) -> set[TableName]:
        with self.guarded(f"cannot list the tables in {self.root}"):
            return self.side.tables()

    def version(self, table: TableName) -> int:
        dt = self.open_table(table)
        return -1 if dt is None else dt.version()

    def committed(self, table: TableName) -> StepRow | None:
        dt = self.open_table(table)
        if dt is None:
            return None
        with self.guarded(f"cannot read the history of the Delta table {'.'.join(table)}"):
            return committed_step(dt)

    def write_step(self, table: TableName, *, address: str, record: str) -> None:
        with self.guarded(f"cannot record the step of {'.'.join(table)}"):
            super().write_step(table, address=address, record=record)

    def existing_columns(self, table: TableName) -> dict[str, str]:
        dt = self.open_table(table)
        if dt is None:
            return {}
        return {f.name: str(getattr(f.type, "type", f.type)) for f in dt.schema().fields}

    def start_load(
        self, table: TableName, columns: list[Column], kind: LoadKind, *, append_only: bool
    ) -> TableLoad:
        return DeltaLoad(self, table, columns, kind, append_only=append_only)

    def arrow(self, table: TableName) -> Any:
        with self.guarded(f"cannot read the Delta table {'.'.join(table)}"):
            return DeltaTable(self.location(table), storage_options=self.options).to_pyarrow_table()


def committed_step(dt: DeltaTable) -> StepRow | None:
    """The step record of the newest commit that has one (see the module doc)."""
    for commit in dt.history(_HISTORY):
        if RECORD in commit:
            return StepRow(str(commit.get(ADDRESS, "")), str(commit[RECORD]))
    return None


class DeltaLoad(LakeLoad):
    """One snapshot or incremental of one Delta table (see the module doc)."""

    def __init__(
        self,
        db: DeltaDatabase,
        target: TableName,
        columns: list[Column],
        kind: LoadKind,
        *,
        append_only: bool,
    ) -> None:
        began = _counter(db.open_table(target))  # before the stage: a failure leaves nothing
        super().__init__(target, columns, kind, append_only=append_only)
        self.db, self.began = db, began

    def commit(self, *, address: str, record: str, run: RunRow | None = None) -> int:
        try:
            dt = self.db.open_table(self.target)
            self.refuse_if_moved(now := _counter(dt))
            props = CommitProperties(
                custom_metadata=marks(address, record, run),
                app_transactions=[Transaction(APP, (now or 0) + 1)],
            )
            with self.db.guarded(f"cannot apply the {self.kind} of {self.where}"):
                if dt is None or not self.merge:
                    rows = self._overwrite(dt, props)
                else:
                    rows = self._merge(dt, self.staged(action=True), props)
        finally:
            self.abort()  # the stage, whatever happened
        self.db.side.clear_pending(self.target)
        if self.db.upkeep != upkeep.NONE and (done := self.db.open_table(self.target)):
            upkeep.after_commit(done, self.db.upkeep, self.where)
        return rows

    def _overwrite(self, dt: DeltaTable | None, props: CommitProperties) -> int:
        """A snapshot, or a first load of a table that merges (its deletes dropped): the
        live rows streamed to the writer (`Stage.live`), a batch at a time. The write is
        based on ``dt``, the version the stale-writer check read, so a commit that lands
        while the rows are read out conflicts with it instead of being overwritten."""
        with self.streamed() as live:
            write_deltalake(
                dt if dt is not None else self.db.location(self.target),
                live.reader(),
                mode="overwrite",
                schema_mode="overwrite",
                storage_options=None if dt is not None else self.db.options,
                commit_properties=props,
            )
        return live.rows

    def _merge(self, dt: DeltaTable, data: Any, props: CommitProperties) -> int:
        """One MERGE; when it changes nothing (delta-rs then commits nothing), an empty
        append carries the record, so the watermark moves on all the same."""
        before = dt.version()
        keys = " AND ".join(f"t.{_q(c.name)} = s.{_q(c.name)}" for c in self.columns if c.key)
        merger = dt.merge(
            data,
            keys,
            source_alias="s",
            target_alias="t",
            merge_schema=True,
            commit_properties=props,
        )
        if not self.append_only:
            merger = merger.when_matched_delete(f"s.{ACTION} = 'D'")
        upsert = f"s.{ACTION} <> 'D'"
        metrics = (
            merger.when_matched_update_all(upsert, except_cols=[ACTION])
            .when_not_matched_insert_all(upsert, except_cols=[ACTION])
            .execute()
        )
        if self.db.version(self.target) == before:
            empty = data.drop_columns([ACTION]).schema.empty_table()
            write_deltalake(dt, empty, mode="append", schema_mode="merge", commit_properties=props)
        return sum(
            int(metrics.get(f"num_target_rows_{what}", 0))
            for what in ("inserted", "updated", "deleted")
        )


def _counter(dt: DeltaTable | None) -> int | None:
    """dapctl's txn counter in the table (None: no table; 0: no load of dapctl's yet)."""
    return None if dt is None else (dt.transaction_version(APP) or 0)


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"

"""What every lake engine shares (`LakeDatabase`): the `engine.Database` protocol over a root
of tables, with the step-record rules of the lake (``dapctl.databases.lake``'s doc).

A format supplies five things: ``version(table)`` (-1 when there is no table), the step
record of its newest commit that has one (``committed``), the table's columns as the format
spells them (``existing_columns``, read by its `TypeMapper` ``types``), the load
(``start_load``), and its rows as Arrow (``arrow``). Everything else, the pending records
and locks (`steps`), listing, the refusals and the schema diff, is here once; so is what
every load shares (`LakeLoad`: staging, the stale-writer check) and what every commit
carries (`marks`), and how a ``<format>+file:`` URL names its folder (`folder_of`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from dapctl.databases import evolve
from dapctl.databases.columns import Column, TypeMapper, check_identifier, table_columns
from dapctl.databases.engine import (
    DEFAULT_OPTIONS,
    DatabaseError,
    LoadKind,
    StepRow,
    TableLoad,
    TableName,
    TableOptions,
)
from dapctl.databases.lake import upkeep
from dapctl.databases.lake.stage import Live, Stage
from dapctl.databases.lake.steps import Pending, Side
from dapctl.databases.loads import RunRow
from dapctl.errors import ConfigError

# The step record's keys in a format's commit metadata (Delta commitInfo, Iceberg properties).
ADDRESS, RECORD, RUN = "dapctl.address", "dapctl.record", "dapctl.run"


def marks(address: str, record: str, run: RunRow | None) -> dict[str, str]:
    """What a load's commit carries: the step record, its address, and the apply."""
    found = {ADDRESS: address, RECORD: record}
    if run is not None:
        found[RUN] = json.dumps(asdict(run), default=str)
    return found


def folder_of(url: str, base_dir: Path) -> Path:
    """The folder a ``<format>+file:`` URL names: ``///absolute/path`` or ``relative/path``
    (from ``base_dir``, the config's folder)."""
    scheme, _, rest = url.partition(":")
    example = f"{scheme.lower()}:///srv/lake"
    if rest.startswith("//"):
        host, _, path = rest[2:].partition("/")
        if host not in ("", "localhost") or not path:
            raise ConfigError(f"a lake URL looks like {example}, got {url!r}")
        return Path("/" + path)
    if not rest:
        raise ConfigError(f"a lake URL names a folder, as {example}; got {url!r}")
    return base_dir / rest


class LakeDatabase:
    """A root of lake tables and dapctl's records of them (subclassed per format)."""

    format = "lake"
    types: TypeMapper
    in_place: frozenset[tuple[str, str]] = frozenset()  # (old, new) types widened in place

    def __init__(
        self,
        root: str,
        side: Side,
        *,
        sleep: Callable[[float], None],
        settings: upkeep.Upkeep = upkeep.NONE,
    ) -> None:
        self.root, self.side, self._sleep, self.upkeep = root, side, sleep, settings

    # What a format supplies.
    def version(self, table: TableName) -> int:
        raise NotImplementedError

    def committed(self, table: TableName) -> StepRow | None:
        raise NotImplementedError

    def existing_columns(self, table: TableName) -> dict[str, str]:
        raise NotImplementedError

    def start_load(
        self, table: TableName, columns: list[Column], kind: LoadKind, *, append_only: bool
    ) -> TableLoad:
        raise NotImplementedError

    def arrow(self, table: TableName) -> Any:
        """The table's current rows as one Arrow table, read by the format's own reader."""
        raise NotImplementedError

    # The protocol.
    def close(self) -> None:
        pass  # nothing held between calls

    def location(self, table: TableName) -> str:
        return f"{self.root}/{table[0]}/{table[1]}"

    def lock(self, name: str, *, timeout: float) -> AbstractContextManager[None]:
        return self.side.locked(name, timeout=timeout, sleep=self._sleep)

    def tables(self) -> set[TableName]:
        return self.side.tables()

    def read_steps(self) -> dict[TableName, StepRow]:
        """Each table's committed record, or its pending one while the table is still at the
        version that record names."""
        pending = self.side.all_pending()
        steps = {}
        for table in self.tables() | set(pending):
            waiting = pending.get(table)
            if waiting is not None and waiting.version == self.version(table):
                steps[table] = StepRow(waiting.address, waiting.record)
            elif (committed := self.committed(table)) is not None:
                steps[table] = committed
        return steps

    def write_step(self, table: TableName, *, address: str, record: str) -> None:
        self.side.write_pending(table, Pending(self.version(table), address, record))

    def begin_load(
        self,
        *,
        schema: str,
        table: str,
        dap_schema: Mapping[str, Any],
        kind: LoadKind,
        options: TableOptions = DEFAULT_OPTIONS,
    ) -> TableLoad:
        if options.history_table is not None or options.soft_deletes:
            raise ConfigError(
                f"{schema}.{table}: history tables and soft deletes need a database "
                f"(PostgreSQL, DuckDB or MySQL); a {self.format} table keeps its own "
                "versions: read an older one with time travel"
            )
        check_identifier(schema, "schema name"), check_identifier(table, "table name")
        columns = table_columns(dap_schema)
        if kind == "incremental" and (bad := self._retypes((schema, table), columns)):
            raise evolve.NeedsReload(f"{schema}.{table}", bad)
        return self.start_load((schema, table), columns, kind, append_only=options.append_only)

    def sweep_staging(self) -> list[str]:
        return []  # a load stages in memory (and a private temporary folder) only

    def pending_schema_changes(
        self, *, schema: str, table: str, dap_schema: Mapping[str, Any]
    ) -> list[str]:
        check_identifier(schema, "schema name"), check_identifier(table, "table name")
        existing = self.existing_columns((schema, table))
        if not existing:
            return [f"create table {schema}.{table}"]
        wanted = table_columns(dap_schema)
        return [c.describe() for c in evolve.diff(existing, wanted, self.types)]

    def _retypes(self, table: TableName, columns: list[Column]) -> list[str]:
        changes = evolve.diff(self.existing_columns(table), columns, self.types)
        rewrites = [c for c in changes if c.kind == "retype"
                    and (c.old_type, c.new_type) not in self.in_place]  # fmt: skip
        return [f"{c.describe()} ({self.format} changes this type only by rewriting)"
                for c in rewrites]  # fmt: skip


class LakeLoad:
    """What every format's load shares: parts staged (`Stage`), the stale-writer check, the
    stage closed whatever happens. A format sets ``began`` (what another writer's commit
    would change) and writes in ``commit``."""

    began: object

    def __init__(
        self, target: TableName, columns: list[Column], kind: LoadKind, *, append_only: bool
    ) -> None:
        self.target, self.columns, self.kind = target, columns, kind
        self.append_only = append_only
        self.merge = kind == "incremental" or append_only  # else the table is replaced
        self.where = ".".join(target)
        self.stage: Stage | None = Stage(columns)

    def add_part(self, path: Path) -> int:
        assert self.stage is not None, "the load is closed"
        return self.stage.add_part(path)

    def staged(self, *, action: bool) -> Any:
        """The latest record per key (`Stage.latest`); the stage is closed after."""
        assert self.stage is not None, "the load is closed"
        try:
            return self.stage.latest(action=action)
        finally:
            self.abort()

    @contextmanager
    def streamed(self) -> Iterator[Live]:
        """The live rows, streamed (`Stage.live`); the stage is closed after."""
        assert self.stage is not None, "the load is closed"
        try:
            yield self.stage.live()
        finally:
            self.abort()

    def refuse_if_moved(self, now: object) -> None:
        """`DatabaseError` if another writer committed since the load began (``now``: the
        same reading as ``began``, taken again)."""
        if now != self.began:
            raise DatabaseError(
                f"cannot apply the {self.kind} of {self.where}: another writer committed to "
                "the table since this load began; nothing was written, the next run retries"
            )

    def abort(self) -> None:
        if self.stage is not None:
            self.stage.close()
            self.stage = None

"""The table destination: a job's parts loaded into a PostgreSQL or DuckDB table.

A target with ``database = "NAME"`` keeps each of its tables in that database (schema and
table from ``db_schema`` / ``db_table``). ``begin`` takes the table's lock (one load per
table at a time, across processes for PostgreSQL) and starts a ``TableLoad`` of
``dapctl.databases``: parts stream into a staging table as they download, and ``commit``
makes them visible in one transaction together with the step's record, so the table and
its watermark can never disagree. Each load has its own connection, so tables load in
parallel. ``Databases`` opens the config's databases by name, resolving ``url``,
``url_env`` or ``url_file``; which record of a step counts, and where it is read from, is
``dapctl.outputs.records``.

A table has no folder of its own, so a table-only load's parts download into a private
folder in the system's temporary folder (``$TMPDIR``), named for this process: each part is
removed once loaded and the folder when the load ends, whatever the outcome, and ``check``
sweeps the folders of killed processes before the first job. Its result's bytes are those
downloaded (``Landed.measured``: there is no file to measure).

A target with both ``output`` and ``database`` feeds both from one job (``BothLoad``): the
file is published first, then the table and its record commit; a crash between the two
leaves the file as the pending output, which the next apply removes and writes again.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from dapctl.api.wire import Format, Job, Mode
from dapctl.config import Config, Target, db_names, history_name
from dapctl.databases import Database, TableLoad, capabilities, open_database, wire_format
from dapctl.databases.engine import TableOptions
from dapctl.databases.loads import RunRow
from dapctl.files import ensure_private_dir, temp_path_for
from dapctl.outputs.destination import Landed, PartMode, Settle
from dapctl.outputs.files import FileLoad
from dapctl.outputs.merge import PartCounter
from dapctl.outputs.objects import sweep_stages
from dapctl.plan import Step
from dapctl.secret_sources import resolve_source
from dapctl.state import Kind

SchemaLookup = Callable[[str, str, str], Mapping[str, Any]]  # profile, namespace, table
PARTS = "dapctl-parts"
log = logging.getLogger("dapctl")


class Databases:
    """The config's databases, opened on demand by name; ``close`` closes them all."""

    def __init__(self, config: Config, *, base_dir: Path, environ: Mapping[str, str]) -> None:
        self._config = config
        self._base_dir = base_dir
        self._environ = environ
        self._open: dict[str, Database] = {}
        self._serial: dict[str, threading.Lock] = {}  # DuckDB: one load at a time
        self._turns: dict[str, threading.Lock] = {}  # one user of a shared connection at a time
        self._guard = threading.Lock()
        self._urls: dict[str, str] = {}  # resolved once: a file's warning is logged once

    def url(self, name: str) -> str:
        """The database's URL from ``url``, ``url_env`` or ``url_file``, read once and kept;
        a warning about its source (a file others may read) is logged then, once."""
        if name in self._urls:
            return self._urls[name]
        spec = self._config.databases[name]
        resolved = resolve_source(
            "url",
            value=spec.url,
            env=spec.url_env,
            file=spec.url_file,
            where=lambda key: f"databases.{name}.{key}",
            environ=self._environ,
            base_dir=self._base_dir,
        )
        assert resolved is not None  # the config requires one of the three
        url, warnings = resolved
        if self._urls.setdefault(name, url) is url:  # atomic: one thread of many warns
            for warning in warnings:
                log.warning(warning)
        return self._urls[name]

    @contextlib.contextmanager
    def for_load(self, name: str) -> Iterator[Database]:
        """A connection for one load: its own (PostgreSQL), so tables load in parallel, or,
        for an engine with a single writer (DuckDB), its one connection, one load at a time."""
        url = self.url(name)
        if not capabilities(url).single_writer:
            database = open_database(url, base_dir=self._base_dir)
            try:
                yield database
            finally:
                database.close()
            return
        with self._guard:
            serial = self._serial.setdefault(name, threading.Lock())
        with serial:
            yield self.get(name)

    def get(self, name: str) -> Database:
        """The shared connection, for step records and sweeping (from one thread; threads
        take turns on it through `shared`)."""
        with self._guard:
            if name not in self._open:
                self._open[name] = open_database(self.url(name), base_dir=self._base_dir)
            return self._open[name]

    @contextlib.contextmanager
    def shared(self, name: str) -> Iterator[Database]:
        """The shared connection, held by this thread until the block ends: a PostgreSQL
        connection runs one transaction at a time, and job threads record steps and claims
        re-read them at once."""
        with self._guard:
            turn = self._turns.setdefault(name, threading.Lock())
        with turn:
            yield self.get(name)

    def close(self) -> None:
        for database in self._open.values():
            database.close()
        self._open.clear()

    def __enter__(self) -> Databases:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TableDestination:
    def __init__(
        self,
        target: Target,
        *,
        databases: Databases,
        schema_of: SchemaLookup,
        lock_timeout: float = 600.0,
        scratch: Path | None = None,
        run: RunRow | None = None,
    ) -> None:
        assert target.database is not None
        self._run = run  # the apply's: its loads are recorded in dapctl.loads
        self.target = target
        self.name = target.database
        self._databases = databases
        self._schema_of = schema_of
        self._lock_timeout = lock_timeout
        self.scratch = scratch or Path(tempfile.gettempdir())
        self._swept = False

    def begin(self, step: Step, job: Job, *, kind: Kind, watermark: datetime) -> TableStepLoad:
        schema, table = db_names(self.target, step.profile, step.table)
        dap_schema = self._schema_of(step.profile, step.namespace, step.table)
        with contextlib.ExitStack() as stack:
            database = stack.enter_context(self._databases.for_load(self.name))
            stack.enter_context(database.lock(f"{schema}.{table}", timeout=self._lock_timeout))
            options = TableOptions(
                soft_deletes=self.target.deletes == "soft",
                history_table=history_name(self.target, step.profile, step.table),
                append_only=self.target.appends,
                partition_by=self.target.partition_column,
            )
            load = database.begin_load(
                schema=schema, table=table, dap_schema=dap_schema, kind=kind, options=options
            )
            location = f"database://{self.name}/{schema}.{table}"
            parts = temp_path_for(self.scratch / PARTS)
            held = stack.pop_all()
            raw = self.wire_format()[0] == "parquet"  # kept as served; text is decompressed
            return TableStepLoad(
                location, step.address, load, held, parts, run=self._run,
                part_mode="raw" if raw else "text",
            )  # fmt: skip

    def wire_format(self) -> tuple[Format, Mode | None]:
        """The query format to ask for: the one this database loads fastest (condensed TSV
        for PostgreSQL, COPYed as is). Only for a table-only target: with files too, the
        job's format is the files'."""
        return wire_format(self._databases.url(self.name))

    def check(self) -> None:
        """The database is reached when the step's state is read; here, once, the part
        folders killed processes left in the scratch folder are removed."""
        if not self._swept:
            self._swept = True
            sweep_stages(self.scratch, PARTS)

    def exists(self, location: str) -> bool:
        return False  # a table takes every window in turn; nothing is ever replaced

    def discard(self, location: str) -> None:
        """Nothing to remove: an uncommitted load left nothing visible."""


class TableStepLoad:
    """One job into a table; ``parts`` is the folder its parts download into (made with
    the first part, removed with whatever is in it when the load ends)."""

    part_mode: PartMode = "text"

    def __init__(
        self,
        location: str,
        address: str,
        load: TableLoad,
        held: contextlib.ExitStack,
        parts: Path,
        *,
        run: RunRow | None = None,
        part_mode: PartMode = "text",
    ) -> None:
        self._run = run
        self.part_mode = part_mode
        self.location = location
        self._address = address
        self._load = load
        self._held = held
        self._parts = parts
        self._rows = 0

    def part_path(self, index: int) -> Path:
        ensure_private_dir(self._parts)
        return self._parts / f"part{index:05d}"

    def add_part(self, part: Path, counted: PartCounter | None) -> None:
        self.stage(part)
        part.unlink()  # loaded: a large table's parts need not wait for the commit

    def stage(self, part: Path) -> None:
        """Load ``part`` into the staging table, leaving the file to the caller."""
        self._rows += self._load.add_part(part)

    def commit(self, settle: Settle) -> Landed:
        try:
            landed = Landed(
                (self.location,), 0, self._rows, None, shown=(self.location,), measured=False
            )
            record = settle(landed).model_dump_json()
            self._load.commit(address=self._address, record=record, run=self._run)
            return landed
        finally:
            self._release()

    def abort(self) -> None:
        try:
            self._load.abort()
        finally:
            self._release()

    def _release(self) -> None:
        try:
            self._held.close()
        finally:
            shutil.rmtree(self._parts, ignore_errors=True)


class BothDestination:
    """Files and a table from one job."""

    def __init__(self, files: Any, table: TableDestination) -> None:
        self.files = files
        self.table = table

    def begin(self, step: Step, job: Job, *, kind: Kind, watermark: datetime) -> BothLoad:
        file_load = self.files.begin(step, job, kind=kind, watermark=watermark, text_parts=True)
        return BothLoad(file_load, self.table.begin(step, job, kind=kind, watermark=watermark))

    def exists(self, location: str) -> bool:
        return bool(self.files.exists(location))

    def wire_format(self) -> tuple[Format, Mode | None]:
        return self.table.target.format, self.table.target.mode  # the files' format

    def check(self) -> None:
        self.files.check()

    def discard(self, location: str) -> None:
        self.files.discard(location)


class BothLoad:
    part_mode: PartMode = "text"

    def __init__(self, file: FileLoad, table: TableStepLoad) -> None:
        self.file = file
        self.table = table
        self.location = file.location

    def part_path(self, index: int) -> Path:
        return self.file.part_path(index)

    def add_part(self, part: Path, counted: PartCounter | None) -> None:
        self.table.stage(part)  # the table reads the part; the file then takes it
        self.file.add_part(part, None)

    def commit(self, settle: Settle) -> Landed:
        try:
            written = self.file.commit(settle)
        except BaseException:
            self.table.abort()
            raise
        both = Landed(
            (*written.locations, self.table.location),
            written.bytes,
            written.records,
            written.sha256,
            shown=(*written.shown, self.table.location),
            notes=written.notes,
        )
        self.table.commit(lambda _: settle(both))
        return both

    def abort(self) -> None:
        try:
            self.file.abort()
        finally:
            self.table.abort()

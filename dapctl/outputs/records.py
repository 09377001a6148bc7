"""Where a table target's step record lives: in its database, beside the table it describes.

A database target's watermark is true of one table's content and of nothing else, so the
record that counts is the row committed with that table (``Database.read_steps``, keyed by
schema and table), read from the database the target names today, for the schema and table
its templates render today. The state store may cache that record, never stand in for it:
`overlay_steps` replaces every database target's step with what its database says. A table
that is not in the database, or has no row there, gets a step that is ``absent`` (the reason
the plan shows) and is planned as a first run: a dropped table, a new empty database or a
changed ``db_schema`` is refilled by a snapshot, never by one window of changes. A pending
snapshot job recorded in the row is still resumed (a ``--no-wait`` run's job for a table not
yet created); a pending incremental into a table that is gone is not.

Rows are found by the table, so two configs loading one database into two schemas never see
each other's rows. A database that cannot be read fails only its own targets' steps
(`Overlay.unreachable`, each naming it); the rest of the run goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

from dapctl.config import Config, Target, address_of, db_names
from dapctl.databases import Database, StepRow, TableName
from dapctl.errors import DapctlError
from dapctl.outputs.tables import Databases
from dapctl.state import Overlay, State, StepState

# A database's name -> its open connection, held by the caller for the block.
DatabaseOpener = Callable[[str], AbstractContextManager[Database]]


@dataclass(frozen=True)
class TableAddress:
    """The database, schema and table a database target keeps one step's table in."""

    database: str
    table: TableName

    @property
    def name(self) -> str:
        return ".".join(self.table)


def target_of(config: Config, address: str) -> Target | None:
    """The target ``address`` (``profile/target/namespace.table``) belongs to, if declared."""
    parts = address.split("/", 2)
    if len(parts) != 3:
        return None
    return next((t for t in config.targets if t.name == parts[1]), None)


def table_of(config: Config, address: str) -> TableAddress | None:
    """Where ``address``'s table lives, if its target keeps tables in a database."""
    target = target_of(config, address)
    if target is None or target.database is None:
        return None
    profile, _, rest = address.split("/", 2)
    prefix = f"{target.namespace}."
    if not rest.startswith(prefix):
        return None
    return TableAddress(target.database, db_names(target, profile, rest[len(prefix) :]))


def database_of(config: Config, address: str) -> str | None:
    """The database that keeps ``address``'s table, if its target has one."""
    where = table_of(config, address)
    return where.database if where is not None else None


def used_databases(config: Config) -> list[str]:
    """The names of the databases the config's targets keep tables in."""
    return sorted({t.database for t in config.targets if t.database is not None})


@dataclass(frozen=True)
class Tables:
    """What one database holds: its step rows and which tables exist."""

    rows: dict[TableName, StepRow]
    present: set[TableName]

    @classmethod
    def read(cls, database: Database) -> Tables:
        return cls(database.read_steps(), database.tables())

    def step(self, where: TableAddress) -> StepState:
        """The step as the database says it: the row committed with the table, or an
        ``absent`` step saying why there is none (planned as a first run)."""
        row = self.rows.get(where.table)
        record = StepState.model_validate_json(row.record) if row is not None else None
        if where.table not in self.present:
            pending = record.pending if record is not None else None
            if pending is not None and pending.kind == "snapshot":
                return StepState(pending=pending)  # a snapshot job creates the table
            return StepState(absent=f"{where.name} is not in the database")
        if record is None:
            return StepState(absent=f"{where.name} has no dapctl record in the database")
        return record


def read_tables(
    config: Config, open_database: DatabaseOpener
) -> tuple[dict[str, Tables], dict[str, str]]:
    """Every used database's rows and tables, and (by name) the ones that could not be read."""
    read: dict[str, Tables] = {}
    unreachable: dict[str, str] = {}
    for name in used_databases(config):
        try:
            with open_database(name) as database:
                read[name] = Tables.read(database)
        except DapctlError as exc:
            unreachable[name] = exc.message  # a DatabaseError's message holds no password
    return read, unreachable


def overlay_steps(config: Config, state: State, open_database: DatabaseOpener) -> Overlay:
    """``state`` with every database target's step as its database says (see the module
    docstring); the steps of a database that could not be read are left out."""
    read, unreachable = read_tables(config, open_database)
    # A step of a database that was read is replaced; the rest (files, or a database that
    # could not be read, whose steps fail) stay as the state has them.
    steps = {a: s for a, s in state.steps.items() if database_of(config, a) not in read}
    for address in _database_addresses(config, state, read):
        where = table_of(config, address)
        if where is not None and where.database in read:
            steps[address] = read[where.database].step(where)
    return Overlay(state.model_copy(update={"steps": steps}), unreachable)


def _database_addresses(config: Config, state: State, read: dict[str, Tables]) -> Iterator[str]:
    """The addresses whose record a database holds or should: the state's, the declared
    tables', and (for ``tables = "all"`` targets) those the rows name for a table of ours."""
    yield from state.steps
    for target in config.targets:
        if target.database is not None and target.tables != "all":
            for profile in config.target_profiles(target):
                for table in target.tables:
                    yield address_of(profile, target.name, target.namespace, table)
    for name, tables in read.items():
        for key, row in tables.rows.items():
            where = table_of(config, row.address)
            if where is not None and where == TableAddress(name, key):
                yield row.address


def reread_step(config: Config, open_database: DatabaseOpener, address: str) -> StepState | None:
    """One step as its database says (a worker's fresh claim), or None for a target with no
    database."""
    where = table_of(config, address)
    if where is None:
        return None
    with open_database(where.database) as database:
        return Tables.read(database).step(where)


def write_record(
    config: Config, open_database: DatabaseOpener, address: str, step: StepState
) -> None:
    """Write ``step`` as its table's row, if ``address``'s target keeps a database."""
    where = table_of(config, address)
    if where is not None:
        with open_database(where.database) as database:
            database.write_step(where.table, address=address, record=step.model_dump_json())


class DatabaseRecords:
    """The ``StepRecords`` of a config with table targets: their records in their databases."""

    def __init__(self, config: Config, databases: Databases) -> None:
        self._config = config
        self._databases = databases

    def overlay(self, state: State) -> Overlay:
        return overlay_steps(self._config, state, self._databases.shared)

    def mirror(self, address: str, step: StepState) -> None:
        """A pending job goes to its table's row before it is polled (a completed one was
        committed there with its data)."""
        write_record(self._config, self._databases.shared, address, step)

    def reread(self, address: str, step: StepState) -> StepState:
        from_database = reread_step(self._config, self._databases.shared, address)
        return step if from_database is None else from_database

    def sweep(self, skip: Collection[str] = ()) -> list[str]:
        """Drop the staging tables killed runs left in the config's databases (but those in
        ``skip``, which could not be read); return them."""
        return [
            table
            for name in used_databases(self._config)
            if name not in skip
            for table in self._databases.get(name).sweep_staging()
        ]

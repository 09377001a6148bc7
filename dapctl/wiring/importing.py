"""``dapctl import``: take over the tables the official client (``dap syncdb``) keeps.

For every selected table step of a target with a database, the database must be one whose
engine `Adopts` (PostgreSQL, MySQL); the client's sync row for the table (`DapSync`, found by the
schema and table the config's templates render) gives its last sync time and schema
version, and the server's schema endpoint its current version. Each table gets one outcome:

- ``adopted``: converted and its step row written (the engine's ``adopt``: one transaction
  on PostgreSQL; on MySQL one ALTER TABLE, then the row), under the same per-table lock
  apply takes. The row is the record a completed
  snapshot writes: watermark = the client's last sync time, so the next apply continues
  with an incremental. A table behind the server's schema version gets no watermark but a
  ``reload`` reason, so the next plan takes a snapshot and says why.
- ``would adopt`` (``--dry-run``): what would change; nothing is written.
- ``already adopted``: dapctl already keeps a step row for the table; nothing changes.
- ``skipped``: no client row (never synced), no such table, or an engine that cannot adopt.
- ``failed``: the table cannot be converted without loss (left exactly as it was).

The client's own rows are only read. No table is downloaded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from dapctl.api.client import DapClient
from dapctl.api.session import Connection, connect
from dapctl.config import Config, db_names
from dapctl.credentials import resolve_used
from dapctl.databases import Adopts, DapSync, Database, TableName
from dapctl.errors import DapctlError
from dapctl.loading import LoadedConfig
from dapctl.outputs.tables import Databases
from dapctl.plan import Step, plan
from dapctl.state import State, StepState
from dapctl.wiring.embedded import embedded

Status = Literal["adopted", "would adopt", "already adopted", "skipped", "failed"]


@dataclass(frozen=True)
class Imported:
    """What import did (or would do) with one table step."""

    address: str
    table: str  # "database NAME: schema.table"
    status: Status
    detail: str
    changes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "table": self.table,
            "status": self.status,
            "detail": self.detail,
            "changes": self.changes,
        }


@dataclass(frozen=True)
class ImportOptions:
    targets: Sequence[str] = ()
    dry_run: bool = False
    lock_timeout: float = 0.0


def run_import(
    loaded: LoadedConfig,
    *,
    environ: Mapping[str, str],
    databases: Databases,
    options: ImportOptions = ImportOptions(),
    connection: Connection | None = None,
) -> list[Imported]:
    """One `Imported` per selected table step of the config's database targets."""
    config = loaded.config
    steps = [
        s
        for s in plan(config, State(), targets=options.targets).steps
        if config.target(s.target).database is not None
    ]
    tables = [s for s in steps if s.action != "list"]
    out = [_listed(s) for s in steps if s.action == "list"]
    if not tables:
        return out
    credentials = resolve_used(loaded, sorted({s.profile for s in tables}), environ=environ)
    with connect(config, credentials, connection=connection or Connection(demo=embedded)) as dap:
        adopter = _Adopter(config, databases, dap, options)
        out += [adopter.one(step) for step in tables]
    return out


def _listed(step: Step) -> Imported:
    return Imported(
        step.address, "-", "skipped", 'tables = "all": list the tables to import by name'
    )


class _Adopter:
    """Adopts one table step at a time; reads each database's sync rows once."""

    def __init__(
        self,
        config: Config,
        databases: Databases,
        dap: dict[str, DapClient],
        options: ImportOptions,
    ) -> None:
        self._config, self._databases, self._dap, self._options = config, databases, dap, options
        self._syncs: dict[str, dict[TableName, DapSync]] = {}

    def one(self, step: Step) -> Imported:
        target = self._config.target(step.target)
        assert target.database is not None
        table = db_names(target, step.profile, step.table)
        where = f"database {target.database}: {'.'.join(table)}"
        database = self._databases.get(target.database)
        if not isinstance(database, Adopts):
            why = "import is for PostgreSQL and MySQL databases `dap` keeps; this engine keeps none"
            return Imported(step.address, where, "skipped", why)
        found = self._syncs_of(target.database, database).get(table)
        outcome = _not_adoptable(database, table, found)
        if outcome is not None:
            return Imported(step.address, where, *outcome)
        assert found is not None
        try:
            return self._adopt(step, where, database, found)
        except DapctlError as exc:
            return Imported(step.address, where, "failed", exc.message)

    def _syncs_of(self, name: str, database: Adopts) -> dict[TableName, DapSync]:
        if name not in self._syncs:
            self._syncs[name] = database.dap_syncs()
        return self._syncs[name]

    def _adopt(self, step: Step, where: str, database: Any, found: DapSync) -> Imported:
        server = self._dap[step.profile].get_schema(step.namespace, step.table)
        behind = found.schema_version < server.version
        dap_schema = found.dap_schema if behind else server.schema_
        record = _record(found, server.version, behind)
        since = f"since {found.since:%Y-%m-%d %H:%M:%S}Z"
        detail = record.reload or f"the next apply takes an incremental {since}"
        if self._options.dry_run:
            changes = database.adoption_changes(found.table, dap_schema)
            return Imported(step.address, where, "would adopt", detail, changes)
        name = ".".join(found.table)
        with database.lock(name, timeout=self._options.lock_timeout):
            if found.table in database.read_steps():  # an apply got there first
                return Imported(step.address, where, "already adopted", "dapctl keeps it")
            changes = database.adopt(
                found.table, dap_schema, address=step.address, record=record.model_dump_json()
            )
        return Imported(step.address, where, "adopted", detail, changes)


def _not_adoptable(
    database: Database, table: TableName, found: DapSync | None
) -> tuple[Status, str] | None:
    if table in database.read_steps():
        return "already adopted", "dapctl keeps its step row; nothing to change"
    if found is not None and table in database.tables():
        return None
    if table in database.tables():
        return "skipped", "no row in dap's sync table: `dap` never synced it (apply snapshots it)"
    return "skipped", "no such table in the database (the next apply snapshots it)"


def _record(found: DapSync, server_version: int, behind: bool) -> StepState:
    """The step row a completed snapshot at dap's last sync would have written; behind the
    server's schema: no watermark, and the reason the next plan snapshots."""
    if behind:
        return StepState(
            schema_version=found.schema_version,
            reload=f"adopted from dap at schema version {found.schema_version}, behind the "
            f"server's {server_version}: a snapshot brings it up to date",
        )
    return StepState(
        watermark=found.since,
        kind="snapshot",
        schema_version=found.schema_version,
        completed_at=datetime.now(UTC),
    )

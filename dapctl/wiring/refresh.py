"""``plan --refresh``: what each database table's columns would go through on the next apply.

For every planned step of a target with a database, the table's current DAP schema is
fetched (one schema request per table, within the profile's rate limit) and compared with
the table as the database has it: ``create table``, ``add column``, a type changed in place
(with dependent views re-created), or a change only a fresh snapshot can make. Nothing is
changed; the plan itself stays pure and the result is shown beside it, Terraform's
``-refresh`` way. Reading the state of database targets also goes through here: their
records live in their databases (``dapctl.outputs.records``).
"""

from __future__ import annotations

from collections.abc import Mapping

from dapctl.api.session import Connection, connect
from dapctl.config import db_names
from dapctl.credentials import resolve_used
from dapctl.loading import LoadedConfig
from dapctl.outputs.tables import Databases
from dapctl.plan import Plan
from dapctl.wiring.embedded import embedded

SchemaChanges = dict[str, list[str]]  # address -> one line per pending change


def schema_changes(
    loaded: LoadedConfig, plan: Plan, *, environ: Mapping[str, str], databases: Databases
) -> SchemaChanges:
    """The pending schema changes of every planned step that keeps a database table."""
    config = loaded.config
    steps = [
        s
        for s in plan.steps
        if s.action != "list" and s.error is None and config.target(s.target).database is not None
    ]
    if not steps:
        return {}
    credentials = resolve_used(loaded, sorted({s.profile for s in steps}), environ=environ)
    changes: SchemaChanges = {}
    with connect(config, credentials, connection=Connection(demo=embedded)) as clients:
        for step in steps:
            target = config.target(step.target)
            assert target.database is not None
            schema, table = db_names(target, step.profile, step.table)
            dap_schema = clients[step.profile].get_schema(step.namespace, step.table).schema_
            changes[step.address] = databases.get(target.database).pending_schema_changes(
                schema=schema, table=table, dap_schema=dap_schema
            )
    return changes

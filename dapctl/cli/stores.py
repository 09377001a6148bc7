"""What the commands open: the state store and the config's databases, and the state read
through them as apply sees it.

A database target keeps its own record of each of its steps, committed with the data, and
that record counts over the state's copy: ``read_state`` overlays the databases' records on
the store's (a database that cannot be read keeps the state's copies and is named, with
``warn_unreachable``), and ``mirror_records`` writes what ``state rm`` and ``state mv``
changed back to those databases.
"""

from __future__ import annotations

import logging

from dapctl.cli.context import Context
from dapctl.loading import LoadedConfig
from dapctl.outputs.records import DatabaseRecords, used_databases
from dapctl.outputs.tables import Databases
from dapctl.state import Overlay, State, StateStore, StepState, open_store

log = logging.getLogger("dapctl")


def state_store(loaded: LoadedConfig, ctx: Context) -> StateStore:
    return open_store(loaded, environ=ctx.environ, importer=ctx.importer)


def open_databases(loaded: LoadedConfig, ctx: Context) -> Databases:
    return Databases(loaded.config, base_dir=loaded.base_dir, environ=ctx.environ)


def read_state(loaded: LoadedConfig, ctx: Context, store: StateStore) -> Overlay | None:
    """The state as apply would see it: database targets' records from their databases (a
    database that cannot be read keeps the state's copies, and is named in ``unreachable``)."""
    state = store.read()
    if not used_databases(loaded.config):
        return Overlay(state) if state is not None else None
    with open_databases(loaded, ctx) as databases:
        overlay = DatabaseRecords(loaded.config, databases).overlay(state or State())
    warn_unreachable(overlay)
    return overlay


def warn_unreachable(overlay: Overlay) -> None:
    for name, why in sorted(overlay.unreachable.items()):
        log.error("database %s could not be read, its targets' steps cannot run: %s", name, why)


def mirror_records(loaded: LoadedConfig, ctx: Context, records: dict[str, StepState]) -> None:
    """Write step records to the databases of the targets that keep them there (a database
    keeps its own record of each of its steps, committed with the data)."""
    if not used_databases(loaded.config):
        return
    with open_databases(loaded, ctx) as databases:
        homes = DatabaseRecords(loaded.config, databases)
        for address, step in records.items():
            homes.mirror(address, step)

"""State: what dapctl has exported so far, and the backends that keep it.

Module map: ``model`` (the versioned ``State``, ``StepState`` and its lifecycle, parsing and
migration), ``store`` (the ``StateStore`` protocol, compare-and-swap, ``StateKeeper``,
``open_store``), ``backends`` (the registry: scheme -> backend, extra, capabilities; the
``store_at`` factory), ``local`` (a JSON file with an ``flock``), ``memory`` (in-process,
for tests), ``postgres`` (rows in a PostgreSQL database, its layout in ``pg_schema``, its
per-step leases for many workers in ``pg_leases``, its lock in ``pg_lock``, the rate-limit
budgets workers share in ``pg_sends``), ``leases`` (the protocol those leases
keep; ``memory_leases`` in memory), ``filelock`` (the local lock file), ``ops`` (find,
forget, describe), ``migrate`` (copy a state to another backend), ``objects`` (one object
in a bucket of any store of ``dapctl/objects/``, its lock object in ``object_lock``), ``records``
(the ``StepRecords`` seam: homes of step records that count over the store's, such as a table
target's database), ``documents`` (the ``Documents`` seam: named documents kept beside the
state, such as the run history).
"""

from __future__ import annotations

from dapctl.state.local import LocalStateStore
from dapctl.state.memory import MemoryBackend, MemoryStateStore
from dapctl.state.model import (
    STATE_VERSION,
    Completed,
    Kind,
    PendingJob,
    State,
    StepState,
    parse_state,
)
from dapctl.state.records import NoRecords, Overlay, StepRecords
from dapctl.state.store import (
    LockHolder,
    SerialGuard,
    SharesBudgets,
    StateKeeper,
    StateStore,
    open_store,
    store_at,
)

__all__ = [
    "STATE_VERSION",
    "Completed",
    "Kind",
    "LocalStateStore",
    "LockHolder",
    "MemoryBackend",
    "MemoryStateStore",
    "NoRecords",
    "Overlay",
    "PendingJob",
    "SerialGuard",
    "SharesBudgets",
    "State",
    "StateKeeper",
    "StateStore",
    "StepRecords",
    "StepState",
    "open_store",
    "parse_state",
    "store_at",
]

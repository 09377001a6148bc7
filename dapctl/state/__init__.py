"""State: what dapctl has exported so far, and the backends that keep it.

Module map: ``model`` (the versioned ``State``, ``StepState`` and its lifecycle, parsing and
migration), ``store`` (the ``StateStore`` protocol, compare-and-swap, ``StateKeeper``, the
``open_store`` factory), ``local`` (a JSON file with an ``flock``), ``memory`` (in-process,
for tests), ``filelock`` (the local lock file), ``ops`` (find, forget, describe).
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
from dapctl.state.store import LockHolder, SerialGuard, StateKeeper, StateStore, open_store

__all__ = [
    "STATE_VERSION",
    "Completed",
    "Kind",
    "LocalStateStore",
    "LockHolder",
    "MemoryBackend",
    "MemoryStateStore",
    "PendingJob",
    "SerialGuard",
    "State",
    "StateKeeper",
    "StateStore",
    "StepState",
    "open_store",
    "parse_state",
]

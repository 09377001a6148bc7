"""Operating on the state by hand: find a step, forget some, describe the state as JSON.

``forget`` takes the state's lock (as an apply does) and removes the named addresses in one
write, watermark and pending job alike, so the next apply takes a new snapshot of those
tables; it changes nothing unless every address is in the state. Everything here works on
any ``StateStore``. Nothing in the state is secret; renderers show all of it.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from dapctl.errors import ConfigError, StateError
from dapctl.state.model import State, StepState
from dapctl.state.store import StateStore


def find_step(state: State | None, address: str, *, where: str) -> StepState:
    """The step at ``address``, or an error with the nearest addresses the state has."""
    steps = state.steps if state is not None else {}
    if address in steps:
        return steps[address]
    if state is None:
        raise StateError(f"{where}: no state yet (no apply has run)")
    close = difflib.get_close_matches(address, list(steps), n=3)
    hint = f"did you mean {' or '.join(close)}?" if close else "`dapctl state list` lists them"
    raise ConfigError(f"{address}: not in the state {where}", hint=hint)


def forget(store: StateStore, addresses: Sequence[str], *, lock_timeout: float) -> State:
    """Remove ``addresses`` from the state under its lock; return the state as it was."""
    with store.lock(timeout=lock_timeout, command="dapctl state rm"):
        state = store.read()
        for address in addresses:
            find_step(state, address, where=store.location)
        assert state is not None  # find_step raised otherwise
        new = state
        for address in dict.fromkeys(addresses):
            new = new.with_step(address, None)
        store.write(new.model_copy(update={"serial": state.serial + 1}))
        return state


def state_json(state: State | None, where: str) -> dict[str, Any]:
    if state is None:
        return {"path": where, "exists": False, "steps": {}}
    return {
        "path": where,
        "exists": True,
        "version": state.version,
        "serial": state.serial,
        "lineage": state.lineage,
        "steps": {a: s.model_dump(mode="json") for a, s in sorted(state.steps.items())},
    }

"""Operating on the state by hand: find steps, forget or move some, describe the state as JSON.

Addresses may be globs (``fnmatch``: ``univ_a/*``, ``*/core/canvas.u*``); each must pick at
least one address, or nothing changes. ``forget`` takes the state's lock (as an apply does)
and removes the picked addresses in one write, watermark and pending job alike, so the next
apply takes a new snapshot of those tables. ``move`` renames addresses in one write, after a
target or profile was renamed, so the next apply continues from their watermarks: with a
glob, each ``*`` of the new address takes what the same ``*`` of the old one matched (within
one segment). Everything here works on any ``StateStore``. Nothing in the state is secret;
renderers show all of it.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
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


def is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def select(state: State | None, patterns: Sequence[str], *, where: str) -> list[str]:
    """The addresses ``patterns`` pick, in state order; an error for a pattern picking none."""
    picked: dict[str, None] = {}
    for pattern in patterns:
        if not is_glob(pattern):
            find_step(state, pattern, where=where)
            picked[pattern] = None
            continue
        hits = [a for a in (state.steps if state else {}) if fnmatch.fnmatchcase(a, pattern)]
        if not hits:
            raise ConfigError(
                f"{pattern}: matches no address in the state {where}",
                hint="`dapctl state list` lists them",
            )
        picked.update(dict.fromkeys(hits))
    return list(picked)


def forget(store: StateStore, patterns: Sequence[str], *, lock_timeout: float) -> list[str]:
    """Remove the addresses ``patterns`` pick, under the state's lock; return them."""
    with store.lock(timeout=lock_timeout, command="dapctl state rm"):
        state = store.read()
        removed = select(state, patterns, where=store.location)
        assert state is not None  # select raised otherwise
        new = state
        for address in removed:
            new = new.with_step(address, None)
        store.write(new.model_copy(update={"serial": state.serial + 1}))
        return removed


def renames(state: State | None, old: str, new: str, *, where: str) -> list[tuple[str, str]]:
    """The (old, new) address pairs ``state mv OLD NEW`` makes; refused unless all are safe."""
    if not is_glob(old):
        find_step(state, old, where=where)
        pairs = [(old, new)]
    else:
        pairs = _glob_renames(state, old, new, where=where)
    steps = state.steps if state else {}
    moved = {a for a, _ in pairs}
    for source, target in pairs:
        if not re.fullmatch(r"[^/]+/[^/]+/[^/.]+\.[^/]+", target) or is_glob(target):
            raise ConfigError(
                f"{target}: not an address",
                hint="addresses look like profile/target/namespace.table",
            )
        if target in steps and target not in moved:
            raise ConfigError(
                f"{source} -> {target}: {target} is already in the state {where}",
                hint="`dapctl state rm` it first if its watermark is not wanted",
            )
    targets = [t for _, t in pairs]
    if len(set(targets)) != len(targets):
        raise ConfigError(f"{old} -> {new}: two addresses would get the same new address")
    return pairs


def _glob_renames(state: State | None, old: str, new: str, *, where: str) -> list[tuple[str, str]]:
    if any(c in old for c in "?[") or old.count("*") != new.count("*"):
        raise ConfigError(
            f"state mv {old} {new}: with a glob, use * only, as many in the new address as "
            "in the old (each * of the new address takes what the same * matched)",
        )
    pattern = re.compile("([^/]*)".join(re.escape(part) for part in old.split("*")))
    pairs = []
    for address in state.steps if state else {}:
        match = pattern.fullmatch(address)
        if match:
            pieces = new.split("*")
            target = pieces[0] + "".join(
                g + piece for g, piece in zip(match.groups(), pieces[1:], strict=True)
            )
            pairs.append((address, target))
    if not pairs:
        raise ConfigError(
            f"{old}: matches no address in the state {where}",
            hint="`dapctl state list` lists them",
        )
    return pairs


def move(store: StateStore, old: str, new: str, *, lock_timeout: float) -> list[tuple[str, str]]:
    """Rename the addresses ``old`` picks to ``new`` in one write, under the state's lock."""
    with store.lock(timeout=lock_timeout, command="dapctl state mv"):
        state = store.read()
        pairs = renames(state, old, new, where=store.location)
        assert state is not None  # renames raised otherwise
        steps = dict(state.steps)
        moved = {target: steps.pop(source) for source, target in pairs}
        steps.update(moved)
        update = {"serial": state.serial + 1, "steps": steps}
        store.write(state.model_copy(update=update))
        return pairs


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

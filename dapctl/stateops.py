"""Operating on the state by hand: list and show its steps, forget some, remove a stale lock.

``forget`` takes the state's lock (as an apply does) and removes the named addresses in one
atomic write, watermark and pending job alike, so the next apply takes a new snapshot of
those tables; it changes nothing unless every address is in the state. ``unlock`` removes a
lock file and returns the record of whoever held it. While a live process still holds the
``flock`` it refuses unless forced: removing a running apply's lock would let a second apply
write the same state. The check holds the lock while it unlinks the file, so no apply can
take it in between. Nothing in the state is secret; renderers show all of it.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dapctl.errors import ConfigError, LockError, StateError
from dapctl.locking import describe_holder, force_unlock, read_holder
from dapctl.plan import format_time
from dapctl.results import format_table, human_bytes
from dapctl.state import LocalStateStore, State, StepState


def find_step(state: State | None, address: str, *, path: Path) -> StepState:
    """The step at ``address``, or an error with the nearest addresses the state has."""
    steps = state.steps if state is not None else {}
    if address in steps:
        return steps[address]
    if state is None:
        raise StateError(f"{path}: no state file yet (no apply has run)")
    close = difflib.get_close_matches(address, list(steps), n=3)
    hint = f"did you mean {' or '.join(close)}?" if close else "`dapctl state list` lists them"
    raise ConfigError(f"{address}: not in the state {path}", hint=hint)


def forget(store: LocalStateStore, addresses: Sequence[str], *, lock_timeout: float) -> State:
    """Remove ``addresses`` from the state under its lock; return the state as it was."""
    with store.lock(timeout=lock_timeout, command="dapctl state rm"):
        state = store.read()
        for address in addresses:
            find_step(state, address, path=store.path)
        assert state is not None  # find_step raised otherwise
        new = state
        for address in dict.fromkeys(addresses):
            new = new.with_step(address, None)
        store.write(new.model_copy(update={"serial": state.serial + 1}))
        return state


def unlock(lock_path: Path, *, force: bool) -> dict[str, object] | None:
    """Remove the lock file; return its holder's record (``None``: there was no lock)."""
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not force:
                raise LockError(
                    f"{lock_path}: held by {describe_holder(read_holder(lock_path))}, "
                    "which is still running",
                    hint="let it finish or stop it; --force removes the lock anyway "
                    "(two applies could then write the same state)",
                ) from None
        return force_unlock(lock_path)
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def state_json(state: State | None, path: Path) -> dict[str, Any]:
    if state is None:
        return {"path": str(path), "exists": False, "steps": {}}
    return {
        "path": str(path),
        "exists": True,
        "version": state.version,
        "serial": state.serial,
        "lineage": state.lineage,
        "steps": {a: s.model_dump(mode="json") for a, s in sorted(state.steps.items())},
    }


def render_list(state: State | None, path: Path) -> str:
    if state is None:
        return f"{path}: no state yet; the first apply creates it."
    head = (
        f"{path}: {len(state.steps)} address{'' if len(state.steps) == 1 else 'es'} "
        f"(serial {state.serial}, lineage {state.lineage})"
    )
    if not state.steps:
        return head
    rows = [
        (
            address,
            step.kind or "-",
            format_time(step.watermark),
            f"{step.records:,}",
            human_bytes(step.bytes),
            f"{step.pending.kind} job {step.pending.job_id}" if step.pending else "-",
        )
        for address, step in sorted(state.steps.items())
    ]
    table = format_table(
        ("ADDRESS", "KIND", "WATERMARK", "RECORDS", "BYTES", "PENDING"), rows, right=(3, 4)
    )
    return f"{head}\n\n{table}"


def render_step(address: str, step: StepState) -> str:
    pending = step.pending
    lines = [
        ("address", address),
        ("watermark", format_time(step.watermark)),
        ("kind", step.kind or "-"),
        ("schema version", str(step.schema_version or "-")),
        ("job", step.job_id or "-"),
        ("completed at", format_time(step.completed_at)),
        ("records", f"{step.records:,}"),
        ("bytes", f"{step.bytes:,} ({human_bytes(step.bytes)})"),
        ("sha256", step.sha256 or "-"),
        ("files", "\n".join(step.files) or "-"),
        ("pending", f"{pending.kind} job {pending.job_id}" if pending else "-"),
    ]
    if pending is not None:
        lines.append(("pending since", format_time(pending.started_at)))
        lines.append(("pending output", pending.output or "-"))
    width = max(len(label) for label, _ in lines)
    pad = " " * (width + 2)
    return "\n".join(
        f"{label:<{width}}  {value.replace(chr(10), chr(10) + pad)}" for label, value in lines
    )

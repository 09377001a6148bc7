"""What a worker writes and publishes for a step, only while it holds the step's lease.

``LeasedKeeper`` is the ``StateKeeper`` of a worker: a step's change goes to that step's
record alone, through the fenced ``write`` its lease gives (nothing lands once the lease is
lost), then to the step's database, if its target has one; the whole state it keeps is
this worker's view. ``FencedDestination`` wraps a target's destination so that a load's
``commit`` and the removal of an output left unrecorded each ``check`` the step's lease just
before they happen: a worker that froze past its lease publishes nothing and removes
nothing another worker may be writing. A check and the commit after it are two moves, so
a worker frozen in the instant between them could still publish: the job it was
collecting, under that job's name, which the worker that took the step over resumed and
wrote as well; the step's record, which only the lease's holder writes, stays that
worker's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from dapctl.events import serving_step
from dapctl.outputs.destination import Destination, Landed, Load, PartMode, Settle
from dapctl.outputs.merge import PartCounter
from dapctl.state import Kind, State, StateKeeper, StateStore, StepState

if TYPE_CHECKING:
    from dapctl.api.wire import Format, Job, Mode
    from dapctl.plan import Step


class LeasedKeeper(StateKeeper):
    """``StateKeeper`` for a worker: each change goes to its step's row alone, through the
    lease's fenced write; the whole state is this worker's view of it."""

    def __init__(
        self,
        store: StateStore,
        state: State,
        *,
        write: Callable[[str, StepState], None],
        mirror: Callable[[str, StepState], None] | None = None,
    ) -> None:
        super().__init__(store, state, mirror=mirror)
        self._write = write

    def refresh(self, address: str, step: StepState) -> None:
        """The step as its lease found it stored (another worker may have changed it)."""
        with self._lock:
            self._state = self._state.with_step(address, step)

    def update(self, address: str, change: Callable[[StepState], StepState]) -> StepState:
        with self._lock:
            step = change(self._state.step(address))
            self._write(address, step)
            if self._mirror is not None:
                self._mirror(address, step)
            self._state = self._state.with_step(address, step)
            return step


class FencedDestination:
    """A destination whose publications and removals first check the step's lease."""

    def __init__(self, inner: Destination, check: Callable[[str], None]) -> None:
        self._inner = inner
        self._check = check

    def begin(self, step: Step, job: Job, *, kind: Kind, watermark: datetime) -> Load:
        load = self._inner.begin(step, job, kind=kind, watermark=watermark)
        return FencedLoad(load, lambda: self._check(step.address))

    def exists(self, location: str) -> bool:
        return self._inner.exists(location)

    def wire_format(self) -> tuple[Format, Mode | None]:
        return self._inner.wire_format()

    def check(self) -> None:
        self._inner.check()

    def discard(self, location: str) -> None:
        address = serving_step()
        if address is not None:
            self._check(address)  # another worker may be writing it now
        self._inner.discard(location)


class FencedLoad:
    """A load whose commit first checks the step's lease: a worker that lost it publishes
    nothing (the collector then aborts the load)."""

    def __init__(self, inner: Load, check: Callable[[], None]) -> None:
        self._inner = inner
        self._check = check

    @property
    def location(self) -> str:
        return self._inner.location

    @property
    def part_mode(self) -> PartMode:
        return self._inner.part_mode

    def part_path(self, index: int) -> Path:
        return self._inner.part_path(index)

    def add_part(self, part: Path, counted: PartCounter | None) -> None:
        self._inner.add_part(part, counted)

    def commit(self, settle: Settle) -> Landed:
        self._check()
        return self._inner.commit(settle)

    def abort(self) -> None:
        self._inner.abort()

"""The ``StepRecords`` seam: homes of step records that count over the state store's.

A table target's record lives in its database, committed with the table
(``dapctl.outputs.records`` implements this for databases). Apply, plan, the workers and the
``state`` commands see the state only through a store and one ``StepRecords``: ``overlay``
puts the records those homes hold over the state that was read (and names the homes that
could not be read, whose steps cannot run), ``mirror`` keeps a home's copy of a step in step
with every change the keeper writes, ``reread`` takes one step as its home says (a worker's
fresh claim), and ``sweep`` clears what killed runs left there. ``NoRecords`` is the config
without such homes: the state alone counts.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Protocol

from dapctl.state.model import State, StepState


@dataclass(frozen=True)
class Overlay:
    """The state as apply must see it, and the homes (by name) that could not be read."""

    state: State
    unreachable: dict[str, str] = field(default_factory=dict)  # database -> why

    @property
    def recorded(self) -> State:
        """The state without the ``absent`` steps: what a state store may cache, and what
        ``state list`` shows (a table no database holds has nothing to show)."""
        steps = {a: s for a, s in self.state.steps.items() if s.absent is None}
        return self.state.model_copy(update={"steps": steps})


class StepRecords(Protocol):
    def overlay(self, state: State) -> Overlay:
        """``state`` with every step a home keeps as that home says."""
        ...

    def mirror(self, address: str, step: StepState) -> None:
        """Write ``step`` to its home too, if it has one."""
        ...

    def reread(self, address: str, step: StepState) -> StepState:
        """``step`` as its home says now (``step`` itself when it has none)."""
        ...

    def sweep(self, skip: Collection[str] = ()) -> list[str]:
        """Remove what killed runs left in the homes (but those in ``skip``); say what."""
        ...


class NoRecords:
    """No step has a home of its own: the state store's record is the one."""

    def overlay(self, state: State) -> Overlay:
        return Overlay(state)

    def mirror(self, address: str, step: StepState) -> None:
        pass

    def reread(self, address: str, step: StepState) -> StepState:
        return step

    def sweep(self, skip: Collection[str] = ()) -> list[str]:
        return []

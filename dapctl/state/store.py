"""The ``StateStore`` seam: where state lives, how it is locked, and how writes stay honest.

Apply, plan and the ``state`` commands use only this protocol, so a backend is one module:
``read`` (``None`` before the first apply), ``write`` (the whole state, atomically), ``lock``
(one writer at a time; the error names the holder), ``lock_info`` and ``force_unlock``.
Every write compares and swaps, as Terraform's state managers do: a store remembers the
``lineage`` and ``serial`` it last read or wrote, and refuses to write over a state that
changed since (``StateConflictError``: "the state changed since it was read") or to write a
state of another lineage. ``SerialGuard`` holds that rule once for every backend.

``open_store`` reads ``[settings] state`` (or the variable ``state_env`` names) and opens
it through the backend registry (``backends``): a local path, a ``postgresql://`` URL or a
bucket URL (``s3://``, ``gs://``, ``az://``); a URL scheme dapctl has no backend for is
refused with the list of those it has, and a backend whose package is missing names the
extra that installs it. ``StateKeeper`` is one apply's view: many threads change steps,
and every change is written at once.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable, Hashable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from dapctl.errors import StateConflictError
from dapctl.secret_sources import resolve_source
from dapctl.state import backends
from dapctl.state.model import State, StepState

if TYPE_CHECKING:
    from dapctl.api.ratelimit import SendLedger
    from dapctl.loading import LoadedConfig

LockHolder = dict[str, object]


class StateStore(Protocol):
    """Where state lives. Apply uses only this interface."""

    @property
    def location(self) -> str:
        """Where the state is, for messages (a path or a URL without credentials)."""
        ...

    def read(self) -> State | None: ...

    def write(self, state: State) -> None:
        """Replace the state whole; ``StateConflictError`` if it changed since it was read."""
        ...

    def lock(self, *, timeout: float, command: str) -> AbstractContextManager[None]: ...

    def lock_info(self) -> LockHolder | None:
        """Who holds the lock (``{}`` when nobody recorded it), or ``None``: not locked."""
        ...

    def force_unlock(self, *, force: bool) -> LockHolder | None:
        """Remove the lock; refuse while its holder still runs unless ``force``."""
        ...


@runtime_checkable
class SharesBudgets(Protocol):
    """A ``StateStore`` every process can reach (PostgreSQL): it keeps the rate-limit
    budgets of all of them, so workers on one credential share one."""

    def send_ledger(self) -> AbstractContextManager[SendLedger]:
        """The budgets, open for the length of the block."""
        ...


@dataclass
class SerialGuard:
    """Compare-and-swap bookkeeping: what this store last saw of the stored state.

    ``token`` is whatever the backend can compare cheaply to tell "unchanged since I saw it"
    (a file's identity, a row version); the lineage and serial are for the rule and the
    message.
    """

    location: str
    lineage: str | None = None
    serial: int | None = None
    token: Hashable = None

    def saw(self, state: State | None, token: Hashable) -> None:
        self.lineage = state.lineage if state else None
        self.serial = state.serial if state else None
        self.token = token

    def check(
        self, new: State, current_token: Hashable, current: Callable[[], State | None]
    ) -> None:
        """Raise unless ``new`` may replace what the backend holds now (``current_token``)."""
        if self.lineage is not None and new.lineage != self.lineage:
            raise StateConflictError(
                f"{self.location}: refusing to write a state of lineage {new.lineage} over "
                f"one of lineage {self.lineage}: they are different states",
                hint="each config keeps its own state; point settings.state at the right one",
            )
        if current_token != self.token:
            now = current()
            seen = f"serial {self.serial}" if self.serial is not None else "no state"
            found = f"serial {now.serial}" if now is not None else "no state"
            raise StateConflictError(
                f"{self.location}: the state changed since it was read ({seen} was read, "
                f"{found} is there now); another dapctl wrote it",
                hint="nothing was written; run the command again to work from the new state",
            )
        if self.serial is not None and new.serial <= self.serial:
            raise StateConflictError(
                f"{self.location}: serial {new.serial} does not follow serial {self.serial}"
            )


class StateKeeper:
    """The state of one apply, changed by many threads and written after every change."""

    def __init__(
        self,
        store: StateStore,
        state: State,
        *,
        mirror: Callable[[str, StepState], None] | None = None,
    ) -> None:
        self._store = store
        self._state = state
        self._lock = threading.Lock()
        self._mirror = mirror  # another home of some steps' records (a database)

    @property
    def state(self) -> State:
        with self._lock:
            return self._state

    def step(self, address: str) -> StepState:
        return self.state.step(address)

    def update(self, address: str, change: Callable[[StepState], StepState]) -> StepState:
        """Replace one step's state with ``change(old)``, write the whole state at once, and
        return the new step."""
        with self._lock:
            step = change(self._state.step(address))
            if self._mirror is not None:
                self._mirror(address, step)
            new = self._state.with_step(address, step)
            self._store.write(new)
            self._state = new
            return step


def open_store(
    loaded: LoadedConfig,
    *,
    environ: Mapping[str, str] | None = None,
    importer: Callable[[str], object] = importlib.import_module,
) -> StateStore:
    """The state store ``[settings] state`` names (or the variable ``state_env`` names)."""
    settings = loaded.config.settings
    from_env = settings.state_env is not None
    resolved = resolve_source(
        "state",
        value=None if from_env else settings.state,
        env=settings.state_env,
        where=lambda key: loaded.locate(("settings", key)),
        environ=os.environ if environ is None else environ,
        base_dir=loaded.base_dir,
    )
    assert resolved is not None  # state has a default
    where = loaded.locate(("settings", "state_env" if from_env else "state"))
    return store_at(resolved[0], loaded=loaded, where=where, importer=importer)


def store_at(
    value: str,
    *,
    loaded: LoadedConfig,
    where: str,
    importer: Callable[[str], object] = importlib.import_module,
) -> StateStore:
    """The store at ``value``, a backend's URL or a path relative to the config's folder;
    ``where`` names the setting (or flag) it came from, for messages (``backends``)."""
    return backends.store_at(value, loaded=loaded, where=where, importer=importer)

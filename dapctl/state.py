"""The state file: what dapctl has exported so far, per step address.

State is versioned JSON: ``version`` (the format), ``serial`` (bumped on every write),
``lineage`` (a UUID fixed when the state is created, so two unrelated states are never
confused) and ``steps``, keyed by address ``profile/target/namespace.table``. Each step keeps
its watermark (the ``at`` of a snapshot or the ``until`` of an incremental, the next
incremental's ``since``), the last completed job and its files, and a ``pending`` job started
but not yet collected, so an interrupted apply resumes it instead of starting another.

Storage sits behind ``StateStore`` (read / write / lock) so a shared backend can replace the
local file without apply noticing. ``LocalStateStore`` writes atomically (temp file in the
same folder, fsync, ``os.replace``), keeps the previous state as ``<file>.backup``, creates
files 0600 in folders created 0700, and refuses a state whose format it does not know.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Literal, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from dapctl.errors import StateError
from dapctl.files import (
    atomic_write_bytes,
    ensure_private_dir,
    keep_copy,
    sweep_stale_temp_files,
)
from dapctl.locking import FileLock

log = logging.getLogger("dapctl.state")

STATE_VERSION = 1
Kind = Literal["snapshot", "incremental"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PendingJob(_Model):
    """A job started and recorded before polling, so a killed apply can collect it later."""

    job_id: str
    kind: Kind
    since: AwareDatetime | None = None
    started_at: AwareDatetime
    fallback: bool = Field(False, description="A snapshot taken because the window was gone.")
    output: str | None = Field(
        None, description="Where its output is being written: a file there is not recorded yet."
    )


class StepState(_Model):
    """Everything dapctl remembers about one step address."""

    watermark: AwareDatetime | None = None
    kind: Kind | None = Field(None, description="The last completed job's kind.")
    schema_version: int | None = None
    job_id: str | None = None
    files: tuple[str, ...] = ()
    bytes: int = 0
    records: int = 0
    sha256: str | None = None
    completed_at: AwareDatetime | None = None
    pending: PendingJob | None = None


class State(_Model):
    version: int = STATE_VERSION
    serial: int = 0
    lineage: str = Field(default_factory=lambda: str(uuid.uuid4()))
    steps: dict[str, StepState] = Field(default_factory=dict)

    def step(self, address: str) -> StepState:
        return self.steps.get(address, StepState())

    def with_step(self, address: str, step: StepState | None) -> State:
        """A new state with one step replaced (or forgotten, with None) and serial bumped."""
        steps = dict(self.steps)
        if step is None:
            steps.pop(address, None)
        else:
            steps[address] = step
        return self.model_copy(update={"steps": steps, "serial": self.serial + 1})


class StateStore(Protocol):
    """Where state lives. Apply uses only this interface."""

    def read(self) -> State | None: ...

    def write(self, state: State) -> None: ...

    def lock(self, *, timeout: float, command: str) -> AbstractContextManager[None]: ...


class StateKeeper:
    """The state of one apply, changed by many threads and written after every change."""

    def __init__(self, store: StateStore, state: State) -> None:
        self._store = store
        self._state = state
        self._lock = threading.Lock()

    @property
    def state(self) -> State:
        with self._lock:
            return self._state

    def step(self, address: str) -> StepState:
        return self.state.step(address)

    def update(self, address: str, change: Callable[[StepState], StepState]) -> None:
        """Replace one step's state with ``change(old)`` and write the whole state at once."""
        with self._lock:
            new = self._state.with_step(address, change(self._state.step(address)))
            self._store.write(new)
            self._state = new


def parse_state(data: bytes, *, source: str) -> State:
    """Parse state bytes; ``StateError`` names the file and what is wrong with it."""
    try:
        raw = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StateError(
            f"{source}: not valid JSON ({exc})",
            hint=f"restore {source}.backup, the previous state dapctl keeps beside it",
        ) from None
    version = raw.get("version") if isinstance(raw, dict) else None
    if version != STATE_VERSION:
        raise StateError(
            f"{source}: state format version {version!r} is not one this dapctl reads "
            f"(it reads version {STATE_VERSION})",
            hint="use the dapctl version that wrote it",
        )
    try:
        return State.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise StateError(f"{source}: invalid state at {where}: {first['msg']}") from None


class LocalStateStore:
    """State in a local JSON file, with a backup of the previous version and a lock file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.backup_path = path.with_name(path.name + ".backup")
        self.lock_path = path.with_name(path.name + ".lock")

    def read(self) -> State | None:
        for stale in sweep_stale_temp_files(self.path.parent):
            log.info("removed %s, left by a dapctl that was killed", stale)
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"{self.path}: cannot read the state file: {exc.strerror}") from None
        return parse_state(data, source=str(self.path))

    def write(self, state: State) -> None:
        data = state.model_dump_json(indent=2).encode() + b"\n"
        try:
            ensure_private_dir(self.path.parent)
            # Written after every table: the backup is a link, not a re-read of a large state.
            keep_copy(self.path, self.backup_path)
            atomic_write_bytes(self.path, data)
        except OSError as exc:
            raise StateError(f"{self.path}: cannot write the state file: {exc.strerror}") from None

    def lock(self, *, timeout: float, command: str) -> AbstractContextManager[None]:
        return FileLock(self.lock_path, timeout=timeout, command=command)

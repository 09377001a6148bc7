"""State in memory: the second ``StateStore``, for tests and for embedding dapctl.

A ``MemoryBackend`` is the shared place (what a file or a database is to the other
backends); any number of ``MemoryStateStore``s may open it, each with its own
compare-and-swap view, so the contract tests can race two writers exactly as two processes
race on a file. It keeps the serialised bytes, not the object, so what is read back went
through the same parser as every other backend's state.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dapctl.errors import LockError, StateConflictError
from dapctl.state.documents import MemoryDocuments
from dapctl.state.filelock import describe_holder
from dapctl.state.model import State, parse_state
from dapctl.state.store import LockHolder, SerialGuard
from dapctl.text import format_time


@dataclass
class MemoryBackend:
    data: bytes | None = None
    version: int = 0  # bumped on every write: the compare-and-swap token
    holder: LockHolder | None = None
    documents: dict[str, dict[str, bytes]] = field(default_factory=dict)
    mutex: threading.Lock = field(default_factory=threading.Lock)
    lock: threading.Lock = field(default_factory=threading.Lock)


class MemoryStateStore:
    def __init__(self, backend: MemoryBackend | None = None, *, name: str = "memory") -> None:
        self.backend = backend or MemoryBackend()
        self._guard = SerialGuard(f"memory://{name}")

    @property
    def location(self) -> str:
        return self._guard.location

    def documents(self, kind: str) -> MemoryDocuments:
        shelf = self.backend.documents.setdefault(kind, {})
        return MemoryDocuments(shelf, f"{self.location} ({kind})")

    def read(self) -> State | None:
        with self.backend.mutex:
            state, version = self._parse(), self.backend.version
        self._guard.saw(state, version)
        return state

    def _parse(self) -> State | None:
        data = self.backend.data
        return None if data is None else parse_state(data, source=self.location)

    def write(self, state: State) -> None:
        with self.backend.mutex:
            self._guard.check(state, self.backend.version, self._parse)
            self.backend.data = state.to_bytes()
            self.backend.version += 1
            self._guard.saw(state, self.backend.version)

    def discard(self) -> None:
        with self.backend.mutex:
            if self.backend.version != self._guard.token:
                raise StateConflictError(f"{self.location}: the state changed since it was read")
            self.backend.data = None
            self.backend.version += 1
            self._guard.saw(None, self.backend.version)

    def lock(self, *, timeout: float, command: str) -> AbstractContextManager[None]:
        return self._locked(timeout, command)

    @contextlib.contextmanager
    def _locked(self, timeout: float, command: str) -> Iterator[None]:
        lock = self.backend.lock
        acquired = lock.acquire(timeout=timeout) if timeout > 0 else lock.acquire(blocking=False)
        if not acquired:
            holder = describe_holder(self.backend.holder or {})
            raise LockError(f"{self.location}: the state is locked by {holder}")
        self.backend.holder = {
            "pid": os.getpid(),
            "thread": threading.get_ident(),
            "since": format_time(datetime.now(UTC), timespec="seconds"),
            "command": command,
        }
        try:
            yield
        finally:
            self.backend.holder = None
            self.backend.lock.release()

    def lock_info(self) -> LockHolder | None:
        return dict(self.backend.holder) if self.backend.holder is not None else None

    def force_unlock(self, *, force: bool) -> LockHolder | None:
        holder = self.lock_info()
        if holder is None:
            return None
        if not force:
            raise LockError(
                f"{self.location}: held by {describe_holder(holder)}, which is still running"
            )
        self.backend.holder = None
        with contextlib.suppress(RuntimeError):
            self.backend.lock.release()
        return holder


def open_memory(value: str, *, loaded: object, where: str) -> MemoryStateStore:
    """The backend registry's opener; no URL chooses it (tests make their own)."""
    return MemoryStateStore(MemoryBackend())

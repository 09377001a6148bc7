"""What a lake keeps beside its tables, under ``{root}/_dapctl/``: pending step records and
the per-table apply locks.

A table's loaded watermark lives in the table's own commits (`delta`). Before a job's data
is there, though, dapctl records the job it started (a pending record: ``write_step``), so a
killed run resumes polling the same job instead of starting another. A lake has no
transaction to put that in, so it is a small document, ``steps/<schema>.<table>.json``,
naming the table version it was written against. It is believed only while the table is
still at that version: once any commit lands (dapctl's own load, or anyone else's) the
commit's record is the truth again, so a pending record can never outlive the data it was
waiting for, nor contradict a newer load. Written atomically (a temporary file renamed).

Locks (`locked`) are ``flock``s on ``locks/<name>.lock``: the kernel drops one when its holder
dies, even on SIGKILL, and two loads of one table in one process exclude each other too
(each opens its own file description). In a bucket, a lock is the process's own (see
`BucketSide`). `tables` lists the ``{schema}/{table}`` folders that hold a Delta log.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from dapctl.errors import LockError
from dapctl.files import ensure_private_dir
from dapctl.objects import Objects

SIDE = "_dapctl"  # the folder beside the tables (never a schema: it starts with _)


@dataclass(frozen=True)
class Pending:
    """A table's pending step record and the table version it was written against (-1: no
    table yet)."""

    version: int
    address: str
    record: str


class Side(Protocol):
    """Where a lake keeps what is not in its tables: `SideFolder` or `BucketSide`."""

    def pending(self, table: tuple[str, str]) -> Pending | None: ...
    def all_pending(self) -> dict[tuple[str, str], Pending]: ...
    def write_pending(self, table: tuple[str, str], pending: Pending) -> None: ...
    def clear_pending(self, table: tuple[str, str]) -> None: ...
    def tables(self) -> set[tuple[str, str]]: ...
    def locked(
        self, name: str, *, timeout: float, sleep: Callable[[float], None]
    ) -> contextlib.AbstractContextManager[None]: ...


class SideFolder:
    """``{root}/_dapctl`` on a local disk (`BucketSide`: in a bucket)."""

    def __init__(self, root: Path) -> None:
        self.path = root / SIDE

    def pending(self, table: tuple[str, str]) -> Pending | None:
        try:
            return _parse(self._step_file(table).read_bytes())
        except FileNotFoundError:
            return None

    def all_pending(self) -> dict[tuple[str, str], Pending]:
        folder = self.path / "steps"
        found = {}
        for path in folder.glob("*.json") if folder.is_dir() else ():
            schema, _, table = path.name.removesuffix(".json").partition(".")
            if (got := self.pending((schema, table))) is not None:
                found[(schema, table)] = got
        return found

    def write_pending(self, table: tuple[str, str], pending: Pending) -> None:
        path = self._step_file(table)
        ensure_private_dir(path.parent)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(temporary, "wb") as out:
            out.write(_dump(pending))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)

    def clear_pending(self, table: tuple[str, str]) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._step_file(table).unlink()

    @contextlib.contextmanager
    def locked(
        self, name: str, *, timeout: float, sleep: Callable[[float], None]
    ) -> Iterator[None]:
        """Hold ``name``'s apply lock; `LockError` after ``timeout`` seconds."""
        path = self.path / "locks" / f"{name}.lock"
        ensure_private_dir(path.parent)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + max(timeout, 0)
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise LockError(
                            f"{name} in {self.path.parent} is being loaded by another apply; "
                            f"gave up after waiting {timeout:g} s"
                        ) from None
                    sleep(min(0.05, max(0.0, deadline - time.monotonic())))
            yield
        finally:
            os.close(fd)  # releases the lock

    def tables(self) -> set[tuple[str, str]]:
        """Every ``{schema}/{table}`` folder under the root that holds a Delta log."""
        root = self.path.parent
        logs = root.glob("*/*/_delta_log") if root.is_dir() else ()
        return {(p.parent.parent.name, p.parent.name) for p in logs if p.parts[-3] != SIDE}

    def _step_file(self, table: tuple[str, str]) -> Path:
        return self.path / "steps" / f"{table[0]}.{table[1]}.json"


class BucketSide:
    """``{root}/_dapctl`` in a bucket (the object store seam, `dapctl.objects`). A bucket has
    no ``flock``: its lock is this process's own, and two applies on two machines are kept
    apart by the commit protocol alone (`delta`: the second fails, writes nothing)."""

    _locks: dict[tuple[str, str], threading.Lock] = {}
    _registry = threading.Lock()

    def __init__(self, objects: Objects, prefix: str) -> None:
        self.objects, self.prefix = objects, prefix.strip("/")
        self.path = f"{self.prefix}/{SIDE}"

    def pending(self, table: tuple[str, str]) -> Pending | None:
        found = self.objects.get(self._step_key(table))
        return None if found is None else _parse(found[0])

    def all_pending(self) -> dict[tuple[str, str], Pending]:
        found = {}
        for key in self.objects.keys(f"{self.path}/steps/"):
            schema, _, table = key.rsplit("/", 1)[-1].removesuffix(".json").partition(".")
            if (got := self.pending((schema, table))) is not None:
                found[(schema, table)] = got
        return found

    def write_pending(self, table: tuple[str, str], pending: Pending) -> None:
        self.objects.put(self._step_key(table), _dump(pending))  # one PUT: whole or absent

    def clear_pending(self, table: tuple[str, str]) -> None:
        if self.objects.exists(key := self._step_key(table)):
            self.objects.remove(key)

    @contextlib.contextmanager
    def locked(
        self, name: str, *, timeout: float, sleep: Callable[[float], None]
    ) -> Iterator[None]:
        with self._registry:
            lock = self._locks.setdefault((f"{self.objects.root}/{self.prefix}", name),
                                          threading.Lock())  # fmt: skip
        if not lock.acquire(timeout=max(timeout, 0)):
            raise LockError(
                f"{name} in {self.objects.root}/{self.prefix} is being loaded by another "
                f"thread of this process; gave up after waiting {timeout:g} s"
            )
        try:
            yield
        finally:
            lock.release()

    def tables(self) -> set[tuple[str, str]]:
        found = set()
        for key in self.objects.keys(f"{self.prefix}/"):
            parts = key[len(self.prefix) + 1 :].split("/")
            if len(parts) > 3 and parts[2] == "_delta_log" and parts[0] != SIDE:
                found.add((parts[0], parts[1]))
        return found

    def _step_key(self, table: tuple[str, str]) -> str:
        return f"{self.path}/steps/{table[0]}.{table[1]}.json"


def _dump(pending: Pending) -> bytes:
    doc = {"version": pending.version, "address": pending.address, "record": pending.record}
    return json.dumps(doc).encode()


def _parse(data: bytes) -> Pending:
    doc = json.loads(data)
    return Pending(int(doc["version"]), str(doc["address"]), str(doc["record"]))

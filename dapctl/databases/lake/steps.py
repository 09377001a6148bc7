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
(each opens its own file description).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from dapctl.errors import LockError
from dapctl.files import ensure_private_dir

SIDE = "_dapctl"  # the folder beside the tables (never a schema: it starts with _)


@dataclass(frozen=True)
class Pending:
    """A table's pending step record and the table version it was written against (-1: no
    table yet)."""

    version: int
    address: str
    record: str


class SideFolder:
    """``{root}/_dapctl`` on a local disk."""

    def __init__(self, root: Path) -> None:
        self.path = root / SIDE

    def pending(self, table: tuple[str, str]) -> Pending | None:
        try:
            doc = json.loads(self._step_file(table).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return Pending(int(doc["version"]), str(doc["address"]), str(doc["record"]))

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
        doc = {"version": pending.version, "address": pending.address, "record": pending.record}
        with open(temporary, "w", encoding="utf-8") as out:
            out.write(json.dumps(doc))
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

    def _step_file(self, table: tuple[str, str]) -> Path:
        return self.path / "steps" / f"{table[0]}.{table[1]}.json"

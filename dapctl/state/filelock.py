"""One exclusive lock per state file, so two applies never write the same state.

The lock is an ``flock`` on ``<state>.lock``; the kernel drops it when its holder dies, even
on SIGKILL, so a crashed apply never blocks the next one. While held, the file records who
holds it (pid, host, since when, command): a second apply reports exactly that, waits up to
its timeout, and fails with ``LockError``. A lock file still holding a record when its lock
is free was left by a process that died; it is taken over with a warning naming the old
holder. Released locks leave no file behind. ``unlock`` removes a lock file and returns the
record of whoever held it; while a live process still holds the ``flock`` it refuses unless
forced (removing a running apply's lock would let a second apply write the same state), and
it holds the lock while it unlinks the file, so no apply can take it in between.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from dapctl.errors import LockError
from dapctl.files import ensure_private_dir
from dapctl.text import format_time

log = logging.getLogger("dapctl.lock")


class FileLock:
    def __init__(
        self,
        path: Path,
        *,
        timeout: float = 0.0,
        command: str = "dapctl",
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.timeout = timeout
        self.command = command
        self._sleep = sleep
        self._clock = clock
        self._fd: int | None = None

    def __enter__(self) -> None:
        deadline = self._clock() + self.timeout
        while True:
            fd = self._try_acquire()
            if fd is not None:
                self._fd = fd
                return
            if self._clock() >= deadline:
                holder = describe_holder(read_holder(self.path))
                raise LockError(
                    f"{self.path}: the state is locked by {holder}",
                    hint="wait for it to finish, pass --lock-timeout SECONDS to wait, or, if "
                    "you are sure no dapctl is running, `dapctl force-unlock`",
                )
            self._sleep(min(0.2, max(0.0, deadline - self._clock())))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def _try_acquire(self) -> int | None:
        try:
            ensure_private_dir(self.path.parent)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise LockError(
                f"{self.path}: cannot create the state's lock file: {exc.strerror}",
                hint="check that the state file's folder is a folder dapctl may write",
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        # The holder before us unlinks the file as it releases: if it did so after we opened
        # it, our lock is on a file nobody else will see. Start again on the new one.
        try:
            same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            return self._try_acquire()
        self._claim(fd)
        return fd

    def _claim(self, fd: int) -> None:
        previous = os.read(fd, 65536)
        if previous.strip():
            log.warning(
                "%s: taking over a lock left by %s, which is no longer running",
                self.path,
                describe_holder(_parse(previous)),
            )
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": format_time(datetime.now(UTC), timespec="seconds"),
            "command": self.command,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        os.fsync(fd)


def read_holder(path: Path) -> dict[str, object]:
    try:
        return _parse(path.read_bytes())
    except OSError:
        return {}


def _parse(data: bytes) -> dict[str, object]:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):  # not a record we wrote
        return {}
    return value if isinstance(value, dict) else {}


def describe_holder(holder: dict[str, object]) -> str:
    if not holder:
        return "another process (no details recorded)"
    return (
        f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} "
        f"since {holder.get('since', '?')} ({holder.get('command', 'dapctl')})"
    )


def force_unlock(path: Path) -> dict[str, object]:
    """Remove a lock file regardless of its holder; return who held it."""
    holder = read_holder(path)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return holder


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

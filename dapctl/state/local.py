"""State in a local JSON file: the backend ``[settings] state = "path"`` chooses.

Writes are atomic (temp file in the same folder, fsync, ``os.replace``) and keep the
previous state as ``<file>.backup`` (a hard link, so a large state is not re-read on every
write). Files are created 0600 in folders created 0700. The apply lock is an ``flock`` on
``<file>.lock`` (``filelock``). Compare-and-swap: a write checks, under a short ``flock`` on
the folder, that the file is the very one this store last read or wrote (same inode, size
and modification time), so two processes that read serial N cannot both write N+1.
Reading has no side effect; stale temporary files of killed writers are swept when the
lock is taken. ``discard`` (``state migrate --force``) removes the file, keeping it as the
backup.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from dapctl.errors import ConfigError, StateConflictError, StateError
from dapctl.files import atomic_write_bytes, ensure_private_dir, keep_copy, sweep_stale_temp_files
from dapctl.redaction import holds_password
from dapctl.state.documents import FolderDocuments
from dapctl.state.filelock import FileLock, read_holder, unlock
from dapctl.state.model import State, parse_state
from dapctl.state.store import LockHolder, SerialGuard

if TYPE_CHECKING:
    from dapctl.loading import LoadedConfig

log = logging.getLogger("dapctl.state")

FileId = tuple[int, int, int] | None


class LocalStateStore:
    def __init__(self, path: Path, *, base_dir: Path | None = None) -> None:
        self.path = path
        self.base_dir = base_dir if base_dir is not None else path.parent
        self.backup_path = path.with_name(path.name + ".backup")
        self.lock_path = path.with_name(path.name + ".lock")
        self._guard = SerialGuard(str(path))

    @property
    def location(self) -> str:
        return str(self.path)

    def documents(self, kind: str) -> FolderDocuments:
        return FolderDocuments(self.path.with_name(self.path.name + ".d") / kind)

    def read(self) -> State | None:
        state, file_id = self._read()
        self._guard.saw(state, file_id)
        return state

    def _read(self) -> tuple[State | None, FileId]:
        try:
            with self.path.open("rb") as handle:
                data = handle.read()
                file_id = _identity(os.fstat(handle.fileno()))
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            raise StateError(f"{self.path}: cannot read the state file: {exc.strerror}") from None
        return parse_state(data, source=str(self.path), base_dir=self.base_dir), file_id

    def write(self, state: State) -> None:
        data = state.to_bytes()
        try:
            ensure_private_dir(self.path.parent)
            with self._folder_locked():
                self._guard.check(state, self._file_id(), lambda: self._read()[0])
                # Written after every table: the backup is a link, not a re-read of the state.
                keep_copy(self.path, self.backup_path)
                atomic_write_bytes(self.path, data)
                self._guard.saw(state, self._file_id())
        except OSError as exc:
            raise StateError(f"{self.path}: cannot write the state file: {exc.strerror}") from None

    def discard(self) -> None:
        """Remove the state file (kept as the backup), if it is still what was last read."""
        try:
            with self._folder_locked():
                if self._file_id() != self._guard.token:
                    raise StateConflictError(
                        f"{self.path}: the state changed since it was read; nothing was removed"
                    )
                keep_copy(self.path, self.backup_path)
                self.path.unlink(missing_ok=True)
                self._guard.saw(None, None)
        except OSError as exc:
            raise StateError(f"{self.path}: cannot remove the state file: {exc.strerror}") from None

    def _file_id(self) -> FileId:
        try:
            return _identity(os.stat(self.path))
        except FileNotFoundError:
            return None

    @contextlib.contextmanager
    def _folder_locked(self) -> Iterator[None]:
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the last descriptor releases the flock

    @contextlib.contextmanager
    def _locked(self, lock: FileLock) -> Iterator[None]:
        with lock:
            for stale in sweep_stale_temp_files(self.path.parent):
                log.info("removed %s, left by a dapctl that was killed", stale)
            yield

    def lock(self, *, timeout: float, command: str) -> AbstractContextManager[None]:
        return self._locked(FileLock(self.lock_path, timeout=timeout, command=command))

    def lock_info(self) -> LockHolder | None:
        return read_holder(self.lock_path) if self.lock_path.exists() else None

    def force_unlock(self, *, force: bool) -> LockHolder | None:
        return unlock(self.lock_path, force=force)


def _identity(stat: os.stat_result) -> tuple[int, int, int]:
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def open_local(value: str, *, loaded: LoadedConfig, where: str) -> LocalStateStore:
    """The backend registry's opener: ``value`` is a path relative to the config's folder."""
    if holds_password(value):  # a libpq keyword string: as a path it would show everywhere
        raise ConfigError(
            f"{where}: not a URL, and it holds a password (a keyword string such as "
            "host=... password=... is not a state location)",
            hint="write it as postgresql://user:password@host/db",
        )
    return LocalStateStore(loaded.resolve_path(value), base_dir=loaded.base_dir)

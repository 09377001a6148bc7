"""Local file primitives: private folders and atomic, durable writes.

A file written through here is either absent or whole under its final name: bytes go to a
temporary file in the same folder (so the rename never crosses file systems), are fsynced,
and are renamed into place with ``os.replace``; the folder is fsynced so the rename survives
a power cut. Temporary names start with ``.`` and end with ``.dapctl-tmp`` so a later run
(or a person) can tell them apart and clean them up. New folders are created 0700 and new
files 0600: state and outputs may hold an institution's data. ``PRIVATE_UMASK`` covers the
files a library creates itself (DuckDB's database, ``.wal`` and spill files), whose modes
only the umask decides.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".dapctl-tmp"


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` and missing parents as 0700; leave existing folders as they are."""
    ensure_dir(path, 0o700)


def ensure_dir(path: Path, mode: int) -> None:
    """Create ``path`` and missing parents with exactly ``mode`` (whatever the umask says);
    leave existing folders as they are."""
    if path.is_dir():
        return
    # Path.mkdir(parents=True) gives the parents the default mode, not ``mode``.
    if path.parent != path:
        ensure_dir(path.parent, mode)
    try:
        path.mkdir(mode=mode)
    except FileExistsError:
        if not path.is_dir():
            raise
        return
    os.chmod(path, mode)


class PrivateUmask:
    """While held, what other code creates in this process is private: the umask gains 077.

    A library that opens its own files asks for 0666 (folders 0755) less the umask; DuckDB
    does so for its database, its ``.wal`` (made again after every checkpoint) and its spill
    folder, so no chmod after the fact can keep up. The umask belongs to the whole process,
    which is why it is counted: the first holder tightens it, the last one puts it back.
    dapctl's own files never depend on it: they are created with exact modes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._saved = 0

    def acquire(self) -> None:
        with self._lock:
            if self._holders == 0:
                self._saved = os.umask(0o077)
                os.umask(self._saved | 0o077)
            self._holders += 1

    def release(self) -> None:
        with self._lock:
            self._holders -= 1
            if self._holders == 0:
                os.umask(self._saved)


PRIVATE_UMASK = PrivateUmask()


def unwritable_folder(folder: Path) -> str | None:
    """Why files cannot be created in ``folder`` (made first, with any missing parents, if
    it is not there), or ``None`` when they can. Nothing is created to find out."""
    here = folder
    while not os.path.lexists(here) and here.parent != here:
        here = here.parent
    if not here.is_dir():
        return f"{here} is a file, not a folder" if here.is_file() else f"{here} is not a folder"
    if not os.access(here, os.W_OK | os.X_OK):
        return f"this user may not write in {here}"
    return None


def folder_mode(file_mode: int) -> int:
    """The mode of a folder holding files of ``file_mode``: search wherever read is allowed
    (0600 -> 0700, 0640 -> 0750, 0644 -> 0755)."""
    return 0o700 | file_mode | ((file_mode & 0o444) >> 2)


def temp_path_for(path: Path, label: str = "") -> Path:
    """A temporary name beside ``path`` that says which process (host, pid) made it."""
    owner = f"{_host_tag()}-{os.getpid()}"
    return path.with_name(f".{path.name}.{label}{owner}.{secrets.token_hex(4)}{TEMP_SUFFIX}")


def sweep_stale_temp_files(folder: Path) -> list[Path]:
    """Remove the temporary files a dead dapctl process left in ``folder``; return them.

    A killed apply cannot clean up after itself; its temporary outputs and parts (which may
    be gigabytes) would otherwise stay forever. A file is stale when it names this host and
    a process that no longer runs, or carries no owner at all.
    """
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if entry.name.endswith(TEMP_SUFFIX) and _stale(entry.name):
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed.append(entry)
    return removed


_OWNER = re.compile(
    r"\.(?P<host>[0-9a-f]{8})-(?P<pid>\d+)\.[0-9a-f]{8}" + re.escape(TEMP_SUFFIX) + "$"
)


def left_by_dead_process(name: str) -> bool:
    """Whether a name from ``temp_path_for`` names a process that is gone (on this host)."""
    return name.endswith(TEMP_SUFFIX) and _stale(name)


def _stale(name: str) -> bool:
    match = _OWNER.search(name)
    if match is None:
        return True
    if match["host"] != _host_tag():
        return False  # another host's process, on a shared folder: not ours to judge
    return not _alive(int(match["pid"]))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


class AtomicFile:
    """A file written under a temporary name beside ``path``, published whole by ``commit``.

    ``abort`` (or a failed commit) removes the temporary file; the final name never holds a
    partial file. Bytes written are counted and hashed on the way, for the state's record.
    """

    def __init__(self, path: Path, *, mode: int = 0o600) -> None:
        ensure_dir(path.parent, folder_mode(mode))
        self.path = path
        self._temp = temp_path_for(path)
        fd = os.open(self._temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        if mode != 0o600:
            os.fchmod(fd, mode)  # exactly: the umask would take bits off os.open's mode
        self._file: BinaryIO = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def flush(self) -> None:
        self._file.flush()

    def fileno(self) -> int:
        return self._file.fileno()

    def commit(self) -> None:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._temp, self.path)
        except BaseException:
            self.abort()
            raise
        fsync_dir(self.path.parent)

    def abort(self) -> None:
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self._temp.unlink()


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[AtomicFile]:
    """Yield a file to write; on a clean exit it replaces ``path`` whole, else vanishes."""
    file = AtomicFile(path)
    try:
        yield file
    except BaseException:
        file.abort()
        raise
    file.commit()


def open_private(path: Path) -> BinaryIO:
    """Open ``path`` for writing, truncated, created 0600 if new."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(fd, "wb")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_writer(path) as handle:
        handle.write(data)


def keep_copy(source: Path, copy: Path) -> None:
    """Make ``copy`` a whole copy of ``source`` (absent source: nothing to keep).

    A hard link costs no reading or writing: files here are only ever replaced by rename,
    never changed in place, so the linked copy keeps the old content. Where links are not
    possible, the bytes are copied.
    """
    temp = temp_path_for(copy)
    try:
        os.link(source, temp)
    except FileNotFoundError:
        return
    except OSError:
        atomic_write_bytes(copy, source.read_bytes())
        return
    try:
        os.replace(temp, copy)
    finally:
        # A rename onto another link of the same file does nothing (POSIX) and leaves the
        # temporary link: so it is when the copy already is the source, as a dapctl
        # killed between keeping the copy and replacing the source leaves them.
        temp.unlink(missing_ok=True)
    fsync_dir(copy.parent)


def fsync_dir(path: Path) -> None:
    # Directory fsync makes the rename durable; not every platform allows opening a folder.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

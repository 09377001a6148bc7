"""Local file primitives: private folders and atomic, durable writes.

A file written through here is either absent or whole under its final name: bytes go to a
temporary file in the same folder (so the rename never crosses file systems), are fsynced,
and are renamed into place with ``os.replace``; the folder is fsynced so the rename survives
a power cut. Temporary names start with ``.`` and end with ``.dapctl-tmp`` so a later run
(or a person) can tell them apart and clean them up. New folders are created 0700 and new
files 0600: state and outputs may hold an institution's data.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".dapctl-tmp"


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` and missing parents as 0700; leave existing folders as they are."""
    if path.is_dir():
        return
    # Path.mkdir(parents=True) gives the parents the default mode, not ``mode``.
    if path.parent != path:
        ensure_private_dir(path.parent)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        if not path.is_dir():
            raise


def temp_path_for(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """Yield a file to write; on a clean exit it replaces ``path`` whole, else vanishes."""
    ensure_private_dir(path.parent)
    temp = temp_path_for(path)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    fsync_dir(path.parent)


def open_private(path: Path) -> BinaryIO:
    """Open ``path`` for writing, truncated, created 0600 if new."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(fd, "wb")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_writer(path) as handle:
        handle.write(data)


def fsync_dir(path: Path) -> None:
    # Directory fsync makes the rename durable; not every platform allows opening a folder.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

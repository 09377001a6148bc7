"""Output files: where a step's data goes, and how the server's parts become one file.

``output_path`` renders a target's template for one job. ``Merger`` joins the server's parts,
in order, into one output as they arrive: a CSV/TSV header written once (every part must
carry the same one), gzip-compressed when the path ends in ``.gz``, records counted on the
way. The parts come already decompressed by the download's own gzip check, except JSON Lines
into a ``.gz`` file, whose gzip members pass through untouched (a multi-member gzip file is
one valid stream), counted during the download: the common case costs a copy. Memory stays
flat whatever the size.

Storage sits behind ``OutputStore`` (open-for-write / commit / abort) so object storage can
replace the local file system later; ``LocalOutputStore`` writes under a temporary name in the
final folder and renames into place when the file is whole, so a killed apply never leaves a
partial file under a final name.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import logging
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Protocol

from dapctl.config import Target
from dapctl.errors import DapctlError, OutputError
from dapctl.files import ensure_private_dir, fsync_dir, sweep_stale_temp_files, temp_path_for

log = logging.getLogger("dapctl.outputs")

CHUNK = 1 << 20
# CSV/TSV into .gz is decompressed and compressed again (the header goes once). Level 1
# deflates 3-4x faster than 6 for a file about 20% larger; at 6, compression held the whole
# apply to a few MB/s (issue 7). JSON Lines keeps the server's own compression.
GZIP_LEVEL = 1
_NEWLINE_MEMBER = gzip.compress(b"\n", mtime=0)


def compact_time(value: datetime) -> str:
    """``2026-11-28T20:40:00Z`` → ``20261128T204000Z``: sortable, and safe in a file name."""
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def output_path(
    base_dir: Path, target: Target, *, profile: str, table: str, kind: str, timestamp: datetime
) -> Path:
    """The file one job's data goes to, absolute, resolved against the config's folder."""
    relative = target.output.format(
        profile=profile,
        target=target.name,
        namespace=target.namespace,
        table=table,
        kind=kind,
        timestamp=compact_time(timestamp),
        format=target.format,
    )
    return (base_dir / relative).resolve()


class OutputWriter(Protocol):
    def write(self, data: bytes) -> None: ...

    def commit(self) -> str: ...

    def abort(self) -> None: ...

    @property
    def size(self) -> int: ...

    @property
    def sha256(self) -> str: ...


class OutputStore(Protocol):
    """Where outputs go. Apply uses only this interface."""

    def open_for_write(self, path: Path) -> OutputWriter: ...

    def scratch_dir(self, path: Path) -> Path:
        """A local folder for the parts of ``path`` while they download."""
        ...

    def discard(self, path: Path) -> None:
        """Remove an output that was published but never recorded (no error if absent)."""
        ...

    def exists(self, path: Path) -> bool:
        """Whether a file is published at ``path``."""
        ...


class LocalOutputStore:
    def open_for_write(self, path: Path) -> OutputWriter:
        if path.is_dir():
            raise OutputError(f"{path}: the output path is a folder, not a file")
        return LocalOutputWriter(path)

    def scratch_dir(self, path: Path) -> Path:
        ensure_private_dir(path.parent)
        for stale in sweep_stale_temp_files(path.parent):
            log.info("removed %s, left by a dapctl that was killed", stale)
        return path.parent

    def discard(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def exists(self, path: Path) -> bool:
        return path.exists()


class LocalOutputWriter:
    """A file written under a temporary name and renamed into place by ``commit``."""

    def __init__(self, path: Path) -> None:
        ensure_private_dir(path.parent)
        self.path = path
        self._temp = temp_path_for(path)
        fd = os.open(self._temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file: BinaryIO = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self._size = 0

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._hash.update(data)
        self._size += len(data)

    @property
    def size(self) -> int:
        return self._size

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def commit(self) -> str:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._temp, self.path)
        fsync_dir(self.path.parent)
        return str(self.path)

    def abort(self) -> None:
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self._temp.unlink()


@dataclass(frozen=True)
class MergeStats:
    records: int


class MergeError(DapctlError):
    """The parts do not fit together (different headers, or not what the format says)."""


class Merger:
    """Joins parts one at a time, so merging can start while later parts download.

    Parts come as text decompressed while it downloaded (``add_text``) or, for JSON Lines
    into ``.gz``, as gzip files passed through untouched whose records were counted while
    they downloaded (``add_counted``), so the merge is a copy.
    """

    def __init__(self, *, fmt: str, out: OutputWriter, compress: bool) -> None:
        if fmt == "parquet":
            raise MergeError("Parquet parts merge whole: use parquet.ParquetMerger")
        self._fmt = fmt
        self._out = out
        self._counter = _RecordCounter(fmt)
        self.passthrough = fmt == "jsonl" and compress
        self._sink: OutputWriter | _Compressor = (
            _Compressor(out) if compress and not self.passthrough else out
        )
        self._header: bytes | None = None
        self._parts = 0
        self._counted = 0  # records of parts counted during their download
        self._open_line = False  # the last passed-through part ended mid-line

    def add_text(self, part: Path) -> None:
        """Append the next part, already decompressed."""
        self._append_text(_file_chunks(part), part)

    def add_counted(self, part: Path, *, records: int, ends_open: bool) -> None:
        """Pass the next gzip part through as it is; its records were counted already."""
        if self._open_line:  # the last part ended mid-line: end it, as a member of its own
            self._out.write(_NEWLINE_MEMBER)
        for raw in _file_chunks(part):
            self._out.write(raw)
        self._counted += records
        self._open_line = ends_open
        self._parts += 1

    def _append_text(self, chunks: Iterator[bytes], part: Path) -> None:
        counter = self._counter
        if counter.pending:
            self._sink.write(b"\n")
            counter.feed(b"\n")
        if self._fmt in ("csv", "tsv"):
            first, chunks = _split_header(chunks, part)
            if self._parts == 0:
                self._header = first
                self._sink.write(first)
            elif first != self._header:
                raise MergeError(f"part {part.name} has a different header from the first part")
        for text in chunks:
            self._sink.write(text)
            counter.feed(text)
        self._parts += 1

    def finish(self) -> MergeStats:
        """Complete the output (the compressor's last block); the records merged."""
        if isinstance(self._sink, _Compressor):
            self._sink.close()
        return MergeStats(self._counted + self._counter.finish())


class PartCounter:
    """Counts one part's records from its text as it downloads (a client ``TextSink``)."""

    def __init__(self, fmt: str) -> None:
        self._fmt = fmt
        self._counter = _RecordCounter(fmt)

    def restart(self) -> None:
        self._counter = _RecordCounter(self._fmt)

    def feed(self, text: bytes) -> None:
        self._counter.feed(text)

    @property
    def records(self) -> int:
        return self._counter.finish()

    @property
    def ends_open(self) -> bool:
        return self._counter.pending


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def _split_header(chunks: Iterator[bytes], part: Path) -> tuple[bytes, Iterator[bytes]]:
    buffered = b""
    for chunk in chunks:
        buffered += chunk
        end = buffered.find(b"\n")
        if end >= 0:
            rest = buffered[end + 1 :]
            return buffered[: end + 1], _prepend(rest, chunks)
    if buffered:
        return buffered if buffered.endswith(b"\n") else buffered + b"\n", iter(())
    raise MergeError(f"part {part.name} is empty: a CSV/TSV part starts with a header row")


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


class _Compressor:
    def __init__(self, out: OutputWriter) -> None:
        self._out = out
        self._deflater = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)

    def write(self, data: bytes) -> None:
        self._out.write(self._deflater.compress(data))

    def close(self) -> None:
        self._out.write(self._deflater.flush())


class _RecordCounter:
    """Counts records in a stream of text chunks, without holding more than one chunk.

    JSON Lines and TSV (PostgreSQL COPY escapes newlines) have one record per line. CSV
    quotes fields holding newlines; quotes inside are doubled, so a line ends a record
    exactly when the quotes seen so far are even.
    """

    def __init__(self, fmt: str) -> None:
        self._csv = fmt == "csv"
        self._records = 0
        self._odd = 0  # 1 inside a quoted field
        self._pending = False  # bytes seen since the last record's end

    def feed(self, text: bytes) -> None:
        if not text:
            return
        if not self._csv:
            self._records += text.count(b"\n")
            self._pending = not text.endswith(b"\n")
            return
        # Split at the quotes: the pieces alternate outside and inside a quoted field, so the
        # records end at the newlines of the outside pieces. C-speed, where a loop over lines
        # held the merge to a few MB/s.
        pieces = text.split(b'"')
        self._records += b"".join(pieces[self._odd :: 2]).count(b"\n")
        self._odd ^= len(pieces) % 2 == 0  # an odd number of quotes in this chunk
        self._pending = self._odd == 1 or not text.endswith(b"\n")

    @property
    def pending(self) -> bool:
        """Whether the text so far ends inside a record (no final newline yet)."""
        return self._pending

    def finish(self) -> int:
        return self._records + (1 if self._pending else 0)

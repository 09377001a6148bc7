"""Merging the server's parts into one file: ``Merger``, the record counters, gzip.

``Merger`` joins the parts, in order, into one output as they arrive: a CSV/TSV header
written once (every part must carry the same one), gzip-compressed when the file name ends
in ``.gz``, records counted on the way. The parts come already decompressed by the
download's own gzip check, except JSON Lines into a ``.gz`` file, whose gzip members pass
through untouched (a multi-member gzip file is one valid stream), counted during the
download: the common case costs a copy. Memory stays flat whatever the size. The merger
writes to any ``Sink`` (a file about to be published, an object upload).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from dapctl import deflate
from dapctl.errors import DapctlError

CHUNK = 1 << 20
# CSV/TSV into .gz is decompressed and compressed again (the header goes once). Level 1:
# with ISA-L it deflates ~1 GB/s into a file smaller than zlib's level 1 (see deflate.py).
# JSON Lines keeps the server's own compression.
GZIP_LEVEL = 1
_NEWLINE_MEMBER = gzip.compress(b"\n", mtime=0)


class Sink(Protocol):
    """Where merged bytes go."""

    def write(self, data: bytes) -> None: ...


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

    def __init__(
        self, *, fmt: str, out: Sink, compress: bool, passthrough: bool | None = None
    ) -> None:
        if fmt == "parquet":
            raise MergeError("Parquet parts merge whole: use parquet.ParquetMerger")
        self._fmt = fmt
        self._out = out
        self._counter = _RecordCounter(fmt)
        # JSON Lines into .gz passes the server's gzip members through, unless the parts
        # come as text (a load that also feeds a table reads them decompressed).
        self.passthrough = fmt == "jsonl" and compress if passthrough is None else passthrough
        self._sink: Sink | GzipWriter = (
            GzipWriter(out) if compress and not self.passthrough else out
        )
        self._header: bytes | None = None
        self._parts = 0
        self._counted = 0  # records of parts counted during their download
        self._open_line = False  # the last passed-through part ended mid-line

    def add(self, part: Path, counted: PartCounter | None) -> None:
        """Append the next part (counted: passed through as gzip), then remove its file."""
        if counted is None:
            self.add_text(part)
        else:
            self.add_counted(part, records=counted.records, ends_open=counted.ends_open)
        part.unlink()

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
        if isinstance(self._sink, GzipWriter):
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


class GzipWriter:
    """Deflates what it is given into a gzip stream written to ``out``; ``close`` ends it."""

    def __init__(self, out: Sink) -> None:
        self._out = out
        self._deflater = deflate.compressobj(GZIP_LEVEL)

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

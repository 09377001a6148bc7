"""Merging the server's parts into one file: ``Merger`` and gzip.

``Merger`` joins the parts, in order, into one output as they arrive: a CSV/TSV header
written once (every part must carry the same one), gzip-compressed when the file name ends
in ``.gz``, records counted on the way. Into a ``.gz`` file the parts come as gzip members
made during the download (``parts``): JSON Lines as the server's own bytes, CSV/TSV as
their text without the header row, deflated again in the download thread; the merge is a
copy (a multi-member gzip file is one valid stream), the header a member of its own.
Otherwise the parts come as text, already decompressed by the download's own gzip check.
Memory stays flat whatever the size. The merger writes to any ``Sink`` (a file about to be
published, an object upload).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from dapctl import deflate
from dapctl.errors import DapctlError
from dapctl.outputs.parts import GZIP_LEVEL, PartBody, PartCounter, RecordCounter, member

__all__ = ["GzipWriter", "MergeError", "MergeStats", "Merger", "PartCounter", "Sink"]

CHUNK = 1 << 20
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

    Parts come as text decompressed while it downloaded (``add_text``) or, into ``.gz``,
    as gzip files whose records were counted while they downloaded: JSON Lines as the
    server sent them (``add_counted``), CSV/TSV without their header row (``add_body``).
    """

    def __init__(
        self, *, fmt: str, out: Sink, compress: bool, passthrough: bool | None = None
    ) -> None:
        if fmt == "parquet":
            raise MergeError("Parquet parts merge whole: use parquet.ParquetMerger")
        self._fmt = fmt
        self._out = out
        self._counter = RecordCounter(fmt)
        # Into .gz the parts come as gzip members, unless they come as text (a load that
        # also feeds a table reads them decompressed).
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
        elif isinstance(counted, PartBody):
            self.add_body(part, counted)
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

    def add_body(self, part: Path, body: PartBody) -> None:
        """Pass the next CSV/TSV part's body through (a gzip member); its header goes once."""
        if body.header is None:
            raise MergeError(f"part {part.name} is empty: a CSV/TSV part starts with a header row")
        if self._parts == 0:
            self._header = body.header
            self._out.write(member(body.header))
        elif body.header != self._header:
            raise MergeError(f"part {part.name} has a different header from the first part")
        self.add_counted(part, records=body.records, ends_open=body.ends_open)

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

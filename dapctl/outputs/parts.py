"""What the collector keeps of a part while its text streams past the download's gzip check.

The check inflates every byte of a part anyway; whatever else the output needs of the text
is taken there and then, in the download thread, so no part is inflated twice and the work
spreads over the download threads (and so over the cores). ``PartCounter`` counts a part's
records (JSON Lines passed through as the server's gzip). ``PartBody`` sets a CSV/TSV part's
header row aside, counts the rest and deflates it again into one gzip member in the part's
file, so the merge joins members without inflating or deflating anything. Both start over
with every download attempt (``restart``) and hold no more than one piece of text.

Counting must hold the GIL only briefly, or the threads wait for each other while the other
core idles: in a large table newlines are counted by numpy where it is installed (a vector
compare that releases the GIL, ~5 GB/s here), otherwise by ``bytes.count`` (~2 GB/s, GIL
held).
"""

from __future__ import annotations

import threading
from typing import Any, BinaryIO

from dapctl import deflate

# CSV/TSV parts are deflated again (their header row goes). Level 1: with ISA-L it deflates
# ~1 GB/s a core into a file smaller than zlib's level 1 (see deflate.py).
GZIP_LEVEL = 1
VECTOR_MIN = 1 << 14  # below this, numpy's call costs more than it saves
_NOT_MARKS = bytes(sorted(set(range(256)) - set(b'"\n')))  # what a CSV count may ignore


class _Vectors:
    """numpy, imported in a thread of its own once ``after`` bytes have been counted without
    it. Importing costs ~0.15 s of CPU, which only a large table pays back (at ~0.35 ns a
    byte saved, from ~0.4 GB on): small jobs and other commands never import it, and the
    downloads go on counting with ``bytes.count`` meanwhile rather than wait for it."""

    def __init__(self, after: int = 1 << 26) -> None:
        self.module: Any = None
        self._lock = threading.Lock()
        self._left = after  # bytes still to count before the import starts

    def get(self, size: int) -> Any:
        if self.module is None and self._left > 0:
            with self._lock:
                crossed = self._left > 0 >= self._left - size
                self._left -= size
            if crossed:
                threading.Thread(target=self.load, name="dapctl-numpy").start()
        return self.module

    def load(self) -> None:
        try:
            import numpy
        except ImportError:  # an optional accelerator: bytes.count gives the same answer
            return
        self.module = numpy


_VECTORS = _Vectors()


def newlines(text: bytes, vectors: _Vectors = _VECTORS) -> int:
    """How many ``\\n`` bytes ``text`` holds."""
    if len(text) >= VECTOR_MIN and (np := vectors.get(len(text))) is not None:
        return int(np.count_nonzero(np.frombuffer(text, np.uint8) == 10))
    return text.count(b"\n")


class RecordCounter:
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
        if self._csv and (self._odd or b'"' in text):
            self._count_quoted(text)
        else:  # no quoted field here: every newline ends a record
            self._records += newlines(text)
        self._pending = self._odd == 1 or not text.endswith(b"\n")

    def _count_quoted(self, text: bytes) -> None:
        # Only quotes and newlines matter: keep those (C speed), drop each pair of adjacent
        # quotes (two flips of the state with no newline between change nothing), then split
        # at the quotes left: the pieces alternate outside and inside a quoted field, and the
        # records end at the newlines of the outside pieces. Splitting the whole text made an
        # object per quote and held the GIL four times as long (issue 13).
        marks = text.translate(None, _NOT_MARKS).replace(b'""', b"")
        pieces = marks.split(b'"')
        self._records += b"".join(pieces[self._odd :: 2]).count(b"\n")
        self._odd ^= len(pieces) % 2 == 0  # an odd number of quotes in this chunk

    @property
    def pending(self) -> bool:
        """Whether the text so far ends inside a record (no final newline yet)."""
        return self._pending

    def finish(self) -> int:
        return self._records + (1 if self._pending else 0)


class PartCounter:
    """Counts one part's records from its text as it downloads (a client ``TextSink``)."""

    def __init__(self, fmt: str) -> None:
        self._fmt = fmt
        self._counter = RecordCounter(fmt)

    def restart(self) -> None:
        self._counter = RecordCounter(self._fmt)

    def feed(self, text: bytes) -> None:
        self._counter.feed(text)

    @property
    def records(self) -> int:
        return self._counter.finish()

    @property
    def ends_open(self) -> bool:
        return self._counter.pending


class PartBody(PartCounter):
    """A CSV/TSV part as it downloads: the header row kept aside, the rest counted and
    deflated into one gzip member written to ``out`` (from its start on every attempt).

    ``header`` is the first line with its newline (the whole text, a newline added, when
    there is no newline), or ``None`` for a part with no text at all; ``finish`` ends the
    member once the download is complete.
    """

    def __init__(self, fmt: str, out: BinaryIO) -> None:
        super().__init__(fmt)
        self._out = out
        self._begin()

    def restart(self) -> None:
        super().restart()
        self._out.seek(0)
        self._out.truncate()
        self._begin()

    def _begin(self) -> None:
        self.header: bytes | None = None
        self._head: list[bytes] = []  # the first line, until its newline comes
        self._deflater = deflate.compressobj(GZIP_LEVEL)

    def feed(self, text: bytes) -> None:
        if self.header is None and text:
            end = text.find(b"\n")
            if end < 0:
                self._head.append(text)
                return
            self.header = b"".join([*self._head, text[: end + 1]])
            self._head = []
            text = text[end + 1 :]
        if text:
            super().feed(text)
            self._out.write(self._deflater.compress(text))

    def finish(self) -> None:
        if self.header is None and self._head:
            self.header = b"".join(self._head) + b"\n"
        self._out.write(self._deflater.flush())


def member(data: bytes) -> bytes:
    """``data`` as one gzip member of its own."""
    deflater = deflate.compressobj(GZIP_LEVEL)
    packed: bytes = deflater.compress(data) + deflater.flush()
    return packed

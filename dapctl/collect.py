"""Collecting a finished job: download its parts and hand them, in order, to a ``Load``.

Parts download concurrently (a few at a time) into the load's part files, each verified by
the client (complete length, whole gzip stream), in the form the load asks for
(``part_mode``), and go to ``add_part`` as soon as each part and those before it are in, so
merging or loading overlaps the downloads. ``commit`` then makes the whole job visible;
on any failure the load is aborted. Whatever happens, the part files are removed. A load
with nothing of its own to measure (``Landed.measured``: a table) lands the bytes the
download took, the same count the progress display shows.

A download's buffers (network chunks, pieces of inflated text) are a few MiB a thread, made
and freed over and over. glibc's default allocator hands such blocks back to the kernel and
faults them in again, zeroed, at the next one: a fifth of a large table's CPU (issue 13).
The first collect therefore asks glibc (where it is the C library) to keep blocks up to
``KEEP_BLOCKS`` in the heap and freed memory up to ``KEEP_FREE``: the peak does not change,
the process only stops giving memory back that it is about to take again.
"""

from __future__ import annotations

import contextvars
import ctypes
import functools
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO, cast

import requests

from dapctl.api.client import DapClient
from dapctl.api.wire import Job
from dapctl.errors import OutputError
from dapctl.files import open_private
from dapctl.outputs.destination import Landed, Load, Settle
from dapctl.outputs.parts import PartBody, PartCounter

log = logging.getLogger("dapctl.collect")

PART_WORKERS = 4
KEEP_BLOCKS = 8 << 20  # glibc's M_MMAP_THRESHOLD: smaller blocks come from the heap
KEEP_FREE = 64 << 20  # glibc's M_TRIM_THRESHOLD: freed heap kept up to this much


def collect(
    client: DapClient,
    job: Job,
    load: Load,
    *,
    settle: Settle,
    on_bytes: Callable[[int], None] | None = None,
    on_part: Callable[[], None] | None = None,
) -> Landed:
    """Download ``job``'s parts into ``load`` and commit it; return what landed.

    ``on_bytes`` hears every change in the bytes downloaded so far (negative when a retry
    drops a cut-off part), ``on_part`` each part whose download is complete, both from the
    download threads, for progress displays.
    """
    _steady_allocator()
    download = _counted(_DOWNLOADS[load.part_mode], on_part)
    tally = _Tally(on_bytes)
    try:
        with client.batching_urls([ref.id for ref in job.objects]):
            landed = _collect(client, job, load, download, tally.settling(settle), tally.add)
    except OSError as exc:
        if isinstance(exc, requests.RequestException):  # requests' errors are OSErrors too
            raise
        raise OutputError(
            f"{load.location}: cannot write the output: {exc.strerror or exc}",
            hint="check that the output template names a place dapctl may write",
        ) from None
    return tally.measure(landed)


def _collect(
    client: DapClient,
    job: Job,
    load: Load,
    download: Callable[..., PartCounter | None],
    settle: Settle,
    on_bytes: Callable[[int], None] | None,
) -> Landed:
    parts: list[Path] = []
    try:
        # Inside the try: a load whose part folder cannot be made is still aborted.
        parts += (load.part_path(i) for i in range(len(job.objects)))
        if parts:
            with ThreadPoolExecutor(min(PART_WORKERS, len(parts)), "dapctl-part") as pool:
                downloads = [
                    # The copied context carries the step's address into the part's log records.
                    pool.submit(
                        contextvars.copy_context().run, download, client, ref.id, part, on_bytes
                    )
                    for ref, part in zip(job.objects, parts, strict=True)
                ]
                try:
                    # Each part goes in as soon as it and those before it are in, while later
                    # parts still download (issue 7: merging after the last doubled the time).
                    for future, part in zip(downloads, parts, strict=True):
                        load.add_part(part, future.result())
                except BaseException:
                    for future in downloads:
                        future.cancel()  # parts not yet started need not be fetched
                    raise
        return load.commit(settle)
    except BaseException:
        load.abort()
        raise
    finally:
        for part in parts:
            part.unlink(missing_ok=True)


@functools.cache
def _steady_allocator() -> None:
    """Tune glibc's malloc once (see the module's docstring); elsewhere, do nothing."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return
        mallopt = ctypes.CDLL(None).mallopt
    except (ValueError, OSError, AttributeError):  # not glibc, or no such name here
        return
    mallopt(-3, KEEP_BLOCKS)  # M_MMAP_THRESHOLD (fixing it ends glibc's own adjusting)
    mallopt(-1, KEEP_FREE)  # M_TRIM_THRESHOLD


class _Tally:
    """The bytes a job's download took so far (a retry's cut-off part taken off again),
    passed on to the progress display's ``report`` too."""

    def __init__(self, report: Callable[[int], None] | None) -> None:
        self._report = report
        self._lock = threading.Lock()
        self.size = 0

    def add(self, count: int) -> None:
        with self._lock:
            self.size += count
        if self._report is not None:
            self._report(count)

    def measure(self, landed: Landed) -> Landed:
        """``landed`` with the bytes downloaded, if it had nothing of its own to measure."""
        return landed if landed.measured else replace(landed, bytes=self.size, measured=True)

    def settling(self, settle: Settle) -> Settle:
        return lambda landed: settle(self.measure(landed))


def _counted(
    download: Callable[..., PartCounter | None], on_part: Callable[[], None] | None
) -> Callable[..., PartCounter | None]:
    if on_part is None:
        return download

    def counted(*args: object) -> PartCounter | None:
        result = download(*args)
        on_part()
        return result

    return counted


# The client's gzip check decompresses every part; the text it produces is used there and
# then, so no part is decompressed twice (issue 7: that was half the CPU of a large table).


def _passed_through(
    client: DapClient, object_id: str, part: Path, on_bytes: Callable[[int], None] | None
) -> PartCounter:
    """Keep the part's gzip bytes as they are; count its records from the check's text."""
    counter = PartCounter("jsonl")
    with open_private(part) as handle:
        client.download_object(object_id, _metered(handle, on_bytes), text=counter)
    return counter


def _as_is(
    client: DapClient, object_id: str, part: Path, on_bytes: Callable[[int], None] | None
) -> None:
    """Keep the part's bytes as they came: Parquet, which has no gzip stream to check."""
    with open_private(part) as handle:
        client.download_object(object_id, _metered(handle, on_bytes), gzip=False)


def _decompressed(
    client: DapClient, object_id: str, part: Path, on_bytes: Callable[[int], None] | None
) -> None:
    """Keep the part's decompressed text, for a load that has to rewrite it anyway."""
    with open_private(part) as handle:
        client.download_object(
            object_id,
            _metered(cast(BinaryIO, _Discard()), on_bytes),
            text=_Keep(handle),
        )


def _body(fmt: str) -> Callable[..., PartBody]:
    def download(
        client: DapClient, object_id: str, part: Path, on_bytes: Callable[[int], None] | None
    ) -> PartBody:
        """Keep the CSV/TSV part's text without its header row, counted and deflated again
        here, in the download thread: the merge then only copies (issue 13)."""
        with open_private(part) as handle:
            body = PartBody(fmt, handle)
            client.download_object(
                object_id, _metered(cast(BinaryIO, _Discard()), on_bytes), text=body
            )
            body.finish()
        return body

    return download


_DOWNLOADS: dict[str, Callable[..., PartCounter | None]] = {
    "gzip": _passed_through,
    "body-csv": _body("csv"),
    "body-tsv": _body("tsv"),
    "raw": _as_is,
    "text": _decompressed,
}


def _metered(handle: BinaryIO, on_bytes: Callable[[int], None] | None) -> BinaryIO:
    return handle if on_bytes is None else cast(BinaryIO, _Counting(handle, on_bytes))


class _Keep:
    """Writes the text of a part to its file, from the start again on every attempt."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle

    def restart(self) -> None:
        self._handle.seek(0)
        self._handle.truncate()

    def feed(self, text: bytes) -> None:
        self._handle.write(text)


class _Discard:
    """A destination that keeps only a position: the compressed bytes are not needed."""

    def __init__(self) -> None:
        self._position = 0

    def write(self, data: bytes) -> int:
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = 0) -> int:
        self._position = offset if whence == 0 else self._position + offset
        return self._position

    def truncate(self, size: int | None = None) -> int:
        return self._position if size is None else size


class _Counting:
    """A part file that reports bytes as they are written, and un-reports a truncation."""

    def __init__(self, handle: BinaryIO, report: Callable[[int], None]) -> None:
        self._handle = handle
        self._report = report
        self._end = handle.tell()

    def write(self, data: bytes) -> int:
        written = self._handle.write(data)
        self._end = max(self._end, self._handle.tell())
        self._report(written)
        return written

    def tell(self) -> int:
        return self._handle.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._handle.seek(offset, whence)

    def truncate(self, size: int | None = None) -> int:
        end = self._handle.truncate(size)
        if end < self._end:
            self._report(end - self._end)
        self._end = end
        return end

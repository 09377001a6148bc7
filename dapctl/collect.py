"""Collecting a finished job: download its parts and write them as one output file.

Parts download concurrently (a few at a time) into temporary files beside the output, each
verified by the client (complete length, whole gzip stream), and merge in order into the
declared file through the ``OutputStore`` as soon as each part and those before it are in, so
merging overlaps the downloads and a merged part's file goes at once. The store publishes the
file under its final name only when it is whole. Whatever happens, the part files are
removed. A job with no objects writes no file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

import requests

from dapctl.client import DapClient
from dapctl.errors import OutputError
from dapctl.files import open_private, temp_path_for
from dapctl.outputs import Merger, OutputStore, OutputWriter, PartCounter
from dapctl.parquet import ParquetMerger
from dapctl.wire import Job

log = logging.getLogger("dapctl.collect")

PART_WORKERS = 4


@dataclass(frozen=True)
class Written:
    files: tuple[str, ...]
    bytes: int
    records: int
    sha256: str | None


def write_output(
    client: DapClient,
    job: Job,
    *,
    fmt: str,
    path: Path,
    outputs: OutputStore,
    on_bytes: Callable[[int], None] | None = None,
) -> Written:
    """Download ``job``'s parts and merge them into ``path``; return what was written.

    ``on_bytes`` hears every change in the bytes downloaded so far (negative when a retry
    drops a cut-off part), from the download threads, for progress displays.
    """
    if not job.objects:
        log.info("job %s has no data; no file written", job.id)
        return Written((), 0, 0, None)
    try:
        return _write(client, job, fmt=fmt, path=path, outputs=outputs, on_bytes=on_bytes)
    except OSError as exc:
        if isinstance(exc, requests.RequestException):  # requests' errors are OSErrors too
            raise
        raise OutputError(
            f"{path}: cannot write the output file: {exc.strerror or exc}",
            hint="check that the output template names a file in a folder dapctl may write",
        ) from None


def _write(
    client: DapClient,
    job: Job,
    *,
    fmt: str,
    path: Path,
    outputs: OutputStore,
    on_bytes: Callable[[int], None] | None,
) -> Written:
    scratch = outputs.scratch_dir(path)
    parts = [temp_path_for(scratch / path.name, f"part{i:05d}.") for i in range(len(job.objects))]
    out = outputs.open_for_write(path)
    try:
        merger = _merger(fmt, out, compress=path.name.endswith(".gz"))
        download = _download_for(fmt, merger)
        with ThreadPoolExecutor(min(PART_WORKERS, len(parts)), "dapctl-part") as pool:
            downloads = [
                pool.submit(download, client, ref.id, part, fmt, on_bytes)
                for ref, part in zip(job.objects, parts, strict=True)
            ]
            try:
                # Merge each part as soon as it and those before it are in, while later parts
                # still download (issue 7: merging after the last download doubled the time).
                for future, part in zip(downloads, parts, strict=True):
                    _merge(merger, part, future.result())
            except BaseException:
                for future in downloads:
                    future.cancel()  # parts not yet started need not be fetched
                raise
        stats = merger.finish()
        location = out.commit()
    except BaseException:
        out.abort()
        raise
    finally:
        for part in parts:
            part.unlink(missing_ok=True)
    return Written((location,), out.size, stats.records, out.sha256)


def _merger(fmt: str, out: OutputWriter, *, compress: bool) -> Merger | ParquetMerger:
    if fmt == "parquet":
        return ParquetMerger(out=out, compress=compress)
    return Merger(fmt=fmt, out=out, compress=compress)


def _download_for(fmt: str, merger: Merger | ParquetMerger) -> Callable[..., PartCounter | None]:
    if isinstance(merger, ParquetMerger):
        return _as_is
    return _passed_through if merger.passthrough else _decompressed


def _merge(merger: Merger | ParquetMerger, part: Path, counted: PartCounter | None) -> None:
    if isinstance(merger, ParquetMerger):
        merger.add(part)  # kept until the last part is in: Parquet files merge whole
        return
    if counted is None:
        merger.add_text(part)
    else:
        merger.add_counted(part, records=counted.records, ends_open=counted.ends_open)
    part.unlink()


# The client's gzip check decompresses every part; the text it produces is used there and
# then, so no part is decompressed twice (issue 7: that was half the CPU of a large table).


def _passed_through(
    client: DapClient,
    object_id: str,
    part: Path,
    fmt: str,
    on_bytes: Callable[[int], None] | None,
) -> PartCounter:
    """Keep the part's gzip bytes as they are; count its records from the check's text."""
    counter = PartCounter(fmt)
    with open_private(part) as handle:
        client.download_object(object_id, _metered(handle, on_bytes), text=counter)
    return counter


def _as_is(
    client: DapClient,
    object_id: str,
    part: Path,
    fmt: str,
    on_bytes: Callable[[int], None] | None,
) -> None:
    """Keep the part's bytes as they came: Parquet, which has no gzip stream to check."""
    with open_private(part) as handle:
        client.download_object(object_id, _metered(handle, on_bytes), gzip=False)


def _decompressed(
    client: DapClient,
    object_id: str,
    part: Path,
    fmt: str,
    on_bytes: Callable[[int], None] | None,
) -> None:
    """Keep the part's decompressed text, for a merge that has to rewrite it anyway."""
    with open_private(part) as handle:
        client.download_object(
            object_id,
            _metered(cast(BinaryIO, _Discard()), on_bytes),
            text=_Keep(handle),
        )


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

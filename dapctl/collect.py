"""Collecting a finished job: download its parts and write them as one output file.

Parts download concurrently (a few at a time) into temporary files beside the output, each
verified by the client (complete length, whole gzip stream), then merge in order into the
declared file through the ``OutputStore``, which publishes it under its final name only when
it is whole. Whatever happens, the part files are removed. A job with no objects writes no
file.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from dapctl.client import DapClient
from dapctl.files import open_private
from dapctl.outputs import OutputStore, merge_parts
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
    client: DapClient, job: Job, *, fmt: str, path: Path, outputs: OutputStore
) -> Written:
    """Download ``job``'s parts and merge them into ``path``; return what was written."""
    if not job.objects:
        log.info("job %s has no data; no file written", job.id)
        return Written((), 0, 0, None)
    scratch = outputs.scratch_dir(path)
    parts = [scratch / f".{path.name}.part{i:05d}.dapctl-tmp" for i in range(len(job.objects))]
    out = outputs.open_for_write(path)
    try:
        with ThreadPoolExecutor(min(PART_WORKERS, len(parts)), "dapctl-part") as pool:
            downloads = [
                pool.submit(_download, client, ref.id, part, fmt != "parquet")
                for ref, part in zip(job.objects, parts, strict=True)
            ]
            for future in downloads:
                future.result()
        stats = merge_parts(parts, fmt=fmt, out=out, compress=path.name.endswith(".gz"))
        location = out.commit()
    except BaseException:
        out.abort()
        raise
    finally:
        for part in parts:
            part.unlink(missing_ok=True)
    return Written((location,), out.size, stats.records, out.sha256)


def _download(client: DapClient, object_id: str, part: Path, gzip: bool) -> None:
    with open_private(part) as handle:
        client.download_object(object_id, handle, gzip=gzip)

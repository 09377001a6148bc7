"""Keeping an Iceberg table fast: the lake URL's `upkeep` settings (``optimize_every``,
``vacuum_after``), done the Iceberg way, after a load's commit. pyiceberg has neither a
compaction nor a clean-up that deletes files, so both are here, on its own primitives.

- `compact`: bin-packing. The table's small data files (under half of `TARGET`) are read
  in bins of up to `TARGET` bytes and each bin is written back as one file, all in one
  overwrite snapshot that changes no row. Memory holds one bin at a time.
- `expire`: a snapshot is expired when it stopped being the table's current one (the next
  entry of the table's snapshot log) longer ago than ``vacuum_after``: a reader that began
  on a snapshot within the retention keeps working, which is Delta's ``VACUUM`` rule, where
  Iceberg's own "older than" would expire a snapshot that was current a minute ago. Then
  the data files, manifests and manifest lists only the expired snapshots reached are
  deleted. Metadata files (``*.metadata.json``) are kept: a reader registered on one
  (Snowflake's, BigQuery's) must not lose it.

Each is its own catalog commit, which asserts the table it read; a lost race is a warning,
as any upkeep failure: the load stays committed.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]

from dapctl.databases.lake import iceberg_cow, upkeep

log = logging.getLogger("dapctl.lake")
TARGET = 128 * 1024 * 1024  # bytes of Parquet a compacted file aims at
LOADS = "dapctl.loads"  # a table property: dapctl's loads so far, for optimize_every


def after_commit(table: Any, settings: upkeep.Upkeep, where: str) -> None:
    """Compact and clean ``table`` (just committed) as ``settings`` ask (`upkeep.run`)."""

    def compacted() -> None:
        if done := compact(table):
            log.info("%s: compacted %d files into %d", where, *done)

    def cleaned(hours: int) -> None:
        gone = expire(table.refresh(), hours * 3600 * 1000)
        log.info("%s: expired snapshots removed %d files older than %d h", where, gone, hours)

    loads = int(table.properties.get(LOADS, "0"))
    upkeep.run(settings, loads, where, compact=compacted, clean=cleaned)


def compact(table: Any) -> tuple[int, int] | None:
    """Rewrite the small data files in bins (see the module doc); the files removed and
    added, or None when there is nothing to compact."""
    meta, io = table.metadata, table.io
    small = [t for t in table.scan().plan_files() if t.file.file_size_in_bytes < TARGET // 2]
    if len(small) < 2:
        return None
    reader = iceberg_cow.reader(meta, io)
    bins = (pa.concat_tables([reader.to_table(tasks=[t]) for t in part]) for part in _bins(small))
    written = iceberg_cow.data_files(meta, io, bins)
    with table.transaction() as tx, tx.update_snapshot().overwrite() as snapshot:
        for task in small:
            snapshot.delete_data_file(task.file)
        for data_file in written:
            snapshot.append_data_file(data_file)
    return len(small), len(written)


def _bins(tasks: list[Any]) -> Iterable[list[Any]]:
    part: list[Any] = []
    size = 0
    for task in tasks:
        if part and size + task.file.file_size_in_bytes > TARGET:
            yield part
            part, size = [], 0
        part.append(task)
        size += task.file.file_size_in_bytes
    if part:
        yield part


def expire(table: Any, retention_ms: int) -> int:
    """Expire the snapshots no reader within ``retention_ms`` can be on, delete the files
    only they reached; the number of files deleted."""
    meta = table.metadata
    cutoff = int(time.time() * 1000) - retention_ms
    current = meta.current_snapshot_id
    ended = {a.snapshot_id: b.timestamp_ms for a, b in itertools.pairwise(meta.snapshot_log)}
    old = [
        s.snapshot_id
        for s in meta.snapshots
        if s.snapshot_id != current and ended.get(s.snapshot_id, cutoff) < cutoff
    ]
    if not old:
        return 0
    before = _reached(table, meta.snapshots)
    table.maintenance.expire_snapshots().by_ids(old).commit()
    after = _reached(table, table.refresh().metadata.snapshots)
    gone = before - after
    for path in sorted(gone):
        table.io.delete(path)
    return len(gone)


def _reached(table: Any, snapshots: Iterable[Any]) -> set[str]:
    """Every manifest list, manifest and live data file the ``snapshots`` read."""
    found: set[str] = set()
    seen: set[str] = set()
    for snapshot in snapshots:
        found.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(table.io):
            found.add(manifest.manifest_path)
            if manifest.manifest_path in seen:
                continue
            seen.add(manifest.manifest_path)
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
                found.add(entry.data_file.file_path)
    return found

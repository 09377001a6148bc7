"""An in-memory destination: the second ``Destination``, for tests and for embedding dapctl.

Each committed job becomes one entry of ``published``, keyed by a ``memory://`` location
(profile, target, table, kind and timestamp), holding the job's decompressed text merged in
order by the same ``Merger`` the file destination uses. Nothing is visible before
``commit``; ``abort`` leaves nothing. The contract tests run apply's core cases through it.
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path

from dapctl.api.wire import Format, Job, Mode
from dapctl.files import temp_path_for
from dapctl.outputs.destination import Landed, PartMode, Settle
from dapctl.outputs.merge import Merger, PartCounter
from dapctl.plan import NO_RECORDS, Step, publishes
from dapctl.state import Kind
from dapctl.text import compact_time


class MemoryDestination:
    def __init__(self, *, fmt: Format = "jsonl", scratch: Path) -> None:
        self.fmt = fmt
        self.scratch = scratch
        self.published: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def begin(self, step: Step, job: Job, *, kind: Kind, watermark: datetime) -> MemoryLoad:
        location = f"memory://{step.address}/{kind}-{compact_time(watermark)}.{self.fmt}"
        return MemoryLoad(self, location, kind)

    def exists(self, location: str) -> bool:
        with self._lock:
            return location in self.published

    def wire_format(self) -> tuple[Format, Mode | None]:
        return self.fmt, None

    def check(self) -> None:
        """Memory is always there."""

    def discard(self, location: str) -> None:
        with self._lock:
            self.published.pop(location, None)

    def publish(self, location: str, data: bytes) -> None:
        with self._lock:
            self.published[location] = data


class MemoryLoad:
    part_mode: PartMode = "text"

    def __init__(
        self, destination: MemoryDestination, location: str, kind: Kind = "snapshot"
    ) -> None:
        self.location = location
        self._kind = kind
        self._destination = destination
        self._chunks: list[bytes] = []
        self._merger = Merger(fmt=destination.fmt, out=self, compress=False)
        self._parts = 0

    def write(self, data: bytes) -> None:  # the merger's sink
        self._chunks.append(data)

    def part_path(self, index: int) -> Path:
        self._destination.scratch.mkdir(parents=True, exist_ok=True)
        return temp_path_for(self._destination.scratch / "part", f"{index:05d}.")

    def add_part(self, part: Path, counted: PartCounter | None) -> None:
        self._merger.add(part, counted)
        self._parts += 1

    def commit(self, settle: Settle | None = None) -> Landed:
        if not self._parts:
            return Landed.nothing()
        records = self._merger.finish().records
        if not publishes(self._kind, records):
            return Landed.nothing(NO_RECORDS)
        data = b"".join(self._chunks)
        self._destination.publish(self.location, data)
        return Landed((self.location,), len(data), records, None, shown=(self.location,))

    def abort(self) -> None:
        self._chunks.clear()

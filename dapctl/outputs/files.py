"""The file destination: a job's parts merged into one local file, published whole.

The output template, rendered for the job, gives the location: relative to the config's
folder (as the state records it) unless the template is absolute. Parts download into
temporary files beside the output (same disk, swept if a killed apply left them), merge in
order through ``Merger`` (or ``ParquetMerger``) into an ``AtomicFile``, and the file takes
its final name only on ``commit``. A job with no parts writes no file, nor does an incremental
whose parts hold no records (counted while merging, decided before publishing). ``check``
finds, before the first job is started, a folder the output cannot be written in: the one
all of the template's locations lie in (``template.literal_folder``), there or creatable.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import datetime
from pathlib import Path

from dapctl import template
from dapctl.api.wire import Format, Job, Mode
from dapctl.config import Target
from dapctl.errors import OutputError
from dapctl.files import (
    AtomicFile,
    ensure_dir,
    folder_mode,
    sweep_stale_temp_files,
    temp_path_for,
    unwritable_folder,
)
from dapctl.outputs.destination import Landed, PartMode, Settle
from dapctl.outputs.merge import Merger, PartCounter
from dapctl.outputs.parquet import ParquetMerger
from dapctl.plan import NO_RECORDS, Step, publishes
from dapctl.state import Kind

log = logging.getLogger("dapctl.outputs")

_GZIP_PARTS: dict[str, PartMode] = {"jsonl": "gzip", "csv": "body-csv", "tsv": "body-tsv"}


class FileDestination:
    def __init__(self, target: Target, *, base_dir: Path, file_mode: int = 0o600) -> None:
        self.target = target
        self.base_dir = base_dir
        self.file_mode = file_mode
        self._lock = threading.Lock()
        self._failure: OutputError | None = None
        self._checked = False

    def path_of(self, location: str) -> Path:
        return (self.base_dir / location).resolve()

    def wire_format(self) -> tuple[Format, Mode | None]:
        return self.target.format, self.target.mode

    def check(self) -> None:
        """Fail, naming the folder, if no output of this target can be written there; looked
        at once (it fails every step the same way), before a job is spent on it."""
        with self._lock:
            if not self._checked:
                self._checked = True
                folder = self.path_of(template.literal_folder(self.target.output))
                reason = unwritable_folder(folder)
                if reason is not None:
                    self._failure = OutputError(
                        f"target {self.target.name}: cannot write its files in {folder}: {reason}",
                        hint="make the folder writable, or point the target's output elsewhere",
                    )
            if self._failure is not None:
                raise self._failure

    def begin(
        self,
        step: Step,
        job: Job,
        *,
        kind: Kind,
        watermark: datetime,
        text_parts: bool = False,
    ) -> FileLoad:
        rendered = template.render(
            self.target, profile=step.profile, table=step.table, kind=kind, timestamp=watermark
        )
        path = self.path_of(rendered)
        location = (
            os.path.relpath(path, self.base_dir) if not os.path.isabs(rendered) else str(path)
        )
        fmt = self.target.format
        return FileLoad(
            Path(location).as_posix(),
            path,
            fmt=fmt,
            text_parts=text_parts,
            kind=kind,
            file_mode=self.file_mode,
        )

    def exists(self, location: str) -> bool:
        return self.path_of(location).exists()

    def discard(self, location: str) -> None:
        try:
            self.path_of(location).unlink(missing_ok=True)
        except OSError as exc:
            raise OutputError(
                f"{location}: cannot remove this unrecorded output: {exc.strerror or exc}",
                hint="remove it by hand: its records come again in the next file",
            ) from None


class FileLoad:
    def __init__(
        self,
        location: str,
        path: Path,
        *,
        fmt: str,
        text_parts: bool = False,
        kind: Kind = "snapshot",
        file_mode: int = 0o600,
    ) -> None:
        self.location = location
        self.path = path
        self._file_mode = file_mode
        self._fmt = fmt
        self._kind = kind
        self._file: AtomicFile | None = None
        self._merger: Merger | ParquetMerger | None = None
        if fmt == "parquet":
            self.part_mode: PartMode = "raw"
        elif self._compress and not text_parts:
            # Into .gz every part comes as gzip made during its download: JSON Lines as
            # served, CSV/TSV deflated again without the header (issue 13).
            self.part_mode = _GZIP_PARTS[fmt]
        else:
            self.part_mode = "text"

    @property
    def _compress(self) -> bool:
        return self.path.name.endswith(".gz")

    def part_path(self, index: int) -> Path:
        self._open()  # a path that cannot be written fails before any part downloads
        return temp_path_for(self.path, f"part{index:05d}.")

    def _open(self) -> Merger | ParquetMerger:
        if self._merger is None:
            if self.path.is_dir():
                raise OutputError(f"{self.path}: the output path is a folder, not a file")
            try:
                ensure_dir(self.path.parent, folder_mode(self._file_mode))
                for stale in sweep_stale_temp_files(self.path.parent):
                    log.info("removed %s, left by a dapctl that was killed", stale)
                self._file = AtomicFile(self.path, mode=self._file_mode)
            except OSError as exc:
                raise self._error(exc) from None
            if self._fmt == "parquet":
                self._merger = ParquetMerger(out=self._file, compress=self._compress)
            else:
                self._merger = Merger(
                    fmt=self._fmt,
                    out=self._file,
                    compress=self._compress,
                    passthrough=self.part_mode != "text",
                )
        return self._merger

    def add_part(self, part: Path, counted: PartCounter | None) -> None:
        self._open().add(part, counted)

    def commit(self, settle: Settle | None = None) -> Landed:
        if self._merger is None or self._file is None:
            log.info("%s: the job has no data; no file written", self.location)
            return Landed.nothing()
        try:
            stats = self._merger.finish()
            if not publishes(self._kind, stats.records):
                self._file.abort()
                log.info("%s: %s", self.location, NO_RECORDS)
                return Landed.nothing(NO_RECORDS)
            self._file.commit()
        except OSError as exc:
            raise self._error(exc) from None
        size, sha256 = self._file.size, self._file.sha256
        return Landed((self.location,), size, stats.records, sha256, shown=(str(self.path),))

    def abort(self) -> None:
        if self._file is not None:
            self._file.abort()

    def _error(self, exc: OSError) -> OutputError:
        return OutputError(
            f"{self.path}: cannot write the output file: {exc.strerror or exc}",
            hint="check that the output template names a file in a folder dapctl may write",
        )

"""The object-storage destination: each job's output uploaded to a bucket as one new object.

An ``output`` template that is an ``s3://``, ``gs://`` or ``az://`` URL (see ``buckets``)
names the object; the state records its URL as the location, and results show it. The job
is staged exactly as the file destination stages it, by a ``FileLoad`` (parts downloaded,
merged in order, counted, hashed; an empty incremental writes nothing), but in a private
temporary folder on the local disk (``$TMPDIR``), never in the bucket. On ``commit`` the
merged file is uploaded once with a conditional create (``Bucket.put_once``): the object
appears whole or not at all, and an existing object is never replaced. One found there
already is taken as this job's own only when it carries the same sha256 (an earlier apply
uploaded it and was killed before recording it); otherwise the step fails naming it.
Unfinished multipart uploads of the object's key, which only a killed dapctl leaves (the
state names that key as its pending output), are aborted before the upload and when the
unrecorded output is discarded. The bucket is checked (there, reachable, credentials) once,
before the first job is started (``check``), and staging folders left by killed processes
are swept then.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
from datetime import datetime
from pathlib import Path, PurePosixPath

from dapctl import template
from dapctl.api.wire import Format, Job, Mode
from dapctl.buckets import Bucket, BucketURL, parse_url
from dapctl.config import Target
from dapctl.errors import DapctlError, OutputError
from dapctl.files import left_by_dead_process, temp_path_for
from dapctl.outputs.destination import Landed, PartMode, Settle
from dapctl.outputs.files import FileLoad
from dapctl.outputs.merge import PartCounter
from dapctl.plan import Step
from dapctl.state import Kind

log = logging.getLogger("dapctl.outputs")

STAGE = "dapctl-stage"
SHA256_KEY = "dapctl-sha256"  # object metadata: what the object holds, to recognise it
ALREADY_THERE = "found whole in the bucket already (an earlier apply uploaded it)"


class ObjectDestination:
    def __init__(
        self, target: Target, *, bucket: Bucket | None = None, scratch: Path | None = None
    ) -> None:
        self.target = target
        url = parse_url(target.output)  # the bucket is literal; the config checked the rest
        self.bucket = bucket or Bucket(url.scheme, url.bucket)
        self.scratch = scratch or Path(tempfile.gettempdir())
        self._lock = threading.Lock()
        self._checked = False
        self._failure: DapctlError | None = None

    def wire_format(self) -> tuple[Format, Mode | None]:
        return self.target.format, self.target.mode

    def check(self) -> None:
        self._check()

    def begin(
        self,
        step: Step,
        job: Job,
        *,
        kind: Kind,
        watermark: datetime,
        text_parts: bool = False,
    ) -> ObjectLoad:
        self._check()
        url = parse_url(
            template.render(
                self.target, profile=step.profile, table=step.table, kind=kind, timestamp=watermark
            )
        )
        stage = temp_path_for(self.scratch / STAGE)  # a folder, made when the first part comes
        local = stage / PurePosixPath(url.key).name
        staged = FileLoad(str(url), local, fmt=self.target.format, text_parts=text_parts, kind=kind)
        return ObjectLoad(self._bucket(url), url, staged, stage)

    def exists(self, location: str) -> bool:
        url = parse_url(location)
        return self._bucket(url).exists(url.key)

    def discard(self, location: str) -> None:
        url = parse_url(location)
        bucket = self._bucket(url)
        bucket.abort_uploads(url.key)
        if bucket.exists(url.key):
            bucket.remove(url.key)

    def _bucket(self, url: BucketURL) -> Bucket:
        same = (url.scheme, url.bucket) == (self.bucket.scheme, self.bucket.name)
        return self.bucket if same else Bucket(url.scheme, url.bucket)

    def _check(self) -> None:
        """Check the bucket once (a missing or unreachable one fails every step the same way)."""
        with self._lock:
            if not self._checked:
                self._checked = True
                sweep_stages(self.scratch)
                try:
                    self.bucket.check()
                except DapctlError as exc:
                    self._failure = exc
            if self._failure is not None:
                raise self._failure


class ObjectLoad:
    def __init__(self, bucket: Bucket, url: BucketURL, staged: FileLoad, stage: Path) -> None:
        self.location = str(url)
        self.url = url
        self.part_mode: PartMode = staged.part_mode
        self._bucket = bucket
        self._staged = staged
        self._stage = stage

    def part_path(self, index: int) -> Path:
        return self._staged.part_path(index)

    def add_part(self, part: Path, counted: PartCounter | None) -> None:
        self._staged.add_part(part, counted)

    def commit(self, settle: Settle | None = None) -> Landed:
        try:
            staged = self._staged.commit(settle)
            if not staged.locations:
                return staged  # nothing to publish, and the notes say why
            notes = staged.notes if self._upload(staged) else (*staged.notes, ALREADY_THERE)
            return Landed(
                (self.location,),
                staged.bytes,
                staged.records,
                staged.sha256,
                shown=(self.location,),
                notes=notes,
            )
        finally:
            self._clean()

    def _upload(self, staged: Landed) -> bool:
        """Upload the staged file; ``False`` when this very object was there already."""
        key = self.url.key
        aborted = self._bucket.abort_uploads(key)
        if aborted:
            log.info(
                "%s: aborted %d unfinished upload(s) of a killed dapctl", self.location, aborted
            )
        metadata = {SHA256_KEY: staged.sha256 or ""}
        if self._bucket.put_once(self._staged.path, key, metadata=metadata):
            return True
        if self._bucket.metadata(key).get(SHA256_KEY) == staged.sha256:
            return False
        raise OutputError(
            f"{self.location} exists already with other contents; dapctl writes each object "
            "once and never replaces one",
            hint="another writer uses this path: give the target an output of its own, or "
            "move the object away if it is not needed",
        )

    def abort(self) -> None:
        try:
            self._staged.abort()
        finally:
            self._clean()

    def _clean(self) -> None:
        shutil.rmtree(self._stage, ignore_errors=True)


def sweep_stages(scratch: Path, name: str = STAGE) -> list[Path]:
    """Remove the staging folders (``temp_path_for(scratch / name)``) that killed dapctl
    processes left in ``scratch``."""
    removed: list[Path] = []
    with contextlib.suppress(OSError):
        for entry in scratch.iterdir():
            if not (entry.name.startswith(f".{name}.") and left_by_dead_process(entry.name)):
                continue
            if entry.is_symlink() or not entry.is_dir() or entry.stat().st_uid != os.getuid():
                continue
            shutil.rmtree(entry, ignore_errors=True)
            log.info("removed %s, left by a dapctl that was killed", entry)
            removed.append(entry)
    return removed

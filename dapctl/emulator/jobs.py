"""Query jobs, their part objects, and pre-signed object URLs.

`JobStore.create` freezes a query's result (a list of `Row`) when the job is created, splits
it into parts of ``part_size`` records and returns the job. A job is ``waiting`` for the first
half of its delay, ``running`` for the second, then ``complete`` (or ``failed`` when its table
was marked failing at creation); timing and expiry follow the injected wall clock, not the data
clock. With job caching on, an identical query (same table, kind, format, mode, window, with
unchanged data and the data clock where it was) gets the existing unexpired job back instead of
a new one, as the service does; once the data clock moves, a snapshot or an open-ended window
would end later, so a cached job is never handed back after that.

Part bytes are encoded once, on first use, and cached for the job's lifetime; a background
thread starts encoding as soon as the job exists so big downloads are ready when asked for.
Pre-signed URLs carry an expiry and an HMAC of (object id, expiry); `JobStore.verify` checks
both and the object's existence.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from dapctl.emulator.catalog import format_ts
from dapctl.emulator.data import DataStore, Row, TableData
from dapctl.emulator.formats import EXTENSIONS, encode_part


@dataclass(frozen=True)
class Query:
    """A validated query: ``since``/``until`` are data-clock seconds (None for a snapshot)."""

    format: str
    mode: str | None
    since: int | None = None
    until: int | None = None

    @property
    def kind(self) -> str:
        return "snapshot" if self.since is None else "incremental"


@dataclass
class Part:
    """One object of a job: its id, its records, and its bytes once encoded."""

    object_id: str
    rows: list[Row]
    data: bytes | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Job:
    """A query job; `to_json` renders exactly the fields the official client accepts."""

    id: str
    table: TableData
    query: Query
    created: float
    delay: float
    expires: float
    timestamp: int  # snapshot ``at`` or incremental ``until``
    schema_version: int
    parts: list[Part]
    failed: bool
    failure_type: str = "ProcessingError"  # the error type a failed job reports
    error_uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    # Set once every part is encoded: a job is not complete before its bytes are ready, so
    # downloads always come from the cache at full speed.
    ready: threading.Event = field(default_factory=threading.Event)

    def status(self, now: float) -> str:
        if now < self.created + self.delay / 2:
            return "waiting"
        if self.failed and now >= self.created + self.delay:
            return "failed"
        if now < self.created + self.delay or not self.ready.is_set():
            return "running"
        return "complete"

    def to_json(self, now: float) -> dict[str, Any]:
        status = self.status(now)
        out: dict[str, Any] = {"id": self.id, "status": status, "expires_at": iso(self.expires)}
        if status == "failed":
            message = f"query on {self.table.spec.dotted} failed (an emulator fault knob)"
            error = {"type": self.failure_type, "uuid": self.error_uuid, "message": message}
            out["error"] = error
        elif status == "complete":
            out["objects"] = [{"id": part.object_id} for part in self.parts]
            out["schema_version"] = self.schema_version
            if self.query.since is None:
                out["at"] = format_ts(self.timestamp)
            else:
                out["since"] = format_ts(self.query.since)
                out["until"] = format_ts(self.timestamp)
        return out


def iso(seconds: float) -> str:
    return format_ts(int(seconds))


class JobStore:
    """Jobs by id, objects by id, the job cache and URL signing. Thread-safe."""

    def __init__(self, data: DataStore, part_size: int, gzip_level: int, key: bytes) -> None:
        self._data = data
        self._part_size = part_size
        self._gzip_level = gzip_level
        self._key = key
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._objects: dict[str, tuple[Job, Part]] = {}
        self._cache: dict[tuple[Any, ...], Job] = {}
        self._closed = False
        self._warmer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="emulator-encode")

    def close(self) -> None:
        self._closed = True  # lets a warm-up in flight stop at the next part
        self._warmer.shutdown(wait=False, cancel_futures=True)

    def create(self, table: TableData, query: Query, now: float, **job: Any) -> tuple[Job, bool]:
        """The job for ``query``, and whether it is new (False: served from the cache)."""
        # The data clock's now is part of the key: a job cached before the clock moved holds
        # an `at` (or `until`) in the past, and a client falling back to a snapshot because
        # its window is gone would get the old snapshot back forever.
        cache_key = (table.spec.dotted, query, self._data.generation, self._data.now)
        with self._lock:
            self._purge(now)
            cached = self._cache.get(cache_key) if job.pop("use_cache") else None
            if cached is not None and not cached.failed:
                return cached, False
        new = self._build(table, query, now, **job)
        with self._lock:
            self._jobs[new.id] = new
            self._cache[cache_key] = new
            self._objects.update((p.object_id, (new, p)) for p in new.parts)
        if new.failed:
            new.ready.set()
        else:
            self._warmer.submit(self._warm, new)
        return new, True

    def _build(self, table: TableData, query: Query, now: float, **job: Any) -> Job:
        data_now = self._data.now
        if query.since is None:
            timestamp, rows = data_now, self._data.snapshot(table, data_now)
        else:
            timestamp = data_now if query.until is None else query.until
            rows = self._data.changes(table, query.since, timestamp)
        job_id = str(uuid.uuid4())
        token = uuid.uuid4().hex[:12]
        ext = EXTENSIONS[query.format]
        chunks = [rows[i : i + self._part_size] for i in range(0, len(rows), self._part_size)]
        parts = [
            Part(f"{job_id}/part-{n:05d}-{token}-c000.{ext}", chunk)
            for n, chunk in enumerate(chunks or [[]])
        ]
        return Job(
            job_id,
            table,
            query,
            now,
            job["delay"],
            now + job["lifetime"],
            timestamp,
            job["schema_version"],
            parts,
            job["failed"],
            job.get("failure_type", "ProcessingError"),
        )

    def _purge(self, now: float) -> None:
        for job_id in [j.id for j in self._jobs.values() if j.expires <= now]:
            job = self._jobs.pop(job_id)
            for part in job.parts:
                self._objects.pop(part.object_id, None)
        self._cache = {k: j for k, j in self._cache.items() if j.id in self._jobs}

    def get(self, job_id: str, now: float) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
        return job if job is not None and job.expires > now else None

    def live_object(self, object_id: str, now: float) -> tuple[Job, Part] | None:
        """An object of an unexpired, complete job, or None."""
        with self._lock:
            found = self._objects.get(object_id)
        if found is None or found[0].expires <= now or found[0].status(now) != "complete":
            return None
        return found

    def part_bytes(self, job: Job, part: Part) -> bytes:
        with part.lock:
            if part.data is None:
                records = (self._data.record(job.table, row) for row in part.rows)
                spec, query = job.table.spec, job.query
                part.data = encode_part(
                    records, spec, query.format, query.mode, self._gzip_level,
                    snapshot=query.since is None,
                )  # fmt: skip
            return part.data

    def _warm(self, job: Job) -> None:
        try:
            for part in job.parts:
                if self._closed:
                    return
                self.part_bytes(job, part)
        finally:
            job.ready.set()

    def sign(self, object_id: str, expires: int) -> str:
        message = f"{object_id}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def verify(self, object_id: str, expires: str, signature: str, now: float) -> str | None:
        """None when the URL is good, else why not (for the 403 body)."""
        good = expires.isdigit() and hmac.compare_digest(
            self.sign(object_id, int(expires)), signature
        )
        if not good:
            return "SignatureDoesNotMatch"
        if int(expires) <= now:
            return "Request has expired"
        return None

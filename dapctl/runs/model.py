"""A run's record: who ran it, when, how it ended, and each step's result.

A step entry is the `StepResult`'s JSON (address, kind, status, job, window, records, bytes,
files, schema version, duration, transient errors retried, error: its type, message and
uuid, never a secret) with ``landed``: where its data went (the files or objects written,
or the table target's ``database NAME``). ``ended`` is None while the run goes on; a run the
next one finds unended, its process gone, is marked ``interrupted``.
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Outcome = Literal["running", "succeeded", "failed", "interrupted"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class StepRun(_Model):
    address: str
    kind: str
    status: str
    job_id: str | None = None
    since: str | None = None
    until: str | None = None
    at: str | None = None
    schema_version: int | None = None
    files: list[str] = Field(default_factory=list)
    landed: str | None = None
    records: int = 0
    bytes: int = 0
    duration: float = 0.0
    transient_errors: int = 0
    throttled: int = 0  # HTTP 429s retried
    throttled_seconds: float = 0.0
    rate_limit_waits: int = 0  # waits for a slot of the client's own rate limits
    rate_limit_waits_seconds: float = 0.0
    error: dict[str, Any] | None = None
    finished: AwareDatetime | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "started", "held")

    @property
    def message(self) -> str | None:
        return None if self.error is None else f"{self.error['type']}: {self.error['message']}"


class Run(_Model):
    run_id: str
    config: str
    host: str
    pid: int
    command: str = "apply"
    round: str | None = None
    started: AwareDatetime
    ended: AwareDatetime | None = None
    outcome: Outcome = "running"
    steps: list[StepRun] = Field(default_factory=list)

    @classmethod
    def begin(cls, config: str, *, round: str | None = None, now: datetime | None = None) -> Run:
        started = now or datetime.now(UTC)
        run_id = f"{started:%Y%m%dT%H%M%S.%f}Z-{secrets.token_hex(2)}"  # sorts by start
        return cls(
            run_id=run_id,
            config=config,
            host=socket.gethostname(),
            pid=os.getpid(),
            round=round,
            started=started,
        )

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else (self.ended - self.started).total_seconds()

    def counts(self) -> dict[str, int]:
        """Steps by status."""
        out: dict[str, int] = {}
        for step in self.steps:
            out[step.status] = out.get(step.status, 0) + 1
        return out

    def to_bytes(self) -> bytes:
        return self.model_dump_json(indent=1).encode() + b"\n"

"""What an apply reports: one ``StepResult`` per step, as text lines and as JSON.

A result names its step (address and parts), the kind of job that ran, its status (``ok``,
``failed``, ``skipped``, ``started`` for ``apply --no-wait``, or ``held`` by another worker
sharing the state), the job and its window, the files written with their bytes and
records, and for a failure the server's error type, message and uuid, and how many
transient errors (retried 5xx, 429s, cut downloads) the step rode out. Results render as
one line each (as steps finish), as a summary table and verdict (at the end), as JSON, and
as a log record with the step's fields. Nothing here holds a secret: errors carry only
their user-facing text.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from dapctl.errors import ApiError, DapctlError
from dapctl.plan import Step
from dapctl.text import format_time

log = logging.getLogger("dapctl.apply")

#: ``started``: ``apply --no-wait`` recorded the job for a later apply to collect;
#: ``held``: another worker sharing the state has (or took over) the step: not a failure
Status = Literal["ok", "failed", "skipped", "started", "held"]
#: what ran: a job of that kind, or the listing of a ``tables = "all"`` namespace
StepKind = Literal["snapshot", "incremental", "resume", "list"]


@dataclass(frozen=True)
class StepError:
    type: str
    message: str
    uuid: str | None
    hint: str | None = None

    @classmethod
    def from_exception(cls, exc: DapctlError) -> StepError:
        if isinstance(exc, ApiError):
            kind = exc.error_type or (f"HTTP {exc.status}" if exc.status else type(exc).__name__)
            return cls(kind, exc.message, exc.uuid, exc.hint)
        return cls(type(exc).__name__, exc.message, None, exc.hint)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "message": self.message, "uuid": self.uuid, "hint": self.hint}


@dataclass(frozen=True)
class StepResult:
    address: str
    profile: str
    target: str
    namespace: str
    table: str
    kind: StepKind
    status: Status
    job_id: str | None = None
    at: datetime | None = None
    since: datetime | None = None
    until: datetime | None = None
    schema_version: int | None = None
    files: tuple[str, ...] = ()
    bytes: int = 0
    records: int = 0
    duration: float = 0.0
    error: StepError | None = None
    notes: tuple[str, ...] = ()
    transient_errors: int = 0  # failed attempts that a retry got past

    @classmethod
    def for_step(cls, step: Step, kind: StepKind, status: Status, **fields: Any) -> StepResult:
        return cls(
            address=step.address,
            profile=step.profile,
            target=step.target,
            namespace=step.namespace,
            table=step.table,
            kind=kind,
            status=status,
            **fields,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "profile": self.profile,
            "target": self.target,
            "namespace": self.namespace,
            "table": self.table,
            "kind": self.kind,
            "status": self.status,
            "job_id": self.job_id,
            "at": _time(self.at),
            "since": _time(self.since),
            "until": _time(self.until),
            "schema_version": self.schema_version,
            "files": list(self.files),
            "bytes": self.bytes,
            "records": self.records,
            "duration": round(self.duration, 3),
            "notes": list(self.notes),
            "transient_errors": self.transient_errors,
            "error": self.error.to_json() if self.error else None,
        }


def log_result(result: StepResult) -> None:
    """Log a finished step with its fields: an error for a failure, a warning for a skip."""
    error = result.error
    fields = {
        "event": "finished",
        "address": result.address,
        "status": result.status,
        "kind": result.kind,
        "job_id": result.job_id,
        "records": result.records,
        "bytes": result.bytes,
        "duration": round(result.duration, 3),
        "error_type": error.type if error else None,
        "error_uuid": error.uuid if error else None,
        "transient_errors": result.transient_errors,
    }
    level = {"failed": logging.ERROR, "skipped": logging.WARNING}.get(result.status, logging.INFO)
    detail = f": {error.type}: {error.message}" if error else ""
    log.log(level, "%s: %s%s", result.address, result.status, detail, extra=fields)


def all_ok(results: Sequence[StepResult]) -> bool:
    return all(result.status in ("ok", "started", "held") for result in results)


def _time(value: datetime | None) -> str | None:
    return format_time(value) if value is not None else None

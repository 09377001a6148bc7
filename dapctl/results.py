"""What an apply reports: one ``StepResult`` per step, as text lines and as JSON.

A result names its step (address and parts), the kind of job that ran, its status (``ok``,
``failed``, ``skipped``, or ``started`` for ``apply --no-wait``), the job and its window,
the files written with their bytes and records, and for a failure the server's error type,
message and uuid. Results render as one line each (as steps finish), as a summary table and
verdict (at the end), as JSON, and as a log record with the step's fields. Nothing here holds
a secret: errors carry only their user-facing text.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dapctl.errors import ApiError, DapctlError
from dapctl.plan import Step, format_time, plural
from dapctl.style import PLAIN, Style, visible_len

log = logging.getLogger("dapctl.apply")


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
    kind: str
    status: str
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

    @classmethod
    def for_step(cls, step: Step, kind: str, status: str, **fields: Any) -> StepResult:
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
            "error": self.error.to_json() if self.error else None,
        }

    def render(self, style: Style = PLAIN, *, width: int = 0) -> str:
        """One line for a human, printed as the step finishes (address padded to ``width``)."""
        status = style.status(f"{self.status:<7}", self.status)
        head = f"{status} {self.address:<{width}}  {self.kind}"
        if self.status == "ok":
            line = (
                f"{head}  {plural(self.records, 'record')}  {human_bytes(self.bytes)}  "
                f"{self.duration:.1f}s"
            )
        elif self.status == "started":
            line = f"{head}  job {self.job_id} started; a later apply collects it"
        else:
            error = self.error
            detail = f"{error.type}: {error.message}" if error else "unknown error"
            uuid = f" (error uuid {error.uuid})" if error and error.uuid else ""
            line = f"{head}  {detail}{uuid}"
            if error and error.hint:
                line += f"\n        hint: {error.hint}"
        return "\n".join([line, *(f"        note: {note}" for note in self.notes)])


def human_bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def summary(results: Sequence[StepResult]) -> str:
    counts = Counter(result.status for result in results)
    records = sum(result.records for result in results)
    size = sum(result.bytes for result in results)
    parts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    verdict = "Apply complete" if all_ok(results) else "Apply finished with failures"
    return (
        f"{verdict}: {parts or 'nothing to do'}; {plural(records, 'record')}, {human_bytes(size)}."
    )


SUMMARY_COLUMNS = ("ADDRESS", "KIND", "RECORDS", "BYTES", "TIME", "STATUS")


def summary_table(results: Sequence[StepResult], style: Style = PLAIN) -> str:
    """Every step in address order: address, kind, records, bytes, time and status."""
    rows = [
        (
            r.address,
            r.kind,
            f"{r.records:,}" if r.status == "ok" else "-",
            human_bytes(r.bytes) if r.status == "ok" else "-",
            f"{r.duration:.1f}s",
            style.status(r.status, r.status),
        )
        for r in sorted(results, key=lambda r: r.address)
    ]
    return format_table(SUMMARY_COLUMNS, rows, right=(2, 3, 4))


def format_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, right: Sequence[int] = ()
) -> str:
    """Columns padded to their widest cell (colour codes not counted), two spaces apart."""
    columns = zip(header, *rows, strict=True)
    widths = [max(visible_len(cell) for cell in column) for column in columns]

    def line(cells: Sequence[str]) -> str:
        padded = []
        for i, (cell, width) in enumerate(zip(cells, widths, strict=True)):
            pad = " " * (width - visible_len(cell))
            padded.append(pad + cell if i in right else cell + pad)
        return "  ".join(padded).rstrip()

    return "\n".join([line(header), *(line(row) for row in rows)])


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
    }
    level = {"failed": logging.ERROR, "skipped": logging.WARNING}.get(result.status, logging.INFO)
    detail = f": {error.type}: {error.message}" if error else ""
    log.log(level, "%s: %s%s", result.address, result.status, detail, extra=fields)


def all_ok(results: Sequence[StepResult]) -> bool:
    return all(result.status in ("ok", "started") for result in results)


def _time(value: datetime | None) -> str | None:
    return format_time(value) if value is not None else None

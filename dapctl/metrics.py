"""Prometheus text exposition of the tables' freshness and the last run, for node_exporter's
textfile collector (``--metrics-file``) or a scraper that runs ``dapctl status --format
prometheus``.

Per table, labelled ``{profile, target, namespace, table}``: the watermark and last success
as Unix seconds, the data's age, the last run's records, bytes and duration, and the
freshness verdict (one series per verdict, 1 for the current one). Per run
(the last apply's, when there is one): its start, duration and success, steps by status,
transient errors retried and jobs created. Names follow Prometheus' conventions (base units,
``_seconds``, ``_bytes``, ``_total`` only for counters). `write_metrics` replaces the file
atomically, so the collector never reads half of it. Nothing here can hold a secret: labels
are config names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from dapctl.files import AtomicFile
from dapctl.runs import Run
from dapctl.status import AddressStatus

VERDICTS = ("fresh", "warn", "error", "never", "unknown", "unchecked")
_TABLE = ("profile", "target", "namespace", "table")


class _Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]

    def sample(self, name: str, labels: dict[str, str], value: float) -> None:
        text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        self.lines.append(f"{name}{{{text}}} {_number(value)}")


def render(found: Sequence[AddressStatus], run: Run | None) -> str:
    """The exposition text for ``found`` (and ``run``, the last apply, if any)."""
    out = _Exposition()
    per_table: list[tuple[str, str, Callable[[AddressStatus], float | None]]] = [
        ("dapctl_table_watermark_timestamp_seconds", "The time DAP's data is as of (Unix s).",
         lambda s: _ts(s.watermark)),
        ("dapctl_table_age_seconds", "Now minus the watermark.", lambda s: s.age),
        ("dapctl_table_last_success_timestamp_seconds", "When the last job was collected.",
         lambda s: _ts(s.completed_at)),
        ("dapctl_table_last_records", "Records of the table's last run.",
         lambda s: s.last_records),
        ("dapctl_table_last_bytes", "Bytes downloaded by the table's last run.",
         lambda s: s.last_bytes),
        ("dapctl_table_last_duration_seconds", "Duration of the table's last run.",
         lambda s: s.last_duration),
    ]  # fmt: skip
    for name, help_text, value_of in per_table:
        rows = [(s, v) for s in found if (v := value_of(s)) is not None]
        if rows:
            out.family(name, "gauge", help_text)
            for status, value in rows:
                out.sample(name, _labels(status), float(value))
    if found:
        name = "dapctl_table_freshness"
        out.family(name, "gauge", "1 for the table's freshness verdict, 0 for the others.")
        for status in found:
            for verdict in VERDICTS:
                out.sample(name, {**_labels(status), "verdict": verdict}, status.verdict == verdict)
    if run is not None:
        _run(out, run)
    return "\n".join([*out.lines, ""])


def _run(out: _Exposition, run: Run) -> None:
    labels = {"config": run.config}
    facts = [
        ("dapctl_last_run_start_timestamp_seconds", "When the last apply began.",
         run.started.timestamp()),
        ("dapctl_last_run_duration_seconds", "How long the last apply took.",
         run.duration or 0.0),
        ("dapctl_last_run_success", "1 if every step of the last apply succeeded.",
         run.outcome == "succeeded"),
        ("dapctl_last_run_transient_errors", "Failed attempts the last apply retried past.",
         sum(s.transient_errors for s in run.steps)),
        ("dapctl_last_run_throttled", "HTTP 429 answers the last apply waited out.",
         sum(s.throttled for s in run.steps)),
        ("dapctl_last_run_rate_limit_wait_seconds", "Seconds the last apply waited for slots "
         "of DAP's rate limits.", sum(s.rate_limit_waits_seconds for s in run.steps)),
        ("dapctl_last_run_jobs_created", "Query jobs the last apply started.",
         sum(1 for s in run.steps if s.job_id and s.kind in ("snapshot", "incremental"))),
    ]  # fmt: skip
    for name, help_text, value in facts:
        out.family(name, "gauge", help_text)
        out.sample(name, labels, float(value))
    name = "dapctl_last_run_steps"
    out.family(name, "gauge", "Steps of the last apply, by status.")
    counts = run.counts()
    for status in ("ok", "failed", "skipped", "started", "held"):
        out.sample(name, {**labels, "status": status}, counts.get(status, 0))


def write_metrics(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` at once (node_exporter reads ``*.prom`` files)."""
    file = AtomicFile(path, mode=0o644)  # the collector runs as another user; no secret here
    try:
        file.write(text.encode())
    except BaseException:
        file.abort()
        raise
    file.commit()


def _labels(status: AddressStatus) -> dict[str, str]:
    return {k: str(getattr(status, k)) for k in _TABLE}


def _ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _number(value: float) -> str:
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

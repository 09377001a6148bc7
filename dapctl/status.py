"""``dapctl status``'s library side: how fresh every table is, and how its last run went.

`statuses(config, state, now=…)` gives one `AddressStatus` per table step the config
declares (and, for a ``tables = "all"`` target, per address its state records): the
watermark (the time DAP's data is as of), its age at ``now``, the verdict against the
target's ``freshness`` (``fresh``, ``warn`` beyond ``warn_after``, ``error`` beyond
``error_after``, ``never`` for a table never applied, ``unknown`` when its database cannot
be read, ``unchecked`` when no freshness is set), the pending job, and the last run's result
for it (from the run history). No network and no credentials: the state and each table
target's own records are all it reads. `exit_status` maps the verdicts to the command's
status: any ``error``/``never`` beyond error, else any ``warn``, else success.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from dapctl.config import Config
from dapctl.errors import ExitStatus
from dapctl.plan import plan
from dapctl.runs import Run, StepRun
from dapctl.state import State
from dapctl.text import format_time

Verdict = Literal["fresh", "warn", "error", "never", "unknown", "unchecked"]


@dataclass(frozen=True)
class AddressStatus:
    address: str
    profile: str
    target: str
    namespace: str
    table: str
    watermark: datetime | None
    age: float | None  # seconds, at `now`
    verdict: Verdict
    warn_after: float | None
    error_after: float | None
    pending_job: str | None = None
    last_status: str | None = None
    last_error: str | None = None
    last_run: str | None = None
    last_finished: datetime | None = None
    last_records: int | None = None
    last_bytes: int | None = None
    last_duration: float | None = None
    completed_at: datetime | None = None
    problem: str | None = None  # why the verdict is unknown

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "profile": self.profile,
            "target": self.target,
            "namespace": self.namespace,
            "table": self.table,
            "watermark": _time(self.watermark),
            "age_seconds": None if self.age is None else round(self.age, 3),
            "verdict": self.verdict,
            "warn_after": self.warn_after,
            "error_after": self.error_after,
            "pending_job": self.pending_job,
            "last_run": self.last_run,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "last_finished": _time(self.last_finished),
            "problem": self.problem,
        }


def statuses(
    config: Config,
    state: State,
    *,
    now: datetime,
    profiles: Sequence[str] = (),
    targets: Sequence[str] = (),
    unreachable: Mapping[str, str] | None = None,
    last: Mapping[str, tuple[Run, StepRun]] | None = None,
) -> list[AddressStatus]:
    """Every selected address's status at ``now`` (see the module doc)."""
    unreachable, last = unreachable or {}, last or {}
    steps = plan(config, state, profiles=profiles, targets=targets, unreachable=unreachable)
    keys: dict[str, tuple[str, str, str, str]] = {}
    for step in steps.steps:
        if step.action != "list":
            keys[step.address] = (step.profile, step.target, step.namespace, step.table)
            continue
        prefix = f"{step.profile}/{step.target}/{step.namespace}."
        for address in state.steps:
            if address.startswith(prefix):
                keys[address] = (step.profile, step.target, step.namespace, address[len(prefix) :])
    errors = {s.address: s.error for s in steps.steps if s.error}
    out = []
    for address in sorted(keys):
        profile, target, namespace, table = keys[address]
        fresh = config.freshness(config.target(target))
        warn = fresh.warn_after if fresh else None
        error = fresh.error_after if fresh else None
        recorded = state.step(address)
        watermark = recorded.watermark
        age = None if watermark is None else (now - watermark).total_seconds()
        problem = errors.get(address)
        verdict = _verdict(age, warn, error, problem)
        run, step_run = last.get(address, (None, None))
        out.append(
            AddressStatus(
                address, profile, target, namespace, table, watermark, age, verdict, warn,
                error,
                pending_job=recorded.pending.job_id if recorded.pending else None,
                last_status=step_run.status if step_run else None,
                last_error=step_run.message if step_run else None,
                last_run=run.run_id if run else None,
                last_finished=step_run.finished if step_run else None,
                last_records=step_run.records if step_run else None,
                last_bytes=step_run.bytes if step_run else None,
                last_duration=step_run.duration if step_run else None,
                completed_at=recorded.completed_at,
                problem=problem,
            )
        )  # fmt: skip
    return out


def _verdict(
    age: float | None, warn: float | None, error: float | None, problem: str | None
) -> Verdict:
    if problem is not None:
        return "unknown"
    if age is None:
        return "never"
    if error is not None and age > error:
        return "error"
    if warn is not None and age > warn:
        return "warn"
    return "fresh" if warn is not None or error is not None else "unchecked"


def exit_status(found: Sequence[AddressStatus]) -> ExitStatus:
    verdicts = {s.verdict for s in found}
    if "unknown" in verdicts:
        return ExitStatus.ERROR
    if verdicts & {"error", "never"}:
        return ExitStatus.STALE_ERROR
    if "warn" in verdicts:
        return ExitStatus.STALE_WARN
    return ExitStatus.SUCCESS


def _time(value: datetime | None) -> str | None:
    return None if value is None else format_time(value)

"""Starting, resuming and forgetting the query job of one step.

A step's job is recorded in the state (``pending``) as soon as the server has it, before
any polling, so a killed apply is resumed by the next one instead of starting another job.
Resuming checks the job still exists, will outlive its download and was asked for in the
format its target still wants (the config may have changed meanwhile); otherwise the job is
forgotten, along with any output it published but never recorded, and the table is planned
afresh (``plan.after_lost_job``). When an incremental window is gone the step falls back to
the snapshot ``plan.fallback_snapshot`` gives, if the config allows one, and notes why; the
job remembers the window it replaces, for apply to refuse a snapshot no later than it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dapctl.api.client import DapClient
from dapctl.api.wire import Job, QueryRequest
from dapctl.config import Config
from dapctl.errors import ApiError, SnapshotRequiredError
from dapctl.events import StepEvent
from dapctl.outputs.destination import Destination
from dapctl.plan import Step, after_lost_job, fallback_snapshot
from dapctl.state import Kind, PendingJob, StateKeeper

log = logging.getLogger("dapctl.apply")

# A resumed job must outlive its download: its objects expire with it.
RESUME_MARGIN = timedelta(minutes=5)


@dataclass
class StepJob:
    """A step's job as it moves through the pipeline."""

    step: Step
    job: Job
    kind: Kind
    since: datetime | None
    started: float
    notes: list[str] = field(default_factory=list)
    gone_since: datetime | None = None  # a fallback snapshot: the window it replaces


class JobStarter:
    def __init__(
        self,
        config: Config,
        *,
        clients: Mapping[str, DapClient],
        keeper: StateKeeper,
        destinations: Mapping[str, Destination],
        now: Callable[[], datetime],
        emit: Callable[[StepEvent], None],
    ) -> None:
        self.config = config
        self.clients = clients
        self.keeper = keeper
        self.destinations = destinations
        self.now = now
        self._emit = emit
        self.job_ids: dict[str, str] = {}  # address -> its job, for failed results

    def start_or_resume(self, step: Step, started: float) -> StepJob:
        """The step's job: the pending one if it can still be collected, else a new one."""
        if step.action != "resume" or step.job_id is None:
            return self._start(step, started)
        job, gone = self._pending_job(step, step.job_id)
        if job is None:
            log.warning(
                "%s: job %s %s; starting a new one",
                step.address,
                step.job_id,
                gone,
                extra={"event": "job_gone", "job_id": step.job_id, "status": gone},
            )
            return self._restart(step, started)
        pending = self.keeper.step(step.address).pending
        if pending is not None and pending.format is not None:
            asked = (pending.format, pending.mode)
            wanted = self.destinations[step.target].wire_format()
            if asked != wanted:  # the config changed while the job waited
                log.warning(
                    "%s: job %s was asked for as %s, the target now wants %s; starting a new one",
                    step.address,
                    job.id,
                    _shown(asked),
                    _shown(wanted),
                    extra={"event": "job_gone", "job_id": job.id, "status": "other format"},
                )
                return self._restart(step, started)
        kind: Kind = pending.kind if pending else "snapshot"
        # A fallback snapshot replaces the window since the watermark, which has not moved.
        replaced = (
            self.keeper.step(step.address).watermark if pending and pending.fallback else None
        )
        work = StepJob(step, job, kind, step.since, started, gone_since=replaced)
        self.job_ids[step.address] = job.id
        work.notes.append(f"resumed job {job.id} started by an earlier apply")
        return work

    def _pending_job(self, step: Step, job_id: str) -> tuple[Job | None, str]:
        """The recorded job if it can still be collected, else None and why not."""
        try:
            job = self.clients[step.profile].get_job(job_id)
        except ApiError as exc:
            if exc.status != 404:
                raise
            return None, "is gone"
        if self._expired(job):
            return None, "has expired"
        return job, ""

    def _restart(self, step: Step, started: float) -> StepJob:
        """Forget a pending job that can no longer be collected and plan the table afresh."""
        self.forget(step)
        target = self.config.target(step.target)
        return self._start(after_lost_job(step, target, self.keeper.step(step.address)), started)

    def forget(self, step: Step) -> None:
        """Drop a job that will never be collected, and any output it left unrecorded.

        An apply killed between publishing a file and recording it leaves that file behind;
        the next job covers its window again, so keeping it would repeat its records.
        """
        orphan = self.keeper.step(step.address).unrecorded_output
        if orphan is not None:
            log.warning(
                "%s: removing %s, written but never recorded",
                step.address,
                orphan,
                extra={"event": "orphan_removed", "address": step.address},
            )
            self.destinations[step.target].discard(orphan)
        self.keeper.update(step.address, lambda s: s.forgotten())

    def _expired(self, job: Job) -> bool:
        # Its objects go with it; a job about to expire would vanish mid-download.
        return job.expires_at is not None and job.expires_at <= self.now() + RESUME_MARGIN

    def _start(
        self,
        step: Step,
        started: float,
        *,
        notes: tuple[str, ...] = (),
        gone_since: datetime | None = None,
    ) -> StepJob:
        client = self.clients[step.profile]
        since = step.since if step.action == "incremental" else None
        kind: Kind = "incremental" if since is not None else "snapshot"
        noted = list(notes)
        destination = self.destinations[step.target]
        destination.check()  # a missing bucket fails the step before a job is spent on it
        fmt, mode = destination.wire_format()
        query = QueryRequest(format=fmt, mode=mode, since=since)
        self._emit(StepEvent(step.address, "starting"))
        try:
            job = client.start_query(step.namespace, step.table, query)
        except SnapshotRequiredError:
            snapshot = self.fallback(step, since)
            if snapshot is None:
                raise
            noted.append(snapshot.reason)
            gone_since, since, kind = since, None, "snapshot"
            job = client.start_query(
                step.namespace, step.table, query.model_copy(update={"since": None})
            )
        return self._record(step, job, kind, since, started, noted, gone_since, query)

    def fallback(self, step: Step, since: datetime | None) -> Step | None:
        """The snapshot to take when ``step``'s incremental window is gone (logged), if the
        config allows one."""
        snapshot = fallback_snapshot(step, since, self.config.settings)
        if snapshot is not None:
            log.warning(
                "%s: %s", step.address, snapshot.reason, extra={"event": "snapshot_fallback"}
            )
        return snapshot

    def snapshot_instead(self, work: StepJob, snapshot: Step) -> StepJob:
        """The job of ``work`` failed because its window is gone: start ``snapshot`` (from
        ``fallback``) in its place."""
        self.forget(work.step)
        return self._start(snapshot, work.started, notes=(snapshot.reason,), gone_since=work.since)

    def _record(
        self,
        step: Step,
        job: Job,
        kind: Kind,
        since: datetime | None,
        started: float,
        notes: list[str],
        gone_since: datetime | None,
        query: QueryRequest,
    ) -> StepJob:
        """Write the job into the state before anything waits on it, so it can be resumed."""
        pending = PendingJob(
            job_id=job.id,
            kind=kind,
            since=since,
            started_at=self.now(),
            fallback=bool(notes),
            format=query.format,
            mode=query.mode,
        )
        self.keeper.update(step.address, lambda s: s.started(pending))
        self.job_ids[step.address] = job.id
        log.info(
            "%s: %s job %s started",
            step.address,
            kind,
            job.id,
            extra={"event": "job_started", "job_id": job.id, "status": job.status},
        )
        return StepJob(step, job, kind, since, started, notes, gone_since)


def _shown(wire: tuple[str, str | None]) -> str:
    fmt, mode = wire
    return f"{fmt} ({mode})" if mode else fmt

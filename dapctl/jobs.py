"""Starting, resuming and forgetting the query job of one step.

A step's job is recorded in the state (``pending``) as soon as the server has it, before
any polling, so a killed apply is resumed by the next one instead of starting another job.
What to ask for, and whether to resume, are the plan's rules (``dapctl.plan.midrun``); this
module asks the server and the state what they need and does what they say. Resuming checks
the job still exists, will outlive its download (``plan.expired``) and was asked for in the
format its target still wants (``plan.other_format``: the config may have changed
meanwhile); otherwise the job is forgotten, along with any output it published but never
recorded, and the table is planned afresh (``plan.after_lost_job``). When an incremental
window is gone the step falls back to the snapshot ``plan.fallback_snapshot`` gives, if the
config allows one, and notes why; the job remembers the window it replaces
(``plan.fallback_ask``), for apply to refuse a snapshot no later than it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from dapctl.api.client import DapClient
from dapctl.api.wire import Job, QueryRequest
from dapctl.config import Config
from dapctl.errors import ApiError, SnapshotRequiredError
from dapctl.events import StepEvent
from dapctl.outputs.destination import Destination
from dapctl.plan import (
    Ask,
    Step,
    after_lost_job,
    ask_for,
    expired,
    fallback_ask,
    fallback_snapshot,
    other_format,
    resumed,
)
from dapctl.state import Kind, PendingJob, StateKeeper

log = logging.getLogger("dapctl.apply")


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
            return self._restart(step, started, step.job_id, gone, status=gone)
        state = self.keeper.step(step.address)
        pending = state.pending
        if pending is not None and pending.format is not None:
            wanted = self.destinations[step.target].wire_format()
            changed = other_format((pending.format, pending.mode), wanted)
            if changed is not None:
                return self._restart(step, started, job.id, changed, status="other format")
        self.job_ids[step.address] = job.id
        return _work(step, job, resumed(step, state, job.id), started)

    def _pending_job(self, step: Step, job_id: str) -> tuple[Job | None, str]:
        """The recorded job if it can still be collected, else None and why not."""
        try:
            job = self.clients[step.profile].get_job(job_id)
        except ApiError as exc:
            if exc.status != 404:
                raise
            return None, "is gone"
        if expired(job.expires_at, self.now()):
            return None, "has expired"
        return job, ""

    def _restart(
        self, step: Step, started: float, job_id: str, why: str, *, status: str
    ) -> StepJob:
        """Forget a pending job that can no longer be collected (``why``, logged) and plan
        the table afresh."""
        log.warning(
            "%s: job %s %s; starting a new one",
            step.address,
            job_id,
            why,
            extra={"event": "job_gone", "job_id": job_id, "status": status},
        )
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

    def _start(self, step: Step, started: float, ask: Ask | None = None) -> StepJob:
        """Start the job ``ask`` says (by default ``ask_for(step)``) and record it; when the
        server says its incremental window is gone, the fallback snapshot if one is allowed."""
        ask = ask if ask is not None else ask_for(step)
        client = self.clients[step.profile]
        destination = self.destinations[step.target]
        destination.check()  # a missing bucket fails the step before a job is spent on it
        fmt, mode = destination.wire_format()
        query = QueryRequest(format=fmt, mode=mode, since=ask.since)
        self._emit(StepEvent(step.address, "starting"))
        try:
            job = client.start_query(step.namespace, step.table, query)
        except SnapshotRequiredError:
            snapshot = self.fallback(step, ask.since)
            if snapshot is None:
                raise
            ask = fallback_ask(ask, snapshot)
            query = query.model_copy(update={"since": None})
            job = client.start_query(step.namespace, step.table, query)
        return self._record(step, job, ask, started, query)

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
        ask = fallback_ask(Ask(work.kind, work.since), snapshot)
        return self._start(snapshot, work.started, ask)

    def _record(
        self, step: Step, job: Job, ask: Ask, started: float, query: QueryRequest
    ) -> StepJob:
        """Write the job into the state before anything waits on it, so it can be resumed."""
        pending = PendingJob(
            job_id=job.id,
            kind=ask.kind,
            since=ask.since,
            started_at=self.now(),
            fallback=ask.fallback,
            format=query.format,
            mode=query.mode,
        )
        self.keeper.update(step.address, lambda s: s.started(pending))
        self.job_ids[step.address] = job.id
        log.info(
            "%s: %s job %s started",
            step.address,
            ask.kind,
            job.id,
            extra={"event": "job_started", "job_id": job.id, "status": job.status},
        )
        return _work(step, job, ask, started)


def _work(step: Step, job: Job, ask: Ask, started: float) -> StepJob:
    return StepJob(step, job, ask.kind, ask.since, started, list(ask.notes), ask.gone_since)

"""Carrying out a plan: start or resume each step's job, collect it, write it, record it.

Apply follows the plan and nothing else. Work runs as a pipeline over two thread pools: the
job pool starts (or resumes) each step's query job within the profile's rate limit and polls
it, so jobs run on the server while earlier tables download; the collect pool, sized by
``concurrency``, lands each finished job (``dapctl.landing``: its parts into the target's
``Destination``, then the step recorded). The job id is written to the state before
polling, so a killed apply resumes the same job; the watermark moves only once the
destination has committed the whole job, so a failed table keeps its old watermark and
nothing is skipped or counted twice. Apply talks only to the ``StateStore``,
``Destination`` and ``DapClient`` seams, and every decision it needs mid-run comes from
``plan``. A profile whose login fails or whose account is refused skips its remaining
steps; others go on. With a state many workers share (``workers``), each step is claimed
before it runs and re-planned from the record its lease reads; a step another worker has
ends ``held``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from dapctl.api.client import DapClient
from dapctl.api.wire import Job
from dapctl.config import Config, Target
from dapctl.errors import (
    ApiError,
    JobFailedError,
    NeedsReload,
    SnapshotRequiredError,
)
from dapctl.events import EventSink, StepContext, StepEvent, ignore
from dapctl.jobs import JobStarter, StepJob
from dapctl.landing import Lander
from dapctl.outcomes import Outcomes
from dapctl.outputs.destination import Destination
from dapctl.pipeline import Pipeline
from dapctl.plan import (
    Step,
    expand,
    in_turns,
    plan_table,
    reload_snapshot,
    replaced,
)
from dapctl.results import StepError, StepResult
from dapctl.state import (
    StateKeeper,
)
from dapctl.workers import Sharing, Solo

log = logging.getLogger("dapctl.apply")


@dataclass(frozen=True)
class ApplyOptions:
    concurrency: int = 4
    no_wait: bool = False
    job_timeout: float | None = None
    targets: Sequence[str] = ()
    replace: Sequence[str] = ()  # selectors of steps to take a fresh snapshot of
    # Threads that start and poll jobs, each holding its job until it completes: DAP jobs
    # run for seconds to minutes, so with many profiles this bounds the jobs in flight
    # (idle threads are never made; a thread costs little memory).
    job_workers: int = 256


class Applier:
    def __init__(
        self,
        config: Config,
        *,
        clients: Mapping[str, DapClient],
        keeper: StateKeeper,
        destinations: Callable[[Target], Destination],
        options: ApplyOptions,
        now: Callable[[], datetime],
        clock: Callable[[], float],
        on_result: Callable[[StepResult], None] = lambda result: None,
        on_event: EventSink = ignore,
        context: StepContext | None = None,
        stop: threading.Event | None = None,
        sharing: Sharing | None = None,
    ) -> None:
        self.config = config
        self.sharing = sharing or Solo()  # a Worker: steps claimed from others sharing the state
        self.clients = clients
        self.keeper = keeper
        self.destinations = {target.name: destinations(target) for target in config.targets}
        self.options = options
        self.now = now
        self.clock = clock
        self.on_result = on_result
        self.on_event = on_event
        self.context = context or StepContext(on_event)
        self.outcomes = Outcomes(
            clock=clock,
            context=self.context,
            emit=self._emit,
            on_result=on_result,
            job_id_of=lambda address: self.jobs.job_ids.get(address),
        )
        self.jobs = JobStarter(
            config,
            clients=clients,
            keeper=keeper,
            destinations=self.destinations,
            now=now,
            emit=self._emit,
        )
        self.lander = Lander(
            config,
            clients=clients,
            keeper=keeper,
            destinations=self.destinations,
            jobs=self.jobs,
            now=now,
            emit=self._emit,
            queue=self._queue,
            report=self.outcomes.report,
        )
        self.stop = stop or threading.Event()
        self._pipeline = Pipeline(self.stop)

    def run(self, steps: Sequence[Step]) -> list[StepResult]:
        """Carry out ``steps``; on Ctrl-C stop starting work, let the threads wind down
        (their sleeps raise ``Interrupted``), and re-raise once the state is consistent."""
        job_workers = min(self.options.job_workers, len(steps) * 8)
        with self._pipeline.running(job=job_workers, collect=self.options.concurrency):
            try:
                for step in in_turns(steps):  # every profile's first jobs start at once
                    self._queue(step)
                self._pipeline.wait()
                while waited := self.sharing.waiting(self.stop):  # steps other workers held
                    for step in waited:
                        self._queue(step)
                    self._pipeline.wait()
            except KeyboardInterrupt:
                self._pipeline.interrupt()
                raise
        return self.outcomes.results

    def _queue(self, step: Step) -> None:
        self._emit(StepEvent(step.address, "queued"))
        self.sharing.hold(step.address)  # a step this worker holds keeps its lease for it
        self._pipeline.spawn("job", self._job_phase, step)

    def _emit(self, event: StepEvent) -> None:
        # Downloads report each chunk: too many to log; results and listings log themselves.
        if event.phase not in ("downloading", "finished", "listed"):
            fields = {"event": event.phase, "address": event.address, "job_id": event.job_id}
            if event.status is not None:
                fields["status"] = event.status
            log.debug("%s: %s", event.address, event.status or event.phase, extra=fields)
        self.on_event(event)

    # -- the job phase ----------------------------------------------------------------------

    def _job_phase(self, step: Step) -> None:
        with self.sharing.unit(step.address):
            if step.error is not None:  # planned as failed: its database could not be read
                error = StepError("DatabaseError", step.error, None)
                self.outcomes.report(step, step.action, "failed", self.clock(), error=error)
                return
            if self.outcomes.skip_if_profile_failed(step):
                return
            claimed = self._claim(step)
            if claimed is not None:
                self._job(claimed)

    def _claim(self, step: Step) -> Step | None:
        """The step, once this worker may run it: re-planned from the state its new lease
        read (a job a dead worker recorded is resumed, not started again); None when another
        worker has it (reported, or tried again once the others are done)."""
        if step.action == "list":
            return step
        started, kind = self.clock(), step.resume_kind or step.action
        with self.context.serving(step.address), self.outcomes.errors(step, started, kind):
            claim = self.sharing.claim(step.address)
            if claim.held_by is not None and claim.wait:
                self.sharing.wait_for(step)
            elif claim.held_by is not None:
                held = StepError("ClaimedElsewhere", claim.held_by, None)
                self.outcomes.report(step, kind, "held", started, error=held)
            elif claim.stored is None:
                return step
            else:
                target = self.config.target(step.target)
                again = plan_table(step.profile, target, step.table, claim.stored)
                return replaced(again, self.options.replace)
        return None

    def _job(self, step: Step) -> None:
        started = self.clock()
        kind = step.resume_kind or step.action
        with self.context.serving(step.address), self.outcomes.errors(step, started, kind):
            if step.action == "list":
                self._expand(step)
                return
            work = self.jobs.start_or_resume(step, started)
            if self.options.no_wait:
                self.outcomes.finish(self._started_result(work))
                return
            try:
                work.job = self._wait(work)
            except SnapshotRequiredError:
                # The job itself found its window gone: a fresh snapshot, or a failed step
                # that forgets the job so the next apply does not resume it forever.
                snapshot = self.jobs.fallback(step, work.since)
                if snapshot is None:
                    self.jobs.forget(step)
                    raise
                work = self.jobs.snapshot_instead(work, snapshot)
                work.job = self._wait(work)
            except JobFailedError:
                self.jobs.forget(step)  # a failed job never completes: start anew next time
                raise
            self.sharing.hold(step.address)  # the collection keeps the step's lease
            self._pipeline.spawn("collect", self._collect_phase, work)

    def _wait(self, work: StepJob) -> Job:
        client = self.clients[work.step.profile]
        return client.wait_for_job(
            work.job, timeout=self.options.job_timeout, on_status=self._job_status(work.step)
        )

    def _expand(self, step: Step) -> None:
        target = self.config.target(step.target)
        listed = self.clients[step.profile].list_tables(step.namespace)
        chosen, unsafe = expand(
            step.profile,
            target,
            listed,
            self.keeper.state,
            self.options.targets,
            self.options.replace,
        )
        log.info(
            "%s: %d tables listed, %d selected",
            step.address,
            len(listed) - len(unsafe),
            len(chosen),
            extra={"event": "listed", "address": step.address},
        )
        for new in chosen:
            self._queue(new)
        self._emit(StepEvent(step.address, "listed"))
        if unsafe:
            names = ", ".join(repr(name) for name in unsafe[:5])
            raise ApiError(f"the server listed tables with unsafe names, not exported: {names}")

    def _job_status(self, step: Step) -> Callable[[Job], None]:
        def seen(job: Job) -> None:
            self._emit(StepEvent(step.address, "running", status=job.status, job_id=job.id))

        return seen

    def _started_result(self, work: StepJob) -> StepResult:
        return self.outcomes.result(
            work.step,
            work.kind,
            "started",
            work.started,
            job_id=work.job.id,
            since=work.since,
            notes=tuple(work.notes),
        )

    # -- the collect phase ------------------------------------------------------------------

    def _collect_phase(self, work: StepJob) -> None:
        step = work.step
        with (
            self.sharing.unit(step.address),
            self.context.serving(step.address),
            self.outcomes.errors(step, work.started, work.kind),
        ):
            try:
                self.lander.land(work)
            except NeedsReload as exc:
                snapshot = reload_snapshot(step, exc.table, exc.changes)
                if work.kind != "incremental" or snapshot is None:
                    raise
                # The table's new shape cannot be reached in place: this window is dropped
                # and a snapshot, which rebuilds the table, takes its place in this run.
                log.warning("%s: %s", step.address, snapshot.reason, extra={"event": "reload"})
                self.jobs.forget(step)
                self._queue(snapshot)

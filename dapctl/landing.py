"""Landing a finished job: its parts collected into the step's destination, then recorded.

`Lander.land` is the collect phase of apply (`dapctl.apply`): it checks the job carries the
watermark its kind needs (and is not an old job the server answered with,
``plan.stale_fallback``), begins the destination's load, refuses an incremental whose output
name another output holds (``plan.name_taken``), marks the step as writing, collects the parts
(`dapctl.collect`) with progress events, and records the completed step, in the destination's
own commit where the destination keeps it (a database table) and in the state. An empty
incremental window writes nothing (``plan.empty_window``). After a job an earlier apply
started, it queues the incremental that makes the table current (`plan.follow_up`), when that
job's data is older than ``settings.catch_up_after``. The decisions are the plan's rules; this
module asks the destination and the state what they need.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from dapctl.api.client import DapClient
from dapctl.collect import collect
from dapctl.config import Config
from dapctl.errors import ApiError
from dapctl.events import StepEvent
from dapctl.jobs import JobStarter, StepJob
from dapctl.outputs.destination import Destination, Landed, Load
from dapctl.plan import Step, empty_window, follow_up, name_taken, stale_fallback
from dapctl.results import Status, StepKind
from dapctl.state import Completed, StateKeeper, StepState

# Apply's logger: its records keep the name they had before landing was a module of its own.
log = logging.getLogger("dapctl.apply")


class Report(Protocol):
    """How a step's result is made and finished (`Applier`'s, with its duration and counts)."""

    def __call__(
        self, step: Step, kind: StepKind, status: Status, started: float, **kw: object
    ) -> None: ...


@dataclass(frozen=True)
class Lander:
    """What landing needs of the apply it serves (see the module docstring)."""

    config: Config
    clients: Mapping[str, DapClient]
    keeper: StateKeeper
    destinations: Mapping[str, Destination]
    jobs: JobStarter
    now: Callable[[], datetime]
    emit: Callable[[StepEvent], None]
    queue: Callable[[Step], None]
    report: Report

    def land(self, work: StepJob) -> None:
        """Collect ``work``'s finished job into its destination and record the step; report
        it, and queue the incremental that makes the table current if one is due."""
        step, job = work.step, work.job
        watermark = job.at if work.kind == "snapshot" else job.until
        if watermark is None:
            field_name = "at" if work.kind == "snapshot" else "until"
            raise ApiError(f"job {job.id} is complete but carries no {field_name!r}")
        stale = stale_fallback(work.gone_since, watermark)
        if stale is not None:
            self.jobs.forget(step)  # resuming it would refuse it again
            raise ApiError(
                f"job {job.id}: {stale}",
                hint="the server answered with an old job; the next apply asks again",
            )
        load = self.destinations[step.target].begin(step, job, kind=work.kind, watermark=watermark)
        completed_at = self.now()

        def done(landed: Landed) -> Completed:
            return Completed(
                watermark=watermark,
                kind=work.kind,
                schema_version=job.schema_version,
                job_id=job.id,
                files=landed.locations,
                bytes=landed.bytes,
                records=landed.records,
                sha256=landed.sha256,
                completed_at=completed_at,
            )

        def settle(landed: Landed) -> StepState:
            return self.keeper.step(step.address).completed(done(landed))

        landed = self._collect(work, load, watermark, settle)
        self.keeper.update(step.address, lambda s: s.completed(done(landed)))
        self.report(
            step,
            work.kind,
            "ok",
            work.started,
            job_id=job.id,
            at=job.at,
            since=job.since if work.kind == "incremental" else None,
            until=job.until if work.kind == "incremental" else None,
            schema_version=job.schema_version,
            files=landed.shown,
            bytes=landed.bytes,
            records=landed.records,
            notes=(*work.notes, *landed.notes),
        )
        self._catch_up(step)

    def _catch_up(self, step: Step) -> None:
        """After a job an earlier apply started, the incremental that makes the table current
        (``plan.follow_up``), in this run, if the job's data is older than the config's
        ``catch_up_after``."""
        began = self.clients[step.profile].began
        target = self.config.target(step.target)
        after = follow_up(
            step,
            target,
            self.keeper.step(step.address),
            began=began,
            catch_up_after=self.config.catch_up_after(target),
        )
        if after is not None:
            log.info("%s: %s", step.address, after.reason, extra={"event": "follow_up"})
            self.queue(after)

    def _collect(
        self, work: StepJob, load: Load, watermark: datetime, settle: Callable[[Landed], StepState]
    ) -> Landed:
        step, job = work.step, work.job
        empty = empty_window(work.kind, work.since, watermark)
        if empty is not None:
            log.info("%s: nothing new since %s; no file written", step.address, watermark)
            load.abort()
            return Landed.nothing(empty)
        pending = self.keeper.step(step.address).pending
        ours = pending is not None and pending.output == load.location  # a resumed job's own
        taken = not ours and self.destinations[step.target].exists(load.location)
        refused = name_taken(work.kind, load.location, taken=taken)
        if refused is not None:
            load.abort()
            # This job would take the same name again on every resume: let it go, so the
            # next apply starts a job with a window of its own.
            self.jobs.forget(step)
            raise refused
        self.keeper.update(step.address, lambda s: s.writing(load.location))
        try:
            on_bytes, on_part = self._download_meter(step, len(job.objects))
            return collect(
                self.clients[step.profile],
                job,
                load,
                settle=settle,
                on_bytes=on_bytes,
                on_part=on_part,
            )
        except ApiError as exc:
            if exc.status == 404:  # the job's objects are gone: the next apply starts anew
                self.jobs.forget(step)
            raise

    def _download_meter(
        self, step: Step, part_count: int
    ) -> tuple[Callable[[int], None], Callable[[], None]]:
        """Progress hooks for a download: bytes so far, and parts complete of ``part_count``."""
        lock, size, parts = threading.Lock(), [0], [0]

        def emit(count: int, done: int) -> None:
            self.emit(
                StepEvent(
                    step.address, "downloading", bytes=count, parts=done, part_count=part_count
                )
            )

        def add(count: int) -> None:
            with lock:
                size[0] += count
                now = size[0], parts[0]
            emit(*now)

        def part() -> None:
            with lock:
                parts[0] += 1
                now = size[0], parts[0]
            emit(*now)

        emit(0, 0)
        return add, part

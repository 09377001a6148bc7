"""`RunLog`: the runs of one state, one document each; `Recorder`: one run as it goes.

Run ids start with the run's UTC start time, so names sort oldest first. `Recorder.begin`
marks every unended run whose process is gone (same host, pid not alive) ``interrupted``,
writes the new run, and trims the log to the newest ``keep`` runs; each finished step
rewrites the run's document whole (the backend replaces it at once, so a kill leaves the
previous version, never half of one); `finish` writes the outcome. A run of another host
that never ended is left as ``running``: only its host can tell it is gone.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from dapctl.errors import DapctlError
from dapctl.events import EventSink, StepEvent
from dapctl.results import StepResult
from dapctl.runs.model import Outcome, Run, StepRun
from dapctl.state.documents import Documents, KeepsDocuments

log = logging.getLogger("dapctl.runs")
KIND = "runs"


class RunLog:
    """The runs kept beside one state."""

    def __init__(self, documents: Documents) -> None:
        self.documents = documents

    @property
    def location(self) -> str:
        return self.documents.location

    def ids(self) -> list[str]:
        return self.documents.names()

    def get(self, run_id: str) -> Run | None:
        data = self.documents.get(run_id)
        if data is None:
            return None
        try:
            return Run.model_validate_json(data)
        except ValidationError:
            log.warning("%s: run %s is unreadable; skipped", self.location, run_id)
            return None

    def recent(self, limit: int | None = None) -> list[Run]:
        """The newest runs first (at most ``limit``)."""
        ids = self.ids()[::-1]
        runs = (self.get(i) for i in (ids if limit is None else ids[:limit]))
        return [r for r in runs if r is not None]

    def put(self, run: Run) -> None:
        self.documents.put(run.run_id, run.to_bytes())

    def trim(self, keep: int) -> list[str]:
        ids = self.ids()
        gone = ids[: max(len(ids) - keep, 0)]
        for run_id in gone:
            self.documents.remove(run_id)
        return gone

    def mark_interrupted(self) -> list[str]:
        """Unended runs of this host whose process is gone, marked ``interrupted``."""
        host, marked = socket.gethostname(), []
        for run_id in self.ids():
            run = self.get(run_id)
            if run is None or run.ended is not None or run.host != host or _alive(run.pid):
                continue
            ended = max([run.started, *(s.finished for s in run.steps if s.finished)])
            self.put(run.model_copy(update={"ended": ended, "outcome": "interrupted"}))
            marked.append(run_id)
        return marked


def run_log(store: object) -> RunLog | None:
    """The run log beside ``store``'s state, if its backend keeps documents."""
    return RunLog(store.documents(KIND)) if isinstance(store, KeepsDocuments) else None


def last_results(runs: Iterable[Run]) -> dict[str, tuple[Run, StepRun]]:
    """Each address's newest step entry (``runs`` newest first), with its run."""
    found: dict[str, tuple[Run, StepRun]] = {}
    for run in runs:
        for step in run.steps:
            found.setdefault(step.address, (run, step))
    return found


class Recorder:
    """Writes one run to a `RunLog` as it goes; a failure to write is logged, never raised:
    the history must not fail the apply it describes."""

    def __init__(self, runs: RunLog | None, run: Run, *, keep: int) -> None:
        self.runs, self.run, self.keep = runs, run, keep
        self.outcome: Outcome = "failed"  # until the apply says otherwise
        self._waits: dict[str, dict[str, float]] = {}

        self._mutex = threading.Lock()

    def observing(self, sink: EventSink) -> EventSink:
        """``sink``, with the rate-limit waits and 429s of each step counted on the way."""

        def observe(event: StepEvent) -> None:
            throttled = event.phase == "retrying" and (event.detail or "").startswith("HTTP 429")
            if event.phase == "waiting" or throttled:
                kind = "throttled" if throttled else "rate_limit_waits"
                with self._mutex:
                    counts = self._waits.setdefault(event.address, {})
                    counts[kind] = counts.get(kind, 0) + 1
                    counts[f"{kind}_seconds"] = counts.get(f"{kind}_seconds", 0.0) + (
                        event.seconds or 0.0
                    )
            sink(event)

        return observe

    def begin(self) -> None:
        self._safely(self._begin)

    def _begin(self, runs: RunLog) -> None:
        for run_id in runs.mark_interrupted():
            log.warning("run %s did not finish (its process is gone): marked interrupted", run_id)
        runs.put(self.run)
        runs.trim(self.keep)

    def step(self, result: StepResult, landed: str | None = None) -> None:
        with self._mutex:
            waits = dict(self._waits.get(result.address, {}))
        entry = StepRun.model_validate(
            {**result.to_json(), **waits, "landed": landed, "finished": datetime.now(UTC)}
        )
        with self._mutex:
            self.run = self.run.model_copy(update={"steps": [*self.run.steps, entry]})
            run = self.run
        self._safely(lambda runs: runs.put(run))

    def finish(self, outcome: Outcome) -> Run:
        with self._mutex:
            self.run = self.run.model_copy(update={"ended": datetime.now(UTC), "outcome": outcome})
            run = self.run
        self._safely(lambda runs: runs.put(run))
        return run

    def _safely(self, write: Any) -> None:
        if self.runs is None:
            return
        try:
            write(self.runs)
        except DapctlError as exc:
            log.warning("could not record the run in %s: %s", self.runs.location, exc.message)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

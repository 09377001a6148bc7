"""A plan's value: one ``Step`` per table (its next job and why), and the ``Plan`` of them.

Both are frozen and carry no behaviour beyond their renderings: ``describe`` for people (as
``dapctl.cli.render`` shows it) and ``to_json`` for ``dapctl plan --json``.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from dapctl.config import address_of
from dapctl.state import Kind
from dapctl.text import format_time

Action = Literal["snapshot", "incremental", "resume", "list"]


@dataclass(frozen=True)
class Step:
    """One table's next job. ``table`` is ``"*"`` for a ``list`` step."""

    profile: str
    target: str
    namespace: str
    table: str
    action: Action
    reason: str
    since: datetime | None = None
    job_id: str | None = None  # resume: the pending job
    resume_kind: Kind | None = None  # resume: what that job is
    error: str | None = None  # why this step cannot run (its database could not be read)

    @property
    def address(self) -> str:
        return address_of(self.profile, self.target, self.namespace, self.table)

    def as_snapshot(self, reason: str) -> Step:
        """This table's step as a fresh snapshot instead, for ``reason``."""
        return dataclasses.replace(
            self, action="snapshot", since=None, job_id=None, resume_kind=None, reason=reason
        )

    def describe(self) -> str:
        if self.error is not None:
            return "cannot run"
        if self.action == "incremental":
            return f"incremental since {format_time(self.since)}"
        if self.action == "resume":
            return f"resume {self.resume_kind} job {self.job_id}"
        if self.action == "list":
            return f"list {self.namespace} tables at apply"
        return "snapshot"

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "profile": self.profile,
            "target": self.target,
            "namespace": self.namespace,
            "table": None if self.action == "list" else self.table,
            "action": self.action,
            "since": format_time(self.since) if self.since else None,
            "job_id": self.job_id,
            "resume_kind": self.resume_kind,
            "reason": self.reason,
            "error": self.error,
        }


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]

    @property
    def has_changes(self) -> bool:
        return bool(self.steps)

    def to_json(self) -> dict[str, Any]:
        counts = Counter(step.action for step in self.steps)
        return {"steps": [s.to_json() for s in self.steps], "summary": dict(sorted(counts.items()))}

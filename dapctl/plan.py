"""The planner: which job each table needs next, as a pure function of config and state.

``plan(config, state)`` does no I/O, reads no clock and talks to no server. For every
(profile, target, table) it returns one ``Step``: a ``snapshot`` (no watermark yet, or
``sync = "snapshot"``), an ``incremental`` since the stored watermark (or since the target's
``since`` on a first run), or ``resume`` of a job an earlier apply started and did not
collect. A target with ``tables = "all"`` stays one ``list`` step that apply expands with
``plan_table`` once it has listed the namespace. Apply carries out the plan and never
re-derives intent. A plan renders as Terraform-like text and as JSON.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from dapctl.config import Config, Target, address_of
from dapctl.errors import ConfigError
from dapctl.state import State, StepState

Action = Literal["snapshot", "incremental", "resume", "list"]
LEGEND = "Legend: + snapshot  ~ incremental  > resume a started job  ? list tables, then plan each"
SYMBOLS: dict[Action, str] = {"snapshot": "+", "incremental": "~", "resume": ">", "list": "?"}


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
    resume_kind: str | None = None  # resume: what that job is

    @property
    def address(self) -> str:
        return address_of(self.profile, self.target, self.namespace, self.table)

    def describe(self) -> str:
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

    def render_text(self) -> str:
        if not self.steps:
            return "Nothing to do: no step matches."
        width = max(len(s.address) for s in self.steps)
        described = [s.describe() for s in self.steps]
        action_width = max(len(d) for d in described)
        lines = [
            f"  {SYMBOLS[s.action]} {s.address:<{width}}  {d:<{action_width}}  ({s.reason})"
            for s, d in zip(self.steps, described, strict=True)
        ]
        counts = Counter(step.action for step in self.steps)
        summary = ", ".join(f"{n} {action}" for action, n in sorted(counts.items()))
        return "\n".join(
            [f"Plan: {plural(len(self.steps), 'step')} ({summary})", "", *lines, "", LEGEND]
        )


def plan(
    config: Config,
    state: State,
    *,
    profiles: Sequence[str] = (),
    targets: Sequence[str] = (),
) -> Plan:
    """The steps for every selected (profile, target, table), in config order."""
    unknown = [p for p in profiles if p not in config.profiles]
    if unknown:
        raise ConfigError(
            f"--profile {unknown[0]}: no such profile; profiles are: {', '.join(config.profiles)}"
        )
    steps = [
        step
        for target in config.targets
        for profile in config.target_profiles(target)
        if not profiles or profile in profiles
        for step in _target_steps(profile, target, state)
        if not targets or matches(step, targets)
    ]
    for selector in targets:
        if not any(matches(step, [selector]) for step in steps):
            raise ConfigError(
                f"--target {selector}: matches no step",
                hint="addresses look like profile/target/namespace.table; globs such as "
                "'univ_a/*' or '*/core/canvas.*' and plain target names work too",
            )
    return Plan(tuple(steps))


def _target_steps(profile: str, target: Target, state: State) -> list[Step]:
    if target.tables == "all":
        return [
            Step(profile, target.name, target.namespace, "*", "list", 'tables = "all"'),
        ]
    return [
        plan_table(
            profile,
            target,
            table,
            state.step(address_of(profile, target.name, target.namespace, table)),
        )
        for table in target.tables
    ]


def plan_table(profile: str, target: Target, table: str, step: StepState) -> Step:
    """The next job for one table, given what state remembers about it."""
    here = (profile, target.name, target.namespace, table)
    if step.pending is not None:
        return Step(
            *here,
            "resume",
            "a job an earlier apply started is still to be collected",
            since=step.pending.since,
            job_id=step.pending.job_id,
            resume_kind=step.pending.kind,
        )
    if target.sync == "snapshot":
        return Step(*here, "snapshot", 'sync = "snapshot": a full snapshot every run')
    if step.watermark is not None:
        return Step(*here, "incremental", "continues from the last run", since=step.watermark)
    if target.since is not None:
        return Step(*here, "incremental", "first run; since from the config", since=target.since)
    return Step(*here, "snapshot", "first run: no watermark in state")


def matches(step: Step, selectors: Sequence[str]) -> bool:
    """Whether a ``--target`` selector (address, glob or target name) picks this step."""
    return any(_matches(step, selector) for selector in selectors)


def _matches(step: Step, selector: str) -> bool:
    candidates = (step.address, f"{step.profile}/{step.target}", step.target)
    if any(fnmatch.fnmatchcase(candidate, selector) for candidate in candidates):
        return True
    if step.action != "list":
        return False
    # The tables of a "list" step are known only at apply, which filters them again; here
    # a table-level selector picks the step when its profile, target and namespace fit.
    parts = selector.split("/")
    if len(parts) != 3:
        return False
    namespace = parts[2].split(".", 1)[0]
    return all(
        fnmatch.fnmatchcase(value, pattern)
        for value, pattern in zip(
            (step.profile, step.target, step.namespace), (*parts[:2], namespace), strict=True
        )
    )


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def format_time(value: datetime | None) -> str:
    """RFC 3339 in UTC with a ``Z``, as the API writes it."""
    if value is None:
        return "-"
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")

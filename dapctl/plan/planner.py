"""The planner: which job each table needs next, as a pure function of config and state.

``plan(config, state)`` does no I/O, reads no clock and talks to no server. For every
(profile, target, table) it returns one ``Step``: a ``snapshot`` (no watermark yet, or
``sync = "snapshot"``), an ``incremental`` since the stored watermark (or since the target's
``since`` on a first run), or ``resume`` of a job an earlier apply started and did not
collect. A database target's step is what its database holds (``outputs.records``): a table
that is not there is a first run, and the step says why; a target whose database could not be
read gets steps with an ``error``, which apply reports as failed without starting a job. A
target with ``tables = "all"`` stays one ``list`` step that apply expands with ``expand``
once it has listed the namespace. ``--target`` and ``--replace`` selectors pick steps
(``matches``, ``replaced``); ``orphans`` are the addresses no target declares any more.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from collections.abc import Mapping, Sequence
from itertools import zip_longest

from dapctl.config import (
    IDENTIFIER_MAX_LENGTH,
    IDENTIFIER_PATTERN,
    Config,
    Target,
    address_of,
)
from dapctl.errors import ConfigError
from dapctl.plan.step import Plan, Step
from dapctl.state import State, StepState


def plan(
    config: Config,
    state: State,
    *,
    profiles: Sequence[str] = (),
    targets: Sequence[str] = (),
    replace: Sequence[str] = (),
    unreachable: Mapping[str, str] | None = None,
) -> Plan:
    """The steps for every selected (profile, target, table), in config order; the steps
    ``replace`` selectors pick take a fresh snapshot whatever their state says. The steps of
    a target whose database is in ``unreachable`` (name -> why) carry that error."""
    unknown = [p for p in profiles if p not in config.profiles]
    if unknown:
        raise ConfigError(
            f"--profile {unknown[0]}: no such profile; profiles are: {', '.join(config.profiles)}"
        )
    steps = [
        replaced(step, replace)
        for target in config.targets
        for profile in config.target_profiles(target)
        if not profiles or profile in profiles
        for step in _blocked(_target_steps(profile, target, state), target, unreachable or {})
        if not targets or matches(step, targets)
    ]
    for option, selectors in (("--target", targets), ("--replace", replace)):
        for selector in selectors:
            if not any(matches(step, [selector]) for step in steps):
                raise _matches_nothing(option, selector, config, state, profiles)
    return Plan(tuple(steps))


def _blocked(steps: list[Step], target: Target, unreachable: Mapping[str, str]) -> list[Step]:
    """The steps, each carrying the error of its target's database if it could not be read."""
    why = unreachable.get(target.database) if target.database is not None else None
    if why is None:
        return steps
    error = f"database {target.database} could not be read: {why}"
    return [dataclasses.replace(step, error=error, reason=error) for step in steps]


def in_turns(steps: Sequence[Step]) -> list[Step]:
    """The steps with the profiles taking turns (each profile's in their order): the first
    step of each profile, then the second of each, and so on.

    Profiles have budgets of their own. In the plan's order, the job threads would all be
    taken by the first profiles' steps, most of them waiting for a rate-limit window, while
    later profiles' quota lay unused; in turns, every profile starts its first jobs at once.
    """
    queues: dict[str, list[Step]] = {}
    for step in steps:
        queues.setdefault(step.profile, []).append(step)
    turns = zip_longest(*queues.values())
    return [step for turn in turns for step in turn if step is not None]


def _matches_nothing(
    option: str, selector: str, config: Config, state: State, profiles: Sequence[str]
) -> ConfigError:
    every = [
        step
        for target in config.targets
        for profile in config.target_profiles(target)
        for step in _target_steps(profile, target, state)
    ]
    elsewhere = sorted({s.profile for s in every if matches(s, [selector])})
    if elsewhere:
        return ConfigError(
            f"{option} {selector}: matches no step of profile {', '.join(profiles)}; it matches "
            f"steps of {', '.join(elsewhere)}, which --profile leaves out",
            hint=f"add --profile {elsewhere[0]}, or drop --profile",
        )
    example = every[0] if every else None
    shown = (
        f"'{example.address}', '{example.profile}/*' or '*/{example.target}/*'"
        if example is not None
        else "'univ_a/core/canvas.users' or 'univ_a/*'"
    )
    return ConfigError(
        f"{option} {selector}: matches no step",
        hint=f"addresses look like profile/target/namespace.table: {shown}; a target's name "
        "works too",
    )


REPLACED = "--replace: a fresh snapshot, whatever the state holds"


def replaced(step: Step, replace: Sequence[str]) -> Step:
    """``step``, or a fresh snapshot of its table when a ``--replace`` selector picks it (a
    ``list`` step's tables are replaced as apply lists them)."""
    if step.action == "list" or not replace or not matches(step, replace):
        return step
    return step.as_snapshot(REPLACED)


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
    if step.reload is not None:
        return Step(*here, "snapshot", step.reload)
    if step.watermark is not None:
        return Step(*here, "incremental", "continues from the last run", since=step.watermark)
    if target.since is not None:
        reason = f"{step.absent}: since from the config" if step.absent else None
        return Step(
            *here,
            "incremental",
            reason or "first run; since from the config",
            since=target.since,
        )
    return Step(*here, "snapshot", step.absent or "first run: no watermark in state")


def matches(step: Step, selectors: Sequence[str]) -> bool:
    """Whether a ``--target`` selector (address, glob or target name) picks this step."""
    return any(_matches(step, selector) for selector in selectors)


def _matches(step: Step, selector: str) -> bool:
    candidates = (step.address, f"{step.profile}/{step.target}", step.target)
    if any(fnmatch.fnmatchcase(candidate, selector) for candidate in candidates):
        return True
    if step.action != "list":
        return False
    # The tables of a "list" step are known only at apply, which filters them again; here a
    # table-level selector ("*.users", "univ_a/*/canvas_logs.web_*") picks the step when what
    # comes before its table part fits the step's profile/target/namespace.
    head, dot, table = selector.rpartition(".")
    if not dot or "/" in table:
        return False
    return fnmatch.fnmatchcase(f"{step.profile}/{step.target}/{step.namespace}", head)


def orphans(config: Config, state: State) -> list[str]:
    """The addresses in ``state`` that no target declares any more (a renamed or removed
    target or profile): apply neither continues nor forgets them."""
    exact: set[str] = set()
    listed: set[str] = set()  # profile/target/namespace of tables = "all" targets
    for target in config.targets:
        for profile in config.target_profiles(target):
            if target.tables == "all":
                listed.add(f"{profile}/{target.name}/{target.namespace}")
            else:
                exact.update(
                    address_of(profile, target.name, target.namespace, t) for t in target.tables
                )
    return [
        address
        for address in state.steps
        if address not in exact and address.rpartition(".")[0] not in listed
    ]


def expand(
    profile: str,
    target: Target,
    listed: Sequence[str],
    state: State,
    selectors: Sequence[str],
    replace: Sequence[str] = (),
) -> tuple[list[Step], list[str]]:
    """A ``list`` step's tables, once the server has listed them: the steps to run (those the
    ``--target`` selectors pick, in name order) and the names refused as unsafe.

    A name becomes a path segment: one that is not a plain identifier is never used, but it
    does not hold up the tables listed beside it.
    """
    safe = sorted(t for t in listed if _is_identifier(t))
    unsafe = [t for t in listed if not _is_identifier(t)]
    steps = [
        plan_table(
            profile,
            target,
            table,
            state.step(address_of(profile, target.name, target.namespace, table)),
        )
        for table in safe
    ]
    chosen = [replaced(s, replace) for s in steps if not selectors or matches(s, selectors)]
    return chosen, unsafe


def _is_identifier(name: str) -> bool:
    """A name fit for a path segment: the characters, and the length, a config allows."""
    return len(name) <= IDENTIFIER_MAX_LENGTH and bool(re.fullmatch(IDENTIFIER_PATTERN, name))

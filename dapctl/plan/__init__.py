"""Planning: every decision apply needs, mid-run ones included, as pure functions.

Nothing here does I/O, reads a clock or talks to a server; what apply learns comes in as
arguments. Import the names from ``dapctl.plan``; its modules:

- ``step``: the plan's value, a ``Step`` per table (its next job and why) and the ``Plan``.
- ``planner``: ``plan(config, state)``, the ``--target`` and ``--replace`` selections,
  ``plan_table`` for one table, ``expand`` for a listed namespace, ``orphans``.
- ``midrun``: the rules apply asks mid-run, when the server or a destination has told it what
  the plan could not know: which job to ask for or resume, what replaces a job that is gone
  or a window that is gone, and what a finished job writes.
"""

from __future__ import annotations

from dapctl.plan.midrun import (
    NO_RECORDS,
    RESUME_MARGIN,
    Ask,
    after_lost_job,
    ask_for,
    empty_window,
    expired,
    fallback_ask,
    fallback_snapshot,
    follow_up,
    name_taken,
    other_format,
    publishes,
    reload_snapshot,
    resumed,
    stale_fallback,
)
from dapctl.plan.planner import (
    REPLACED,
    expand,
    in_turns,
    matches,
    orphans,
    plan,
    plan_table,
    replaced,
)
from dapctl.plan.step import Action, Plan, Step

__all__ = [
    "NO_RECORDS",
    "REPLACED",
    "RESUME_MARGIN",
    "Action",
    "Ask",
    "Plan",
    "Step",
    "after_lost_job",
    "ask_for",
    "empty_window",
    "expand",
    "expired",
    "fallback_ask",
    "fallback_snapshot",
    "follow_up",
    "in_turns",
    "matches",
    "name_taken",
    "orphans",
    "other_format",
    "plan",
    "plan_table",
    "publishes",
    "reload_snapshot",
    "replaced",
    "resumed",
    "stale_fallback",
]

"""Keeping a lake table fast: small-file compaction and old-file clean-up, both opt-in; the
settings, and Delta's way (`after_commit`; Iceberg's is `iceberg_upkeep`).

Every incremental adds a few small files, and every snapshot leaves the old ones behind; a
table kept for a year is thousands of files a reader must open, and a bucket that keeps
every file ever written. Two settings, as query parameters of the lake's URL
(``delta+file:///srv/lake?optimize_every=20&vacuum_after=7d``):

- ``optimize_every = N``: after every Nth load of a table, compact its small files
  (Delta ``OPTIMIZE``: a commit of its own that changes no row, so readers and the table's
  step record are unaffected).
- ``vacuum_after = DURATION`` (``7d``, ``36h``): with each compaction (or after every load,
  when ``optimize_every`` is not set), delete the files no version younger than that still
  needs (Delta ``VACUUM``). A reader reading a version within the duration keeps working;
  time travel further back stops working, which is what the setting asks for. Delta's own
  default, 7 days, is the floor a shorter setting must be asked for knowingly: it is allowed,
  and the README says what it costs.

Upkeep runs after the load's commit: a failure (a concurrent writer, a full disk) is logged
as a warning and the load stays committed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dapctl.databases.lake.stores import secrets
from dapctl.errors import ConfigError
from dapctl.redaction import scrub

log = logging.getLogger("dapctl.lake")
_DURATION = re.compile(r"(\d+)([hd])")


@dataclass(frozen=True)
class Upkeep:
    optimize_every: int | None = None
    vacuum_hours: int | None = None


NONE = Upkeep()  # the default: neither


def parse(query: str, url: str) -> Upkeep:
    """The settings in a lake URL's query (``a=1&b=2``); `ConfigError` naming a bad one."""
    settings: dict[str, str] = {}
    for pair in filter(None, query.split("&")):
        name, _, value = pair.partition("=")
        if name not in ("optimize_every", "vacuum_after"):
            raise ConfigError(
                f"lake URL {url!r}: unknown setting {name!r}; a lake URL takes "
                "optimize_every=N and vacuum_after=DURATION (7d, 36h)"
            )
        settings[name] = value
    every = settings.get("optimize_every")
    if every is not None and (not every.isdigit() or int(every) < 1):
        raise ConfigError(f"lake URL {url!r}: optimize_every must be a whole number >= 1")
    after = settings.get("vacuum_after")
    hours = None
    if after is not None:
        found = _DURATION.fullmatch(after)
        if found is None:
            raise ConfigError(
                f"lake URL {url!r}: vacuum_after must be a duration such as 7d or 36h"
            )
        hours = int(found.group(1)) * (24 if found.group(2) == "d" else 1)
    return Upkeep(int(every) if every else None, hours)


def run(
    upkeep: Upkeep,
    loads: int,
    where: str,
    *,
    compact: Callable[[], None],
    clean: Callable[[int], None],
) -> None:
    """The schedule both formats keep: ``compact`` after every ``optimize_every``-th load
    (``loads``: the table's count, this one's included), ``clean`` (given the hours) with
    each compaction, or after every load without ``optimize_every``. Never raises: a failure
    is a warning, its secrets scrubbed, and the load stays committed."""
    every, hours = upkeep.optimize_every, upkeep.vacuum_hours
    due = every is not None and loads % every == 0
    try:
        if due:
            compact()
        if hours is not None and (due or every is None):
            clean(hours)
    except Exception as exc:  # upkeep never undoes a committed load
        said = scrub(str(exc), secrets())
        log.warning("%s: upkeep failed, the load stays committed: %s", where, said)


def after_commit(dt: Any, upkeep: Upkeep, where: str) -> None:
    """Compact and clean the Delta table ``dt`` (just committed) as ``upkeep`` asks (`run`),
    by delta-rs's ``OPTIMIZE`` and ``VACUUM``."""

    def compact() -> None:
        done = dt.optimize.compact()
        log.info("%s: compacted %s files into %s", where,
                 done.get("numFilesRemoved"), done.get("numFilesAdded"))  # fmt: skip

    def clean(hours: int) -> None:
        gone = dt.vacuum(retention_hours=hours, dry_run=False, enforce_retention_duration=False)
        log.info("%s: vacuum removed %d files older than %d h", where, len(gone), hours)

    run(upkeep, dt.transaction_version("dapctl") or 0, where, compact=compact, clean=clean)

"""Settings of one emulator instance: identity, sizes, timings and rate limits.

`EmulatorSettings` is a frozen value fixed when the emulator starts; the knobs that may change
while it runs live in `faults.Faults` instead. Presets: `EmulatorSettings.embedded()` (the
in-process emulator behind a profile with ``emulator = true``: demo credentials, no waiting,
small tables whose data moves with the wall clock) and `EmulatorSettings.for_tests()` (the
pytest fixtures' defaults). Durations are seconds; table sizes are rows; part sizes are
records per part. ``rows`` overrides the size of one table by its dotted name, and a dotted
name the catalog does not know adds a generic table of that size
(``rows={"canvas.big": 1_000_000}`` for benchmarks).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from dapctl.budgets import BUDGETS, BY_NAME

# Public and fake on purpose: the quickstart must run on a fresh machine without credentials.
DEMO_CLIENT_ID = "us-east-1#dapctl-demo"
DEMO_CLIENT_SECRET = "dapctl-demo-secret-not-a-real-credential"  # noqa: S105

DAY = 86400.0


@dataclass(frozen=True, init=False)
class RateLimits:
    """Requests allowed per client and endpoint class within one sliding window.

    The endpoint classes and their defaults are ``dapctl.budgets.BUDGETS``: the real service's
    published limits, independent budgets ("reaching the limit for one request type or
    endpoint does not impact the limits for other types or endpoints"), given by name
    (``RateLimits(jobs=1)``). Benchmarks shrink ``window`` to compress "one minute of quota"
    into less wall time.
    """

    window: float
    per_window: tuple[tuple[str, int], ...]  # (endpoint class, calls), a row per budget

    def __init__(self, window: float = 60.0, **per_window: int) -> None:
        limits = tuple((b.name, per_window.get(b.name, b.per_minute)) for b in BUDGETS)
        object.__setattr__(self, "window", window)
        object.__setattr__(self, "per_window", limits)
        unknown = sorted(set(per_window) - set(BY_NAME))
        if unknown:
            raise ValueError(f"no endpoint class {unknown}; there are {sorted(BY_NAME)}")

    def limit(self, endpoint_class: str) -> int:
        """The number of calls allowed per window for one endpoint class."""
        return dict(self.per_window)[endpoint_class]


GENEROUS_LIMITS = RateLimits(**{budget.name: 100_000 for budget in BUDGETS})


@dataclass(frozen=True)
class EmulatorSettings:
    """Everything fixed at start-up; see the module docstring for units and presets."""

    seed: int = 0
    client_id: str = DEMO_CLIENT_ID
    client_secret: str = field(default=DEMO_CLIENT_SECRET, repr=False)
    # Further (client_id -> secret) pairs, so several profiles can share one emulator.
    clients: Mapping[str, str] = field(default_factory=dict, repr=False)
    host: str = "127.0.0.1"
    port: int = 0
    token_lifetime: float = 3600.0
    # True: the real service's limits; False/None: unlimited; or explicit RateLimits.
    rate_limits: RateLimits | bool | None = True
    job_delay: float = 2.0
    job_lifetime: float = DAY
    url_lifetime: float = 900.0
    start: dt.datetime | None = None
    retention: float = 30 * DAY
    history: float = 365 * DAY
    rows_per_table: int = 1000
    rows: Mapping[str, int] = field(default_factory=dict)
    part_size: int = 50_000
    gzip_level: int = 1
    schema_version: int = 1
    # The data moves with the wall clock (see `live`); ``start`` is then when changes begin.
    live: bool = False

    def __post_init__(self) -> None:
        # Frozen, so callers cannot mutate the mappings behind the running server's back.
        object.__setattr__(self, "clients", MappingProxyType(dict(self.clients)))
        object.__setattr__(self, "rows", MappingProxyType(dict(self.rows)))
        if self.part_size < 1 or self.rows_per_table < 0:
            raise ValueError("part_size must be >= 1 and rows_per_table >= 0")
        if self.start is not None and self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware")

    @property
    def limits(self) -> RateLimits | None:
        """The effective rate limits, or None when unlimited."""
        if self.rate_limits is True:
            return RateLimits()
        if self.rate_limits is False or self.rate_limits is None:
            return None
        return self.rate_limits

    def all_clients(self) -> dict[str, str]:
        """Every accepted (client_id -> secret) pair."""
        return {self.client_id: self.client_secret, **self.clients}

    def with_(self, **changes: Any) -> EmulatorSettings:
        """A copy with some fields changed."""
        return replace(self, **changes)

    @classmethod
    def embedded(cls, **overrides: Any) -> EmulatorSettings:
        """For ``emulator = true`` profiles: a few tables apply in a couple of seconds, and
        their data moves with the wall clock, so a later run sees inserts, updates, deletes."""
        base = cls(rate_limits=GENEROUS_LIMITS, job_delay=0.0, rows_per_table=100, live=True)
        return base.with_(**overrides)

    @classmethod
    def for_tests(cls, **overrides: Any) -> EmulatorSettings:
        """The fixtures' defaults: unlimited, instant jobs, tiny tables, a fixed data clock."""
        base = cls(
            rate_limits=None,
            job_delay=0.0,
            rows_per_table=40,
            part_size=1000,
            start=dt.datetime(2026, 11, 2, 12, 0, 0, tzinfo=dt.UTC),
        )
        return base.with_(**overrides)

"""Counters of what the emulator served, for tests to assert on ("resume made no new job").

`Stats` counts logins, jobs, polls, URL requests, downloads and bytes, injected faults, and
responses by status. Attributes read as plain ints; `as_dict` gives a consistent copy (what
``GET /_emulator/stats`` returns) and `reset` zeroes everything.
"""

from __future__ import annotations

import threading
from typing import Any

COUNTERS = (
    "logins",
    "login_failures",
    "tables_listed",
    "schemas",
    "jobs_created",
    "jobs_reused",
    "job_polls",
    "url_requests",
    "urls_issued",
    "downloads",
    "downloads_cut",
    "bytes_served",
    "rate_limited",
    "injected_errors",
)


class Stats:
    """Thread-safe counters; see the module docstring."""

    logins: int
    login_failures: int
    tables_listed: int
    schemas: int
    jobs_created: int
    jobs_reused: int
    job_polls: int
    url_requests: int
    urls_issued: int
    downloads: int
    downloads_cut: int
    bytes_served: int
    rate_limited: int
    injected_errors: int
    responses: dict[int, int]

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            for name in COUNTERS:
                setattr(self, name, 0)
            self.responses = {}

    def incr(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    def response(self, status: int) -> None:
        with self._lock:
            self.responses[status] = self.responses.get(status, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {name: getattr(self, name) for name in COUNTERS}
            out["responses"] = {str(k): v for k, v in sorted(self.responses.items())}
            return out

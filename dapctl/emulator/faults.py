"""Fault knobs: live, thread-safe switches that make the emulator misbehave on purpose.

Every knob can be set at construction (``Faults(error_every=3)``), through a helper method
(``faults.fail_logins(2, status=403)``), through `Faults.update` with plain values (what the
``POST /_emulator/faults`` endpoint and the CLI flags use), and changed while the server runs.
``None`` for a duration means "use the value from the settings". The ``next_*`` methods are
the server's side: each call consumes one event from a counter under the lock, so "every Nth"
is exact even with concurrent requests.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

LOGIN_FAILURE_STATUSES = (400, 403)
EXPIRED_TOKEN_STATUSES = (401, 403)
ERROR_STATUSES = (429, 500, 502, 503, 504)
ACCOUNT_STATES = (
    "AccountNotOnboarded",
    "AccountDisabled",
    "AccountUnderMaintenance",
    "RequestTypeForbidden",
)
_FIELDS: dict[str, tuple[type, ...]] = {
    "token_lifetime": (float, int, type(None)),
    "login_failures": (int,),
    "login_failure_status": (int,),
    "expired_token_status": (int,),
    "error_every": (int,),
    "error_status": (int,),
    "error_retry_after": (int, type(None)),
    "error_html": (bool,),
    "cut_every": (int,),
    "job_delay": (float, int, type(None)),
    "url_lifetime": (float, int, type(None)),
    "failing_tables": (list, set, tuple),
    "failed_job_type": (str,),
    "account_states": (dict,),
    "cache_jobs": (bool,),
}
KNOBS = tuple(_FIELDS)
_CHOICES: dict[str, tuple[int, ...]] = {
    "login_failure_status": LOGIN_FAILURE_STATUSES,
    "expired_token_status": EXPIRED_TOKEN_STATUSES,
    "error_status": ERROR_STATUSES,
}


@dataclass(frozen=True)
class InjectedError:
    """One injected API failure: its status, ``Retry-After`` (429 only) and body kind."""

    status: int
    retry_after: int | None
    html: bool


class Faults:
    """The knobs; see the module docstring. Counters reset when a knob is updated."""

    token_lifetime: float | None
    login_failures: int
    login_failure_status: int
    expired_token_status: int
    error_every: int
    error_status: int
    error_retry_after: int | None
    error_html: bool
    cut_every: int
    job_delay: float | None
    url_lifetime: float | None
    failing_tables: set[str]
    failed_job_type: str
    account_states: dict[str, str]
    cache_jobs: bool

    def __init__(self, **values: Any) -> None:
        self._lock = threading.Lock()
        self._api_calls = 0
        self._downloads = 0
        defaults: dict[str, Any] = {
            "token_lifetime": None,
            "login_failures": 0,
            "login_failure_status": 403,
            "expired_token_status": 401,
            "error_every": 0,
            "error_status": 429,
            "error_retry_after": 1,
            "error_html": False,
            "cut_every": 0,
            "job_delay": None,
            "url_lifetime": None,
            "failing_tables": set(),
            "failed_job_type": "ProcessingError",
            "account_states": {},
            "cache_jobs": True,
        }
        for name, value in defaults.items():
            setattr(self, name, value)
        self.update(**values)

    def update(self, **values: Any) -> None:
        """Set knobs by name, validating names, types and allowed statuses."""
        for name, value in values.items():
            _validate(name, value)
        with self._lock:
            for name, value in values.items():
                if name == "failing_tables":
                    value = set(value)
                elif name == "account_states":
                    value = dict(value)
                setattr(self, name, value)
            self._api_calls = self._downloads = 0

    def as_dict(self) -> dict[str, Any]:
        """The knobs as JSON-ready values."""
        with self._lock:
            out = {name: getattr(self, name) for name in _FIELDS}
        out["failing_tables"] = sorted(out["failing_tables"])
        out["account_states"] = dict(out["account_states"])
        return out

    def fail_logins(self, count: int, status: int = 403) -> None:
        """Make the next ``count`` logins fail with 400 or 403."""
        self.update(login_failures=count, login_failure_status=status)

    def fail_every(
        self, every: int, status: int = 429, retry_after: int | None = 1, html: bool = False
    ) -> None:
        """Answer every ``every``-th /dap/ call with ``status`` (0 turns it off)."""
        self.update(
            error_every=every, error_status=status, error_retry_after=retry_after, error_html=html
        )

    def cut_downloads(self, every: int) -> None:
        """Cut every ``every``-th download off halfway through its body (0 turns it off)."""
        self.update(cut_every=every)

    def fail_table(self, namespace: str, table: str, failing: bool = True) -> None:
        """Make new jobs on one table end ``failed`` (or stop doing so)."""
        with self._lock:
            tables = set(self.failing_tables)
            (tables.add if failing else tables.discard)(f"{namespace}.{table}")
            self.failing_tables = tables

    def set_account_state(self, client_id: str, state: str | None) -> None:
        """Answer a client's /dap/ calls with 403 ``state`` (None restores access)."""
        if state is not None and state not in ACCOUNT_STATES:
            raise ValueError(f"account state must be one of {ACCOUNT_STATES}, got {state!r}")
        with self._lock:
            states = dict(self.account_states)
            if state is None:
                states.pop(client_id, None)
            else:
                states[client_id] = state
            self.account_states = states

    def next_login_failure(self) -> int | None:
        """The status to fail this login with, consuming one pending failure."""
        with self._lock:
            if self.login_failures <= 0:
                return None
            self.login_failures -= 1
            return self.login_failure_status

    def next_api_error(self) -> InjectedError | None:
        """The injected failure for this /dap/ call, if it is an Nth one."""
        with self._lock:
            if self.error_every <= 0:
                return None
            self._api_calls += 1
            if self._api_calls % self.error_every:
                return None
            retry_after = self.error_retry_after if self.error_status == 429 else None
            return InjectedError(self.error_status, retry_after, self.error_html)

    def next_download_cut(self) -> bool:
        """Whether to cut this download off halfway."""
        with self._lock:
            if self.cut_every <= 0:
                return False
            self._downloads += 1
            return self._downloads % self.cut_every == 0


def _validate(name: str, value: Any) -> None:
    if name not in _FIELDS:
        raise ValueError(f"unknown fault knob {name!r}; known: {', '.join(sorted(_FIELDS))}")
    types = _FIELDS[name]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise ValueError(f"fault knob {name!r} got {value!r}")
    if name in _CHOICES and value not in _CHOICES[name]:
        raise ValueError(f"fault knob {name!r} must be one of {_CHOICES[name]}, got {value!r}")
    if isinstance(value, dict) and not set(value.values()) <= set(ACCOUNT_STATES):
        raise ValueError(f"account states must be among {ACCOUNT_STATES}")
    if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        raise ValueError(f"fault knob {name!r} must not be negative")

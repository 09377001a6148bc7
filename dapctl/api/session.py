"""Turning resolved profiles into API clients (and an embedded emulator's, when asked).

``connect`` is a context manager: for the profiles a command uses it builds one HTTP session,
token provider, rate limiters and ``DapClient`` per profile, and, if any of them says
``emulator = true``, starts one in-process emulator with the connection's ``demo`` factory
(which the wiring supplies: ``dapctl.wiring.embedded``) for the duration of the command.
Everything is closed on exit. Tests and benchmarks pass ``window`` (the rate limits' window)
and their own clock and sleeper.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter

from dapctl.api.auth import TokenProvider
from dapctl.api.budget import budget_path, credential_key, kept
from dapctl.api.client import DapClient
from dapctl.api.ratelimit import RateLimits, SendLedger
from dapctl.budgets import BUDGETS, RateLimitSettings
from dapctl.config import Config
from dapctl.credentials import Credentials
from dapctl.errors import ConfigError, Interrupted

# The embedded emulator grants a generous quota (the quickstart must finish in seconds);
# `dapctl emulator` and the real service keep the published limits.
EMBEDDED_LIMITS = RateLimitSettings(**{budget.key: 60000.0 for budget in BUDGETS})


# Given the clock, a block in which an embedded emulator runs: profile -> its credentials.
DemoFactory = Callable[[Callable[[], float]], AbstractContextManager[Callable[[str], Credentials]]]


@dataclass(frozen=True)
class Connection:
    """How dapctl talks to the servers: injected clock and sleeper, rate-limit window."""

    clock: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    window: float = 60.0
    timeout: tuple[float, float] = (10.0, 60.0)
    poll_initial: float = 0.5
    poll_max: float = 15.0
    pool_size: int = 32
    on_wait: Callable[[float], None] | None = None  # told of every rate-limit wait
    keep_budgets: bool = True  # record sends for the next process (api.budget)
    ledger: SendLedger | None = None  # a shared state's budgets, for every worker anywhere
    # Starts the embedded emulator for ``emulator = true`` profiles (the wiring passes
    # dapctl.wiring.embedded's; the API client itself never imports the emulator).
    demo: DemoFactory | None = None


def interruptible(sleep: Callable[[float], None], stop: threading.Event) -> Callable[[float], None]:
    """A sleeper that wakes at once when ``stop`` is set and raises ``Interrupted``.

    Every wait of an apply (polls, backoffs, rate-limit slots) goes through it, so Ctrl-C
    winds the worker threads down in moments instead of after their jobs finish.
    """

    def wait(seconds: float) -> None:
        if sleep is time.sleep:
            stopped = stop.wait(seconds)
        else:
            sleep(seconds)
            stopped = stop.is_set()
        if stopped:
            raise Interrupted("interrupted before this step finished; the next apply resumes it")

    return wait


@contextlib.contextmanager
def connect(
    config: Config,
    credentials: Mapping[str, Credentials | None],
    *,
    connection: Connection | None = None,
) -> Iterator[dict[str, DapClient]]:
    """Clients for the given profiles (``None`` credentials: the embedded emulator)."""
    conn = connection or Connection()
    with contextlib.ExitStack() as stack:
        if any(creds is None for creds in credentials.values()):
            if conn.demo is None:
                raise ConfigError(
                    "emulator = true needs the embedded emulator, which this command cannot start"
                )
            demo = stack.enter_context(conn.demo(conn.clock))
        clients = {}
        for name, given in credentials.items():
            creds = given if given is not None else demo(name)
            session = stack.enter_context(_session(conn.pool_size, creds.ca_bundle))
            client = clients[name] = _client(config, name, creds, session, conn)
            if given is None:  # an embedded emulator is new each run
                continue
            if conn.ledger is not None:
                client.limits.share(conn.ledger, credential_key(creds.base_url, creds.client_id))
            elif conn.keep_budgets:
                path = budget_path(creds.base_url, creds.client_id, os.environ)
                stack.enter_context(
                    kept(client.limits, path, wall=conn.clock, monotonic=conn.monotonic)
                )
        yield clients


class _VerifyingAdapter(HTTPAdapter):
    """Certificate checks that no setting can switch off.

    requests lets ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` override a session's CA bundle,
    and an empty ``CURL_CA_BUNDLE`` even disables verification. Here the profile's
    ``ca_bundle`` wins, an environment bundle is honoured only when it names a file, and
    ``verify`` is never false.
    """

    def __init__(self, *, ca_bundle: Path | None, pool_size: int) -> None:
        super().__init__(pool_connections=4, pool_maxsize=pool_size)
        self._ca_bundle = ca_bundle

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        if self._ca_bundle is not None:
            verify = str(self._ca_bundle)
        elif not (isinstance(verify, str) and verify):
            verify = True
        return super().send(request, stream, timeout, verify, cert, proxies)


@contextlib.contextmanager
def _session(pool_size: int, ca_bundle: Path | None = None) -> Iterator[requests.Session]:
    session = requests.Session()
    session.mount("https://", _VerifyingAdapter(ca_bundle=ca_bundle, pool_size=pool_size))
    session.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=pool_size))
    try:
        yield session
    finally:
        session.close()


def fetch_token(config: Config, creds: Credentials, *, connection: Connection | None = None) -> str:
    """Log in as one profile and return the access token (``dapctl token``)."""
    conn = connection or Connection()
    with _session(conn.pool_size, creds.ca_bundle) as session:
        return _tokens(config, creds.profile, creds, session, conn).token()


def _tokens(
    config: Config, name: str, creds: Credentials, session: requests.Session, conn: Connection
) -> TokenProvider:
    return TokenProvider(
        session=session,
        base_url=creds.base_url,
        client_id=creds.client_id,
        client_secret=creds.client_secret,
        profile=name,
        retry=config.retry,
        clock=conn.clock,
        sleep=conn.sleep,
        refresh_margin=config.settings.refresh_margin,
        timeout=conn.timeout,
    )


def _client(
    config: Config, name: str, creds: Credentials, session: requests.Session, conn: Connection
) -> DapClient:
    tokens = _tokens(config, name, creds, session, conn)
    profile = config.profiles[name]
    settings = profile.rate_limits
    if profile.emulator and "rate_limits" not in profile.model_fields_set:
        settings = EMBEDDED_LIMITS
    limits = RateLimits.from_settings(
        settings,
        clock=conn.monotonic,
        sleep=conn.sleep,
        window=conn.window,
        on_wait=conn.on_wait,
        profile=name,
    )
    return DapClient(
        session=session,
        base_url=creds.base_url,
        tokens=tokens,
        limits=limits,
        retry=config.retry,
        clock=conn.clock,
        sleep=conn.sleep,
        timeout=conn.timeout,
        poll_initial=conn.poll_initial,
        poll_max=conn.poll_max,
    )

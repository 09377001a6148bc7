"""Turning resolved profiles into API clients, starting the embedded emulator when asked.

``connect`` is a context manager: for the profiles a command uses it builds one HTTP session,
token provider, rate limiters and ``DapClient`` per profile, and, if any of them says
``emulator = true``, starts one in-process emulator on a free loopback port with its demo
credentials for the duration of the command. Everything is closed on exit. Tests and
benchmarks pass ``window`` (the rate limits' window) and their own clock and sleeper.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import requests
from pydantic import SecretStr
from requests.adapters import HTTPAdapter

from dapctl.auth import TokenProvider
from dapctl.client import DapClient
from dapctl.config import Config, RateLimitSettings
from dapctl.credentials import Credentials
from dapctl.errors import Interrupted
from dapctl.ratelimit import RateLimits

# The embedded emulator grants a generous quota (the quickstart must finish in seconds);
# `dapctl emulator` and the real service keep the published limits.
EMBEDDED_LIMITS = RateLimitSettings(
    jobs_per_minute=6000, status_per_minute=60000, urls_per_minute=60000
)


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
            demo = stack.enter_context(_embedded_emulator())
        clients = {}
        for name, creds in credentials.items():
            session = stack.enter_context(_session(conn.pool_size))
            clients[name] = _client(
                config, name, creds if creds is not None else demo(name), session, conn
            )
        yield clients


@contextlib.contextmanager
def _embedded_emulator() -> Iterator[Callable[[str], Credentials]]:
    from dapctl.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Emulator, EmulatorSettings

    with Emulator(EmulatorSettings.embedded()) as emulator:

        def demo(profile: str) -> Credentials:
            return Credentials(
                profile, emulator.base_url, DEMO_CLIENT_ID, SecretStr(DEMO_CLIENT_SECRET)
            )

        yield demo


@contextlib.contextmanager
def _session(pool_size: int) -> Iterator[requests.Session]:
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    try:
        yield session
    finally:
        session.close()


def fetch_token(config: Config, creds: Credentials, *, connection: Connection | None = None) -> str:
    """Log in as one profile and return the access token (``dapctl token``)."""
    conn = connection or Connection()
    with _session(conn.pool_size) as session:
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

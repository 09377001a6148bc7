"""Access tokens for one profile: log in to the Identity Service, keep the token fresh, share it.

``TokenProvider.token()`` returns a bearer token that will outlive the next call: it logs in
when there is none and refreshes ahead of expiry (the JWT's ``exp``, else ``expires_in``),
``refresh_margin`` seconds early. Logging in happens under a lock, so any number of threads
sharing a profile cause one login, never a stampede. ``invalidate(token)`` is for callers
that met a 401/403: it drops the token only if it is still the current one, so many threads
rejected together cause one re-login. Login follows the Identity Service's documentation:
``POST /ids/auth/login`` with HTTP Basic credentials and ``grant_type=client_credentials``.
Its 400 and 403 are retried under ``[retry]`` like 429 and 5xx, since gateways hand out
transient ones; then the profile fails with an ``AuthError`` naming it, the status, the
server's message and uuid. The secret and the token never reach a message, log or repr.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import requests
from pydantic import SecretStr, ValidationError

from dapctl import __version__
from dapctl.api.retry import api_error, build_retrying, no_answer_reason, unreachable_hint
from dapctl.api.wire import TokenResponse
from dapctl.config import RetrySettings
from dapctl.errors import ApiError, AuthError

log = logging.getLogger("dapctl.auth")

#: lifetime assumed for a token that states none, short so a wrong guess costs little
FALLBACK_LIFETIME = 600.0
#: login statuses that gateways hand out spuriously, retried like 5xx
LOGIN_RETRY_STATUSES = frozenset({400, 403})


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT in epoch seconds, unverified: the server checks signatures."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


@dataclass(frozen=True)
class _Token:
    value: str = field(repr=False)
    expires: float  # epoch seconds
    refresh_at: float


class TokenProvider:
    """The bearer token of one profile, shared by every thread working for that profile."""

    def __init__(
        self,
        *,
        session: requests.Session,
        base_url: str,
        client_id: str,
        client_secret: SecretStr,
        profile: str,
        retry: RetrySettings,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        refresh_margin: float = 300.0,
        timeout: tuple[float, float] = (10.0, 60.0),
    ) -> None:
        self.profile = profile
        self.logins = 0  # how many logins succeeded: for stats and tests
        self._session = session
        self._url = base_url.rstrip("/") + "/ids/auth/login"
        self._client_id = client_id
        self._secret = client_secret
        self._clock = clock
        self._margin = refresh_margin
        self._timeout = timeout
        self._retrying = build_retrying(
            retry,
            sleep=sleep,
            describe=f"login for profile {profile!r}",
            extra_statuses=LOGIN_RETRY_STATUSES,
        )
        self._lock = threading.Lock()
        self._current: _Token | None = None
        self._failed: AuthError | None = None  # a login that failed for good, after retries

    def __repr__(self) -> str:
        return f"TokenProvider(profile={self.profile!r}, expires_at={self.expires_at})"

    @property
    def expires_at(self) -> datetime | None:
        """When the current token expires (UTC), or None when there is none."""
        current = self._current  # one read, no lock: a login in progress must not block this
        return None if current is None else datetime.fromtimestamp(current.expires, tz=UTC)

    def token(self) -> str:
        """A token good for the next call, logging in first if needed (once for all threads)."""
        with self._lock:
            if self._failed is not None:
                # The login already failed after its retries: the threads queued behind it
                # must not each run the whole retry schedule again.
                raise AuthError(
                    self._failed.message,
                    status=self._failed.status,
                    error_type=self._failed.error_type,
                    uuid=self._failed.uuid,
                    hint=self._failed.hint,
                )
            if self._current is None or self._clock() >= self._current.refresh_at:
                try:
                    self._current = self._login()
                except AuthError as exc:
                    self._failed = exc
                    raise
            return self._current.value

    def invalidate(self, token: str) -> None:
        """Forget ``token`` after the server refused it, unless a newer one replaced it."""
        with self._lock:
            if self._current is not None and self._current.value == token:
                log.info("profile %r: token refused by the server; logging in again", self.profile)
                self._current = None

    def _login(self) -> _Token:
        # Called with the lock held: other threads wait for this login instead of racing it.
        log.info("profile %r: logging in to %s", self.profile, self._url)
        try:
            answer: TokenResponse = self._retrying(self._attempt)
        except ApiError as exc:
            raise self._failure(exc) from exc
        except requests.RequestException as exc:
            raise AuthError(
                f"profile {self.profile!r}: cannot reach the Identity Service at {self._url} "
                f"({no_answer_reason(exc)})",
                hint=unreachable_hint(exc),
            ) from exc
        value, now = answer.access_token.get_secret_value(), self._clock()
        expires = jwt_expiry(value) or 0.0
        if expires <= now:
            # No exp, or our clock runs past the server's: trust the stated lifetime instead
            # of logging in again on every call.
            expires = now + (answer.expires_in or FALLBACK_LIFETIME)
        # A token shorter-lived than twice the margin is renewed at half its life instead,
        # or every call would log in again.
        refresh_at = expires - min(self._margin, (expires - now) / 2)
        self.logins += 1
        log.info("profile %r: logged in; token valid for %.0f s", self.profile, expires - now)
        return _Token(value, expires, refresh_at)

    def _attempt(self) -> TokenResponse:
        response = self._session.post(
            self._url,
            auth=(self._client_id, self._secret.get_secret_value()),
            data={"grant_type": "client_credentials"},
            headers={"User-Agent": f"dapctl/{__version__}", "Accept": "application/json"},
            timeout=self._timeout,
        )
        if not response.ok:
            raise api_error(response, what="login", now=self._clock())
        try:
            return TokenResponse.model_validate_json(response.content)
        except (ValidationError, RecursionError):
            # The body may hold a token in an unexpected shape: never quote it.
            raise ApiError(
                f"login answered HTTP {response.status_code} without a usable access_token",
                status=response.status_code,
            ) from None

    def _failure(self, exc: ApiError) -> AuthError:
        hint = f"check the client ID and secret of profile {self.profile!r}"
        if exc.status is not None and (exc.status == 429 or exc.status >= 500):
            hint = "the Identity Service is failing or busy; try again later"
        return AuthError(
            f"profile {self.profile!r}: {exc.message}",
            status=exc.status,
            error_type=exc.error_type,
            uuid=exc.uuid,
            hint=hint,
        )

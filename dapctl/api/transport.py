"""Sending one DAP API call: the retry policy, the rate limiter, the token, error translation.

``Transport.call`` runs a call under the ``[retry]`` policy; each attempt (the server counts
every request) takes a slot from the endpoint class's limiter and a bearer token, logging in
before the slot so a slow login cannot make a request miss it. A 401 or 403 on a call drops
the token, logs in again and repeats that call once. An answer is read whole within its
deadline and ``MAX_ANSWER`` bytes and returned as parsed JSON. Failures become ``ApiError``
with the server's status, type, message and uuid, or ``SnapshotRequiredError`` when the
incremental window is gone. The transport also opens pre-signed download URLs (without the
token) and remembers the server's time when it first answered (``began``). With ``--debug``
every exchange is one record on the ``dapctl.http`` logger, never a header value or a query.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests
import tenacity

from dapctl import __version__
from dapctl.api.auth import TokenProvider
from dapctl.api.ratelimit import RateLimiter
from dapctl.api.retry import api_error, build_retrying, no_answer_reason, unreachable_hint
from dapctl.config import RetrySettings
from dapctl.errors import ApiError, SnapshotRequiredError

http_log = logging.getLogger("dapctl.http")  # one debug record per request (--debug)

CHUNK = 1 << 20
#: the most an API answer (not a download) may take to arrive, and its largest size
ANSWER_SECONDS = 300.0
MAX_ANSWER = 64 << 20
#: error types meaning "this incremental window is gone: take a snapshot" (dap-api.md §4)
SNAPSHOT_REQUIRED = frozenset({"SnapshotRequired", "OutOfRange"})


def snapshot_required(error_type: str | None) -> bool:
    """Whether a server error type says the incremental window is gone."""
    return (error_type or "").removesuffix("Error") in SNAPSHOT_REQUIRED


class _Call:
    """What one logical call remembers across its attempts: whether it has re-logged in,
    and by when its answer must be in."""

    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline
        self.reauthenticated = False


class Transport:
    """One profile's HTTP exchanges with DAP; safe to share among threads."""

    def __init__(
        self,
        *,
        session: requests.Session,
        base_url: str,
        tokens: TokenProvider,
        retry: RetrySettings,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        timeout: tuple[float, float],
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._tokens = tokens
        self._retry = retry
        self._clock = clock
        self._sleep = sleep
        self._timeout = timeout
        self._user_agent = f"dapctl/{__version__}"
        self._began: datetime | None = None
        self._began_lock = threading.Lock()

    @property
    def base(self) -> str:
        """The API's base URL, without a trailing slash."""
        return self._base

    @property
    def began(self) -> datetime | None:
        """The server's time (its ``Date`` header) when it first answered; ``None`` if it
        never said."""
        return self._began

    @property
    def attempts(self) -> int:
        """How many attempts the ``[retry]`` policy allows a call or a download."""
        return self._retry.attempts

    def retrying(self, describe: str) -> tenacity.Retrying:
        """The ``[retry]`` policy for one call or download, logged as ``describe``."""
        return build_retrying(self._retry, sleep=self._sleep, describe=describe)

    def call(
        self,
        limiter: RateLimiter,
        method: str,
        path: str,
        body: Any = None,
        *,
        deadline: float | None = None,
    ) -> Any:
        """The parsed JSON answer to one API call, retried under the policy."""
        what = f"{method} {path}"
        retrying = self.retrying(what)
        call = _Call(deadline)
        try:
            return retrying(self._attempt, limiter, method, path, body, call)
        except requests.RequestException as exc:
            raise ApiError(
                f"{what}: no answer from {self._base} after {self._retry.attempts} attempts "
                f"({no_answer_reason(exc)})",
                hint=unreachable_hint(exc),
            ) from exc

    def get_presigned(self, url: str) -> requests.Response:
        """A streamed GET of a pre-signed URL, to be used as a context manager."""
        # No bearer token here: the URL is pre-signed, and the token must not leave DAP.
        headers = {"User-Agent": self._user_agent, "Accept-Encoding": "identity"}
        return self._session.get(url, headers=headers, stream=True, timeout=self._timeout)

    def download_error(self, response: requests.Response, what: str) -> ApiError:
        """The error for a refused download, the server's details included."""
        return api_error(response, what=what, now=self._clock())

    def _attempt(self, limiter: RateLimiter, method: str, path: str, body: Any, call: _Call) -> Any:
        response, answer, token = self._send(limiter, method, path, body, call.deadline)
        if response.status_code in (401, 403) and not call.reauthenticated:
            # An expired or revoked token: gateways say 403 where the service says 401.
            call.reauthenticated = True
            self._tokens.invalidate(token)
            response, answer, _ = self._send(limiter, method, path, body, call.deadline)
        if not response.ok:
            raise self._error(response, answer, f"{method} {path}")
        try:
            return json.loads(answer)
        except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            raise ApiError(
                f"{method} {path}: the answer is not JSON",
                status=response.status_code,
            ) from None

    def _send(
        self, limiter: RateLimiter, method: str, path: str, body: Any, deadline: float | None
    ) -> tuple[requests.Response, bytes, str]:
        # A login can take long (backoff): do it before taking the slot, or the request would
        # go out long after its slot and crowd the next window. Ask again after the wait,
        # which is free unless the wait outlasted the refresh margin.
        self._tokens.token()
        with limiter.slot() as slot:
            token = self._tokens.token()
            headers = {
                "Authorization": f"Bearer {token}",
                "User-Agent": self._user_agent,
                "Accept": "application/json",
            }
            response = self._session.request(
                method,
                self._base + path,
                json=body,
                headers=headers,
                timeout=self._timeout,
                stream=True,
            )
            self._heard_from(response)
            log_exchange(method, path, response)
            if response.status_code == 429:
                slot.refused()  # the server did not count it; its Retry-After is the cost
            with response:
                answer = self._read(response, f"{method} {path}", deadline)
        return response, answer, token

    def _heard_from(self, response: requests.Response) -> None:
        if self._began is not None:
            return
        try:
            said = parsedate_to_datetime(response.headers.get("Date", ""))
        except (TypeError, ValueError):
            return
        with self._began_lock:
            if self._began is None and said.tzinfo is not None:
                self._began = said

    def _read(self, response: requests.Response, what: str, deadline: float | None) -> bytes:
        """The whole answer, within ``deadline`` and ``MAX_ANSWER`` bytes.

        The read timeout bounds each wait for a byte, not the answer: one that trickles in
        byte by byte would hold a job timeout hostage, one that never ends would fill memory.
        """
        limit = self._clock() + ANSWER_SECONDS
        limit = limit if deadline is None else min(limit, deadline)
        raw = response.raw
        # urllib3 2's read1 returns what has arrived; 1.26 has only blocking reads.
        read = getattr(raw, "read1", None) or raw.read
        pieces, size = [], 0
        while piece := read(CHUNK):
            size += len(piece)
            if size > MAX_ANSWER:
                raise ApiError(f"{what}: the answer is larger than {MAX_ANSWER >> 20} MiB")
            pieces.append(piece)
            if self._clock() > limit:
                raise ApiError(
                    f"{what}: the answer was still arriving after its deadline",
                    hint="the server or a proxy is answering very slowly; try again later",
                )
        return b"".join(pieces)

    def _error(self, response: requests.Response, answer: bytes, what: str) -> ApiError:
        error = api_error(response, what=what, now=self._clock(), body=answer)
        if response.status_code == 400 and snapshot_required(error.error_type):
            return SnapshotRequiredError(
                error.message,
                status=400,
                error_type=error.error_type,
                uuid=error.uuid,
                hint="the incremental window is no longer available: take a new snapshot",
            )
        return error


def log_exchange(method: str, what: str, response: requests.Response) -> None:
    """The HTTP layer's details for ``--debug``: request, status, time to the headers and
    size. Never a header's value or a URL's query: they hold tokens and signatures."""
    if http_log.isEnabledFor(logging.DEBUG):
        http_log.debug(
            "%s %s -> HTTP %d in %.0f ms (%s bytes)",
            method,
            what,
            response.status_code,
            response.elapsed.total_seconds() * 1000,
            response.headers.get("Content-Length", "?"),
            extra={"event": "http", "status": response.status_code},
        )

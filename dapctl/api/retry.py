"""Which failures are worth another try, and how long to wait first: dapctl's one retry policy.

``build_retrying`` turns ``[retry]`` into a ``tenacity.Retrying`` that every HTTP call in
dapctl runs under. Retried: 429 (after ``Retry-After`` when the server sends it, else the
backoff), every 5xx (gateway timeouts and HTML error pages included), dropped or refused
connections, read timeouts, and ``TransientDownloadError`` (a part that arrived cut off or
corrupt). Everything else, other 4xx above all, fails at once. Waits grow exponentially from
``initial_backoff`` to ``max_backoff`` with jitter, so threads that failed together do not
retry together. When the attempts run out the last real error is raised, never tenacity's
``RetryError``. ``api_error`` builds the ``ApiError`` for a failed response, so the status,
type and uuid every caller needs are read in one place; an HTML error page is summarised by
its title, never quoted whole.

A failure that is retried is routine: it is logged at info (event ``retry``) with a short
reason, and the step being served hears of the wait (``events.retrying``) so progress shows
it. A call that then succeeds reports how many transient errors it rode out
(``events.rode_out``), which the end of an apply counts once; only a call whose attempts run
out is a warning (event ``retry_exhausted``).
"""

from __future__ import annotations

import http.client
import logging
import random
import re
import socket
import ssl
from collections.abc import Callable, Collection, Iterator
from email.utils import parsedate_to_datetime

import requests
import tenacity

from dapctl import events
from dapctl.api.wire import server_error
from dapctl.config import RetrySettings
from dapctl.errors import ApiError, AuthError

log = logging.getLogger("dapctl.retry")

#: a Retry-After beyond this is a misconfigured gateway, not a reason to stall a run for hours
RETRY_AFTER_CEILING = 300.0
#: the longest reason a retry's log line and progress row quote
REASON_CHARS = 120

_TITLE = re.compile(rb"<(title|h1)[^>]*>(.*?)</\1", re.IGNORECASE | re.DOTALL)
_HIDDEN = re.compile(rb"<(script|style)[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(rb"<[^>]*>")
_HTML = re.compile(rb"\s*(<!doctype html|<html|<head|<body)", re.IGNORECASE)
# What a person should read for the errors requests names by type (its messages hold URLs).
_TRANSPORT_REASONS = {
    "ChunkedEncodingError": "the answer was cut off",
    "ConnectTimeout": "the connection timed out",
    "ReadTimeout": "no answer in time",
    "ConnectionError": "the connection failed",
}

_TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    requests.ConnectionError,  # refused, reset, DNS, and connect timeouts (ConnectTimeout)
    requests.Timeout,  # read timeouts
    requests.exceptions.ChunkedEncodingError,  # a body cut off mid-stream
)


class ThrottledError(ApiError):
    """429 Too Many Requests; ``retry_after`` holds the server's wish in seconds, if any."""

    def __init__(self, message: str, *, retry_after: float | None, **kwargs: str | None) -> None:
        super().__init__(message, status=429, **kwargs)
        self.retry_after = retry_after


class TransientDownloadError(ApiError):
    """A downloaded part was cut off, corrupt, or its pre-signed URL refused: fetch it again."""


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


def api_error(
    response: requests.Response, *, what: str, now: float, body: bytes | None = None
) -> ApiError:
    """The error for a failed response: the server's type, message and uuid when it sent them.

    ``body`` is the answer when it was read already (a streamed response has no content).
    """
    content = response.content if body is None else body
    content_type = response.headers.get("Content-Type")
    error, text = server_error(content, content_type)
    if error is None and _is_html(content, content_type):
        text = html_summary(content)
    message = f"{what} failed with HTTP {response.status_code}: {text}"
    details = {
        "error_type": error.type if error else None,
        "uuid": error.uuid if error else None,
    }
    if response.status_code == 429:
        wait = parse_retry_after(response.headers.get("Retry-After"), now=now)
        return ThrottledError(message, retry_after=wait, **details)
    return ApiError(message, status=response.status_code, **details)


def _is_html(body: bytes, content_type: str | None) -> bool:
    kind = (content_type or "").split(";")[0].strip().lower()
    return kind in ("text/html", "application/xhtml+xml") or bool(_HTML.match(body[:512]))


def html_summary(body: bytes) -> str:
    """A gateway's HTML error page in a few words: its title (or first heading, or first
    words), never the markup."""
    head = body[:65536]
    found = _TITLE.search(head)
    text = found.group(2) if found else _HIDDEN.sub(b" ", head)
    words = " ".join(_TAG.sub(b" ", text).decode("utf-8", "replace").split())
    if not words:
        return f"an HTML page of {len(body)} bytes"
    return f"an HTML error page: {words[:80]!r}"


def is_retryable(exc: BaseException, extra_statuses: Collection[int] = ()) -> bool:
    """True for the failures a later identical request may well not meet."""
    if isinstance(exc, requests.exceptions.SSLError):
        return False  # an untrusted certificate stays untrusted: say so at once
    if isinstance(exc, (TransientDownloadError, *_TRANSPORT_ERRORS)):
        return True
    if isinstance(exc, AuthError):
        return False  # the login has been retried under its own policy already
    if isinstance(exc, ApiError) and exc.status is not None:
        return exc.status == 429 or exc.status >= 500 or exc.status in extra_statuses
    return False


def backoff(settings: RetrySettings, attempt: int, rng: random.Random) -> float:
    """Exponential backoff with "equal jitter": a random wait in [b/2, b] for b = the step.

    Half the wait is fixed so a retry never fires at once, half random so the threads that
    met the same outage spread out instead of returning as one burst.
    """
    step = min(settings.max_backoff, settings.initial_backoff * 2.0 ** max(0, attempt - 1))
    return step / 2 + rng.uniform(0, step / 2)


def _waiter(
    settings: RetrySettings, rng: random.Random
) -> Callable[[tenacity.RetryCallState], float]:
    ceiling = max(settings.max_backoff, RETRY_AFTER_CEILING)

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, ThrottledError) and exc.retry_after is not None:
            # Waiting less than the server asked only earns another 429.
            return min(exc.retry_after, ceiling)
        return backoff(settings, state.attempt_number, rng)

    return wait


def reason(exc: BaseException | None, describe: str) -> str:
    """Why an attempt failed, in a few words, without repeating the call's name.

    Transport errors are named by type only: requests puts the URL in its messages, and a
    pre-signed URL is a credential.
    """
    if isinstance(exc, ThrottledError):
        return "HTTP 429: the server asked to slow down"
    if not isinstance(exc, ApiError):
        name = type(exc).__name__
        for kind in type(exc).__mro__:
            if kind.__name__ in _TRANSPORT_REASONS:
                return f"{_TRANSPORT_REASONS[kind.__name__]} ({name})"
        return name
    text = exc.message
    for prefix in (f"{describe} failed with ", f"{describe}: "):
        text = text.removeprefix(prefix)
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"


def _before_sleep(describe: str, attempts: int) -> Callable[[tenacity.RetryCallState], None]:
    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        why = reason(exc, describe)
        log.info(
            "%s: %s; retrying in %.1f s (attempt %d of %d)",
            describe,
            why,
            wait,
            state.attempt_number + 1,
            attempts,
            extra={"event": "retry", "attempt": state.attempt_number},
        )
        events.retrying(wait, why)

    return before_sleep


def _gave_up(describe: str) -> Callable[[tenacity.RetryCallState], object]:
    def gave_up(state: tenacity.RetryCallState) -> object:
        assert state.outcome is not None  # tenacity stops only after an attempt
        log.warning(
            "%s: giving up after %d attempts (%s)",
            describe,
            state.attempt_number,
            reason(state.outcome.exception(), describe),
            extra={"event": "retry_exhausted", "attempt": state.attempt_number},
        )
        return state.outcome.result()  # raises the last real error

    return gave_up


def _should_retry(statuses: Collection[int]) -> Callable[[tenacity.RetryCallState], bool]:
    def should(state: tenacity.RetryCallState) -> bool:
        outcome = state.outcome
        if outcome is None:
            return False
        if outcome.failed:
            exc = outcome.exception()
            return exc is not None and is_retryable(exc, statuses)
        if state.attempt_number > 1:
            events.rode_out(state.attempt_number - 1)
        return False

    return should


def build_retrying(
    settings: RetrySettings,
    *,
    sleep: Callable[[float], None],
    describe: str = "DAP request",
    extra_statuses: Collection[int] = (),
    rng: random.Random | None = None,
) -> tenacity.Retrying:
    """The retry controller for one kind of call; safe to share between threads.

    ``extra_statuses`` adds statuses that are transient for this call only (a login's 400
    and 403, which gateways hand out spuriously). ``describe`` names the call in log lines,
    so it must not hold a secret.
    """
    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(settings.attempts),
        wait=_waiter(settings, rng or random.Random()),
        retry=_should_retry(frozenset(extra_statuses)),
        before_sleep=_before_sleep(describe, settings.attempts),
        retry_error_callback=_gave_up(describe),
        sleep=sleep,
        reraise=True,
    )


def unreachable_hint(exc: BaseException) -> str:
    """What to check when no answer came: the certificate, or the network."""
    if isinstance(exc, requests.exceptions.SSLError):
        return (
            "the server's TLS certificate is not trusted; behind a TLS-inspecting proxy, set "
            "ca_bundle in the profile to your organisation's CA certificates"
        )
    return "check the network and the profile's base_url"


def no_answer_reason(exc: BaseException) -> str:
    """Why no answer came, in words (refused, name not found, timed out, TLS, cut), from the
    exception and its causes; never its text, which may hold a pre-signed URL."""
    chain = list(_causes(exc))
    for cause in chain:
        if isinstance(cause, socket.gaierror) or type(cause).__name__ == "NameResolutionError":
            return "the host name does not resolve (DNS)"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused: nothing listens at that address and port"
        if isinstance(cause, requests.exceptions.SSLError | ssl.SSLError):
            return "the TLS handshake failed"
        if isinstance(cause, requests.exceptions.Timeout | TimeoutError | socket.timeout):
            return "timed out"
    if any(isinstance(c, ConnectionResetError | http.client.RemoteDisconnected) for c in chain):
        return "the server closed the connection"
    return type(exc).__name__


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, what caused it, what caused that... (``reason`` is urllib3's own link)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            current = reason
        elif current.args and isinstance(current.args[0], BaseException):
            current = current.args[0]
        else:
            current = current.__cause__ or current.__context__

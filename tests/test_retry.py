"""The retry policy: what is retried, how long it waits, and what is raised at the end.

Pure tests with a recording sleeper; the HTTP side (429 headers, HTML 5xx, cut-off bodies)
is covered over real sockets in ``test_client.py`` and ``test_auth.py``.
"""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
import requests
import tenacity

from dapctl.api.retry import (
    RETRY_AFTER_CEILING,
    ThrottledError,
    TransientDownloadError,
    api_error,
    backoff,
    build_retrying,
    is_retryable,
    parse_retry_after,
)
from dapctl.config import RetrySettings
from dapctl.errors import ApiError, AuthError
from dapctl.events import StepContext, StepEvent

SETTINGS = RetrySettings(attempts=5, initial_backoff=1.0, max_backoff=6.0)


class Flaky:
    """Raises the given errors in turn, then returns "ok"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def run(fn: Flaky, settings: RetrySettings = SETTINGS, **kwargs) -> tuple[str, list[float]]:
    sleeps: list[float] = []
    retrying = build_retrying(settings, sleep=sleeps.append, rng=random.Random(7), **kwargs)
    return retrying(fn), sleeps


@pytest.mark.parametrize(
    "error",
    [
        ApiError("boom", status=500),
        ApiError("gateway", status=504),
        ThrottledError("slow down", retry_after=None),
        requests.ConnectionError("refused"),
        requests.ConnectTimeout("connect"),
        requests.ReadTimeout("read"),
        requests.exceptions.ChunkedEncodingError("cut"),
        TransientDownloadError("bad gzip"),
    ],
)
def test_transient_failures_are_retried(error):
    fn = Flaky(error, error)

    result, sleeps = run(fn)

    assert (result, fn.calls, len(sleeps)) == ("ok", 3, 2)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_other_4xx_fail_at_once(status):
    error = ApiError("no", status=status, error_type="ValidationError", uuid="u-1")
    fn = Flaky(error)

    with pytest.raises(ApiError) as caught:
        run(fn)

    assert caught.value is error and fn.calls == 1


def test_auth_error_is_not_retried_again():
    # A login has had its own retries: a 503 there must not multiply into attempts².
    fn = Flaky(AuthError("login failed", status=503))

    with pytest.raises(AuthError):
        run(fn)

    assert fn.calls == 1


def test_extra_statuses_are_retried_for_that_call_only():
    fn = Flaky(ApiError("gateway 403", status=403), ApiError("bad", status=400))

    assert run(fn, extra_statuses={400, 403})[0] == "ok"
    assert fn.calls == 3


def test_last_real_error_is_raised_after_the_last_attempt():
    errors = [ApiError(f"down {i}", status=503, uuid=f"u-{i}") for i in range(5)]
    fn = Flaky(*errors)

    with pytest.raises(ApiError) as caught:
        run(fn)

    assert not isinstance(caught.value, tenacity.RetryError)
    assert caught.value is errors[-1]
    assert fn.calls == SETTINGS.attempts


def test_retry_after_is_honoured_and_capped():
    fn = Flaky(ThrottledError("429", retry_after=7.0), ThrottledError("429", retry_after=1e6))

    _, sleeps = run(fn)

    assert sleeps == [7.0, RETRY_AFTER_CEILING]


def test_retry_after_ceiling_never_undercuts_max_backoff():
    patient = RetrySettings(attempts=2, initial_backoff=1.0, max_backoff=900.0)
    fn = Flaky(ThrottledError("429", retry_after=800.0))

    assert run(fn, patient)[1] == [800.0]


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap():
    rng = random.Random(1)
    for attempt, step in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 6.0), (10, 6.0)]:
        waits = [backoff(SETTINGS, attempt, rng) for _ in range(200)]
        assert all(step / 2 <= wait <= step for wait in waits)
        assert len(set(waits)) > 100  # jittered, not constant


def test_backoff_is_used_for_a_429_without_retry_after():
    fn = Flaky(*[ThrottledError("429", retry_after=None)] * 4)

    _, sleeps = run(fn)

    assert [round(s) for s in sleeps] != [0] * 4
    assert all(lo / 2 <= s <= lo for s, lo in zip(sleeps, [1, 2, 4, 6], strict=True))


def test_parse_retry_after():
    now = datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    assert parse_retry_after("12", now=now) == 12.0
    assert parse_retry_after("1.5", now=now) == 1.5
    assert parse_retry_after("-3", now=now) == 0.0
    later = format_datetime(datetime(2030, 1, 1, 0, 0, 30, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(later, now=now) == 30.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None, now=now) is None


def test_each_retry_is_logged_at_info_with_the_call_and_the_reason(caplog):
    # Issue 14 #17: a retry that succeeds is routine, not a warning.
    caplog.set_level(logging.INFO, logger="dapctl")
    fn = Flaky(ApiError("GET /dap/x failed with HTTP 502: bad gateway", status=502))

    run(fn, describe="GET /dap/x")

    (record,) = [r for r in caplog.records if r.name == "dapctl.retry"]
    assert record.levelno == logging.INFO and record.event == "retry"
    assert record.getMessage().startswith("GET /dap/x: HTTP 502: bad gateway; retrying in ")
    assert record.getMessage().endswith("(attempt 2 of 5)")


def test_running_out_of_retries_warns_once_and_raises_the_last_error(caplog):
    caplog.set_level(logging.INFO, logger="dapctl")
    fn = Flaky(*[ApiError("GET /dap/x failed with HTTP 503: down", status=503)] * 5)

    with pytest.raises(ApiError, match="HTTP 503"):
        run(fn, describe="GET /dap/x")

    records = [r for r in caplog.records if r.name == "dapctl.retry"]
    assert [r.levelno for r in records] == [logging.INFO] * 4 + [logging.WARNING]
    assert records[-1].getMessage() == "GET /dap/x: giving up after 5 attempts (HTTP 503: down)"
    assert records[-1].event == "retry_exhausted"


def test_an_html_error_page_is_summarised_by_its_title_never_quoted_whole():
    page = (
        b"<!DOCTYPE html>\n<html><head><title>503 Service\n Temporarily Unavailable</title>"
        b"<style>body { font-family: sans-serif; }</style></head><body>"
        + b"<p>nginx</p>" * 200
        + b"</body></html>"
    )
    response = requests.Response()
    response.status_code, response._content = 503, page
    response.headers["Content-Type"] = "text/html; charset=utf-8"

    error = api_error(response, what="GET /dap/x", now=0.0)

    assert error.message == (
        "GET /dap/x failed with HTTP 503: an HTML error page: '503 Service Temporarily Unavailable'"
    )
    untitled = b"<html><style>p {}</style><body><p>upstream\n down</p></body></html>"
    assert api_error(_html_response(untitled), what="x", now=0.0).message == (
        "x failed with HTTP 502: an HTML error page: 'upstream down'"
    )
    empty = api_error(_html_response(b"<html><body></body></html>"), what="x", now=0.0)
    assert empty.message == "x failed with HTTP 502: an HTML page of 26 bytes"


def _html_response(body: bytes) -> requests.Response:
    response = requests.Response()
    response.status_code, response._content = 502, body  # no content type: sniffed
    return response


def test_a_step_hears_of_each_backoff_and_counts_what_it_rode_out():
    events: list[StepEvent] = []
    context = StepContext(events.append)
    fn = Flaky(ThrottledError("POST /dap/q failed with HTTP 429: slow", retry_after=12.0))
    fn.errors.append(TransientDownloadError("download of object o1: cut off after 5 of 9 bytes"))

    with context.serving("a/t/ns.x"):
        assert run(fn, describe="download of object o1")[0] == "ok"
        run(Flaky(), describe="GET /dap/y")  # no failure: nothing to count

    assert events == [
        StepEvent("a/t/ns.x", "retrying", seconds=12.0, detail=HTTP_429),
        StepEvent("a/t/ns.x", "retrying", seconds=events[1].seconds, detail=CUT),
    ]
    assert context.transient_errors("a/t/ns.x") == 2


def test_a_failure_that_is_not_ridden_out_is_not_counted():
    context = StepContext(lambda event: None)
    with context.serving("a/t/ns.x"), pytest.raises(ApiError):
        run(Flaky(*[ApiError("x", status=500)] * 5))
    assert context.transient_errors("a/t/ns.x") == 0


HTTP_429 = "HTTP 429: the server asked to slow down"
CUT = "cut off after 5 of 9 bytes"


def test_transport_errors_are_logged_by_type_only(caplog):
    # requests puts the URL in its messages, and a pre-signed URL is a credential.
    caplog.set_level(logging.INFO, logger="dapctl")
    fn = Flaky(requests.ConnectionError("https://bucket/part?X-Amz-Signature=abc"))

    run(fn)

    assert "X-Amz-Signature" not in caplog.text
    assert "ConnectionError" in caplog.text


def test_is_retryable_on_unrelated_errors():
    assert not is_retryable(ValueError("x"))
    assert not is_retryable(ApiError("no status"))

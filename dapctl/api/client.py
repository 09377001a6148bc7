"""The DAP Query API for one profile: tables, schemas, query jobs, object URLs and downloads.

Every API call runs under the ``[retry]`` policy; each attempt (the server counts every
request) takes a slot from its endpoint class's limiter and a bearer token, logging in before
the slot so a slow login cannot make a request miss it. A 401 or 403 on a call drops the
token, logs in again and repeats that call once. Failures become ``ApiError`` with the
server's status, type, message and uuid; ``SnapshotRequiredError`` when the incremental
window is gone and ``JobFailedError`` when the server reports a failed job. Jobs are polled
adaptively (fast first, then backing off to a cap); a cached complete job about to expire is
asked for again. Downloads of a job's parts (``batching_urls``) take pre-signed URLs asked
for many parts a request (``urls``), a retry always a fresh one; they stream in 1 MiB
chunks, and check the length and the gzip framing, so a cut-off, corrupt or refused part is
fetched again from where it began. One ``DapClient`` is shared by all the threads that work
for a profile; besides its token and budgets it keeps only the URLs fetched ahead.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, BinaryIO, Protocol, TypeVar
from urllib.parse import quote

import requests
from pydantic import BaseModel, ValidationError

from dapctl import __version__
from dapctl.api.auth import TokenProvider
from dapctl.api.ratelimit import RateLimiter, RateLimits
from dapctl.api.retry import (
    TransientDownloadError,
    api_error,
    build_retrying,
    no_answer_reason,
    unreachable_hint,
)
from dapctl.api.urls import UrlBook
from dapctl.api.wire import (
    Job,
    ObjectUrls,
    QueryRequest,
    ServerError,
    TableList,
    TableSchema,
    TransferError,
    copy_checked,
)
from dapctl.config import RetrySettings
from dapctl.errors import ApiError, JobFailedError, SnapshotRequiredError

log = logging.getLogger("dapctl.client")
http_log = logging.getLogger("dapctl.http")  # one debug record per request (--debug)

Model = TypeVar("Model", bound=BaseModel)

CHUNK = 1 << 20
#: the most an API answer (not a download) may take to arrive, and its largest size
ANSWER_SECONDS = 300.0
MAX_ANSWER = 64 << 20
#: error types meaning "this incremental window is gone: take a snapshot" (dap-api.md §4)
SNAPSHOT_REQUIRED = frozenset({"SnapshotRequired", "OutOfRange"})
#: a cached job this close to expiry cannot be trusted to outlive its downloads
JOB_EXPIRY_MARGIN = 60.0
#: past ``expires_at`` the server must have dropped the cached job; a little slack for clocks
EXPIRY_GRACE = 5.0
REQUERIES = 2


def _snapshot_required(error_type: str | None) -> bool:
    return (error_type or "").removesuffix("Error") in SNAPSHOT_REQUIRED


class TextSink(Protocol):
    """Takes a part's decompressed bytes during its download; restarted on every attempt."""

    def restart(self) -> None: ...

    def feed(self, text: bytes) -> None: ...


class _UrlFailure(Exception):
    """Carries a URL request's error past the download retry: it has had its retries."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(error.message)
        self.error = error


class _Call:
    """What one logical call remembers across its attempts: whether it has re-logged in,
    and by when its answer must be in."""

    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline
        self.reauthenticated = False


class DapClient:
    """The Query API of one profile; safe to share among threads."""

    def __init__(
        self,
        *,
        session: requests.Session,
        base_url: str,
        tokens: TokenProvider,
        limits: RateLimits,
        retry: RetrySettings,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        timeout: tuple[float, float] = (10.0, 60.0),
        poll_initial: float = 0.5,
        poll_max: float = 15.0,
        job_expiry_margin: float = JOB_EXPIRY_MARGIN,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._tokens = tokens
        self._limits = limits
        self._retry = retry
        self._clock = clock
        self._sleep = sleep
        self._timeout = timeout
        self._poll_initial = poll_initial
        self._poll_max = poll_max
        self._job_expiry_margin = job_expiry_margin
        self._user_agent = f"dapctl/{__version__}"
        self._began: datetime | None = None
        self._began_lock = threading.Lock()
        self._urls = UrlBook(clock)

    @property
    def began(self) -> datetime | None:
        """The server's time (its ``Date`` header) when this client first heard from it:
        the moment an apply began, by the server's clock; ``None`` if it never said."""
        return self._began

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

    @property
    def limits(self) -> RateLimits:
        """This profile's client-side budgets (shared by every thread using the client)."""
        return self._limits

    def __repr__(self) -> str:
        return f"DapClient({self._base!r}, profile={self._tokens.profile!r})"

    # -- the API --------------------------------------------------------------------------

    def list_tables(self, namespace: str) -> list[str]:
        path = f"/dap/query/{quote(namespace, safe='')}/table"
        return self._parse(TableList, self._call(self._limits.tables, "GET", path)).tables

    def get_schema(self, namespace: str, table: str) -> TableSchema:
        path = f"/dap/query/{quote(namespace, safe='')}/table/{quote(table, safe='')}/schema"
        return self._parse(TableSchema, self._call(self._limits.schema, "GET", path))

    def start_query(self, namespace: str, table: str, query: QueryRequest) -> Job:
        """Starts a query job; a cached complete job about to expire is asked for anew."""
        path = f"/dap/query/{quote(namespace, safe='')}/table/{quote(table, safe='')}/data"
        for _ in range(REQUERIES):
            job = self._parse(Job, self._call(self._limits.jobs, "POST", path, query.to_json()))
            left = self._life_left(job)
            if left is None or left >= self._job_expiry_margin:
                return job
            # Asking again at once returns the same cached job: wait until it is gone.
            log.info("job %s is complete but expires in %.0f s; asking again", job.id, left)
            self._sleep(max(0.0, left) + EXPIRY_GRACE)
        return self._parse(Job, self._call(self._limits.jobs, "POST", path, query.to_json()))

    def get_job(self, job_id: str, *, deadline: float | None = None) -> Job:
        path = f"/dap/job/{quote(job_id, safe='')}"
        return self._parse(Job, self._call(self._limits.job_status, "GET", path, deadline=deadline))

    def wait_for_job(
        self,
        job: str | Job,
        *,
        timeout: float | None = None,
        on_status: Callable[[Job], None] | None = None,
    ) -> Job:
        """Polls until the job is complete; ``on_status`` sees every state observed.

        Polls start ``poll_initial`` apart and grow by half each time up to ``poll_max``: short jobs
        finish in seconds, long ones run for many minutes and need not cost 500 calls.
        """
        current = self.get_job(job) if isinstance(job, str) else job
        started, delay = self._clock(), self._poll_initial
        while True:
            if on_status is not None:
                on_status(current)
            if current.terminal:
                return self._finished(current)
            elapsed = self._clock() - started
            if timeout is not None and elapsed >= timeout:
                raise ApiError(
                    f"job {current.id} is still {current.status} after {elapsed:.0f} s "
                    "(--timeout); it stays recorded, and the next apply resumes it without "
                    "starting a new job",
                    hint="raise --timeout to wait longer in one run",
                )
            self._sleep(delay if timeout is None else min(delay, timeout - elapsed))
            delay = min(delay * 1.5, self._poll_max)
            # A poll sent at the deadline still gets a moment for its answer.
            current = self.get_job(
                current.id, deadline=None if timeout is None else started + timeout + 2.0
            )

    def object_urls(
        self, object_ids: Sequence[str], *, required: Sequence[str] | None = None
    ) -> dict[str, str]:
        """Pre-signed URLs (valid ~15 minutes) for the given object ids, those the server
        sent; each of ``required`` (default: all of them) must be among them."""
        body = [{"id": object_id} for object_id in object_ids]
        answer = self._call(self._limits.urls, "POST", "/dap/object/url", body)
        urls = self._parse(ObjectUrls, answer).urls
        wanted = object_ids if required is None else required
        missing = [object_id for object_id in wanted if object_id not in urls]
        if missing:
            raise ApiError(f"the server sent no URL for object(s) {', '.join(missing)}")
        return {object_id: urls[object_id].url for object_id in object_ids if object_id in urls}

    def batching_urls(self, object_ids: Sequence[str]) -> AbstractContextManager[None]:
        """While the block runs, downloads of these objects (one job's parts) ask for their
        URLs many at a time."""
        return self._urls.expecting(object_ids)

    def _batch_urls(self, object_ids: Sequence[str]) -> dict[str, str]:
        """A batch for the URL book: the first object's URL is required, the rest welcome."""
        return self.object_urls(object_ids, required=object_ids[:1])

    def download_object(
        self, object_id: str, dest: BinaryIO, *, gzip: bool = True, text: TextSink | None = None
    ) -> int:
        """Streams one object into ``dest`` from its current position; returns bytes written.

        ``gzip=False`` skips the gzip check, for parquet parts. A failed attempt truncates
        ``dest`` back to where it started, so the retry writes the part whole. ``text`` hears
        the decompressed bytes of the check, restarted with every attempt.
        """
        start = dest.tell()
        retrying = build_retrying(
            self._retry, sleep=self._sleep, describe=f"download of object {object_id}"
        )
        try:
            attempts = itertools.count()
            return retrying(self._download_once, object_id, dest, start, gzip, text, attempts)
        except _UrlFailure as exc:
            raise exc.error from None
        except requests.RequestException as exc:
            # The exception's text holds the pre-signed URL, a credential: name the type only.
            raise ApiError(
                f"download of object {object_id} failed: no complete answer "
                f"after {self._retry.attempts} attempts ({no_answer_reason(exc)})"
            ) from None

    # -- calls ----------------------------------------------------------------------------

    def _call(
        self,
        limiter: RateLimiter,
        method: str,
        path: str,
        body: Any = None,
        *,
        deadline: float | None = None,
    ) -> Any:
        what = f"{method} {path}"
        retrying = build_retrying(self._retry, sleep=self._sleep, describe=what)
        call = _Call(deadline)
        try:
            return retrying(self._attempt, limiter, method, path, body, call)
        except requests.RequestException as exc:
            raise ApiError(
                f"{what}: no answer from {self._base} after {self._retry.attempts} attempts "
                f"({no_answer_reason(exc)})",
                hint=unreachable_hint(exc),
            ) from exc

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
            _log_exchange(method, path, response)
            if response.status_code == 429:
                slot.refused()  # the server did not count it; its Retry-After is the cost
            with response:
                answer = self._read(response, f"{method} {path}", deadline)
        return response, answer, token

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
        if response.status_code == 400 and _snapshot_required(error.error_type):
            return SnapshotRequiredError(
                error.message,
                status=400,
                error_type=error.error_type,
                uuid=error.uuid,
                hint="the incremental window is no longer available: take a new snapshot",
            )
        return error

    @staticmethod
    def _parse(model: type[Model], data: Any) -> Model:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise ApiError(
                f"unexpected answer from DAP, not a {model.__name__}: "
                f"{exc.error_count()} problem(s), first: {exc.errors()[0]['msg']}"
            ) from None

    # -- jobs -----------------------------------------------------------------------------

    def _life_left(self, job: Job) -> float | None:
        if job.status != "complete" or job.expires_at is None:
            return None
        return job.expires_at.timestamp() - self._clock()

    @staticmethod
    def _finished(job: Job) -> Job:
        if job.status == "complete":
            return job
        error = job.error or ServerError()
        message = f"job {job.id} failed: {error.type or 'error'}: {error.message or '?'}"
        if _snapshot_required(error.type):
            raise SnapshotRequiredError(message, error_type=error.type, uuid=error.uuid)
        raise JobFailedError(message, error_type=error.type, uuid=error.uuid)

    # -- downloads ------------------------------------------------------------------------

    def _download_once(
        self,
        object_id: str,
        dest: BinaryIO,
        start: int,
        gzip: bool,
        text: TextSink | None,
        attempts: Iterator[int],
    ) -> int:
        fresh = next(attempts) > 0  # a retry may follow a refused (expired) URL
        try:
            url = self._urls.take(object_id, fresh=fresh, fetch=self._batch_urls)
        except ApiError as exc:
            raise _UrlFailure(exc) from exc
        dest.seek(start)
        dest.truncate()
        if text is not None:
            text.restart()
        # No bearer token here: the URL is pre-signed, and the token must not leave DAP.
        headers = {"User-Agent": self._user_agent, "Accept-Encoding": "identity"}
        with self._session.get(url, headers=headers, stream=True, timeout=self._timeout) as r:
            _log_exchange("GET", f"object {object_id} (pre-signed URL)", r)
            if r.status_code == 403:
                raise TransientDownloadError(
                    f"download of object {object_id}: the pre-signed URL was refused "
                    "(HTTP 403), probably expired",
                    status=403,
                )
            if not r.ok:
                raise api_error(r, what=f"download of object {object_id}", now=self._clock())
            return self._stream(r, dest, object_id, gzip, text)

    @staticmethod
    def _stream(
        response: requests.Response,
        dest: BinaryIO,
        object_id: str,
        gzip: bool,
        text: TextSink | None,
    ) -> int:
        declared = response.headers.get("Content-Length", "")
        try:
            return copy_checked(
                response.iter_content(CHUNK),
                dest,
                declared=int(declared) if declared.isdigit() else None,
                gzip=gzip,
                on_text=text.feed if text is not None else None,
            )
        except TransferError as exc:
            raise TransientDownloadError(f"download of object {object_id}: {exc}") from None


def _log_exchange(method: str, what: str, response: requests.Response) -> None:
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

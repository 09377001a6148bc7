"""The DAP Query API for one profile: tables, schemas, query jobs, object URLs and downloads.

``DapClient`` holds the endpoints; each call goes through the ``Transport`` (retry policy,
rate limits, token, error translation) and its answer is checked against its ``wire`` model,
an answer that is not one becoming ``ApiError``. Jobs are polled adaptively (fast first,
then backing off to a cap), and a failed job becomes ``JobFailedError`` (or
``SnapshotRequiredError`` when the incremental window is gone); a cached complete job about
to expire is asked for again. Downloads of a job's parts go to ``Downloads`` (verified,
streamed, retried from where a part began); while ``batching_urls`` runs their pre-signed
URLs are asked for many parts a request (``urls``). One ``DapClient`` is shared by all the
threads that work for a profile; besides its token and budgets it keeps only the URLs
fetched ahead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote

import requests
from pydantic import BaseModel, ValidationError

from dapctl.api.auth import TokenProvider
from dapctl.api.download import Downloads, TextSink
from dapctl.api.ratelimit import RateLimiter, RateLimits
from dapctl.api.transport import Transport, snapshot_required
from dapctl.api.urls import UrlBook
from dapctl.api.wire import Job, ObjectUrls, QueryRequest, ServerError, TableList, TableSchema
from dapctl.config import RetrySettings
from dapctl.errors import ApiError, JobFailedError, SnapshotRequiredError

__all__ = ["DapClient", "TextSink"]

log = logging.getLogger("dapctl.client")

Model = TypeVar("Model", bound=BaseModel)

#: a cached job this close to expiry cannot be trusted to outlive its downloads
JOB_EXPIRY_MARGIN = 60.0
#: past ``expires_at`` the server must have dropped the cached job; a little slack for clocks
EXPIRY_GRACE = 5.0
REQUERIES = 2


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
        self._transport = Transport(
            session=session,
            base_url=base_url,
            tokens=tokens,
            retry=retry,
            clock=clock,
            sleep=sleep,
            timeout=timeout,
        )
        self._tokens = tokens
        self._limits = limits
        self._clock = clock
        self._sleep = sleep
        self._poll_initial = poll_initial
        self._poll_max = poll_max
        self._job_expiry_margin = job_expiry_margin
        self._urls = UrlBook(clock)
        self._downloads = Downloads(self._transport, self._urls, self._batch_urls)

    @property
    def began(self) -> datetime | None:
        """The server's time (its ``Date`` header) when this client first heard from it:
        the moment an apply began, by the server's clock; ``None`` if it never said."""
        return self._transport.began

    @property
    def limits(self) -> RateLimits:
        """This profile's client-side budgets (shared by every thread using the client)."""
        return self._limits

    def __repr__(self) -> str:
        return f"DapClient({self._transport.base!r}, profile={self._tokens.profile!r})"

    # -- the API --------------------------------------------------------------------------

    def list_tables(self, namespace: str) -> list[str]:
        path = f"/dap/query/{quote(namespace, safe='')}/table"
        return self._ask(TableList, self._limits.tables, "GET", path).tables

    def get_schema(self, namespace: str, table: str) -> TableSchema:
        path = f"/dap/query/{quote(namespace, safe='')}/table/{quote(table, safe='')}/schema"
        return self._ask(TableSchema, self._limits.schema, "GET", path)

    def start_query(self, namespace: str, table: str, query: QueryRequest) -> Job:
        """Starts a query job; a cached complete job about to expire is asked for anew."""
        path = f"/dap/query/{quote(namespace, safe='')}/table/{quote(table, safe='')}/data"
        for _ in range(REQUERIES):
            job = self._ask(Job, self._limits.jobs, "POST", path, query.to_json())
            left = self._life_left(job)
            if left is None or left >= self._job_expiry_margin:
                return job
            # Asking again at once returns the same cached job: wait until it is gone.
            log.info("job %s is complete but expires in %.0f s; asking again", job.id, left)
            self._sleep(max(0.0, left) + EXPIRY_GRACE)
        return self._ask(Job, self._limits.jobs, "POST", path, query.to_json())

    def get_job(self, job_id: str, *, deadline: float | None = None) -> Job:
        path = f"/dap/job/{quote(job_id, safe='')}"
        return self._ask(Job, self._limits.job_status, "GET", path, deadline=deadline)

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
        urls = self._ask(ObjectUrls, self._limits.urls, "POST", "/dap/object/url", body).urls
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
        return self._downloads.download(object_id, dest, gzip=gzip, text=text)

    def _ask(
        self,
        model: type[Model],
        limiter: RateLimiter,
        method: str,
        path: str,
        body: Any = None,
        *,
        deadline: float | None = None,
    ) -> Model:
        """One call's answer, checked against its ``wire`` model."""
        data = self._transport.call(limiter, method, path, body, deadline=deadline)
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
        if snapshot_required(error.type):
            raise SnapshotRequiredError(message, error_type=error.type, uuid=error.uuid)
        raise JobFailedError(message, error_type=error.type, uuid=error.uuid)

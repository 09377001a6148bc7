"""Verified, streamed downloads of a job's parts.

``Downloads.download`` streams one object from its pre-signed URL into a file in 1 MiB
chunks under the ``[retry]`` policy, and checks the length and the gzip framing, so a
cut-off, corrupt or refused part is fetched again from where it began: a failed attempt
truncates the file back to its starting position, and a ``TextSink`` hears the decompressed
bytes again from the start. URLs come from the ``UrlBook`` (many parts a request while a job
is collected); a retry always asks for a fresh one, since it may follow an expired URL. A
URL request that has failed its own retries ends the download at once. No error or log line
holds a pre-signed URL: it is a credential.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import BinaryIO, Protocol

import requests

from dapctl.api.retry import TransientDownloadError, no_answer_reason
from dapctl.api.transport import CHUNK, Transport, log_exchange
from dapctl.api.urls import Fetch, UrlBook
from dapctl.api.wire import TransferError, copy_checked
from dapctl.errors import ApiError


class TextSink(Protocol):
    """Takes a part's decompressed bytes during its download; restarted on every attempt."""

    def restart(self) -> None: ...

    def feed(self, text: bytes) -> None: ...


class _UrlFailure(Exception):
    """Carries a URL request's error past the download retry: it has had its retries."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(error.message)
        self.error = error


class Downloads:
    """Downloads of one profile's objects; safe to share among threads."""

    def __init__(self, transport: Transport, urls: UrlBook, fetch: Fetch) -> None:
        self._transport = transport
        self._urls = urls
        self._fetch = fetch  # asks for a batch of URLs, the first one required

    def download(self, object_id: str, dest: BinaryIO, *, gzip: bool, text: TextSink | None) -> int:
        """Streams one object into ``dest`` from its current position; returns bytes written."""
        start = dest.tell()
        retrying = self._transport.retrying(f"download of object {object_id}")
        try:
            attempts = itertools.count()
            return retrying(self._once, object_id, dest, start, gzip, text, attempts)
        except _UrlFailure as exc:
            raise exc.error from None
        except requests.RequestException as exc:
            # The exception's text holds the pre-signed URL, a credential: name the type only.
            raise ApiError(
                f"download of object {object_id} failed: no complete answer "
                f"after {self._transport.attempts} attempts ({no_answer_reason(exc)})"
            ) from None

    def _once(
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
            url = self._urls.take(object_id, fresh=fresh, fetch=self._fetch)
        except ApiError as exc:
            raise _UrlFailure(exc) from exc
        dest.seek(start)
        dest.truncate()
        if text is not None:
            text.restart()
        with self._transport.get_presigned(url) as r:
            log_exchange("GET", f"object {object_id} (pre-signed URL)", r)
            if r.status_code == 403:
                raise TransientDownloadError(
                    f"download of object {object_id}: the pre-signed URL was refused "
                    "(HTTP 403), probably expired",
                    status=403,
                )
            if not r.ok:
                raise self._transport.download_error(r, f"download of object {object_id}")
            return _stream(r, dest, object_id, gzip, text)


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

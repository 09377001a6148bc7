"""What travels on the wire between dapctl and DAP, parsed and checked at the boundary.

Pydantic models for the Identity Service and Query API bodies (``/work/shared/dap-api.md``),
tolerant of fields the server adds later (``extra="ignore"``) and strict about the ones dapctl
relies on; timestamps are timezone-aware and serialise as RFC 3339 with ``Z``. Beside them,
the readers of raw bytes: ``server_error`` pulls ``{"error": {...}}`` out of a failed
response (or an excerpt of an HTML gateway page), and ``copy_checked`` copies a downloaded
part while checking its length and, with ``GzipVerifier``, that it is one or more complete
gzip members. Nothing here opens a connection or a file: streams come in as arguments.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, BinaryIO, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
)

from dapctl import deflate
from dapctl.text import format_time

JobStatus = Literal["waiting", "running", "complete", "failed"]
Format = Literal["jsonl", "csv", "tsv", "parquet"]
Mode = Literal["expanded", "condensed"]

#: how much of a non-JSON error body (an HTML gateway page) an error message quotes
EXCERPT_CHARS = 200


def _as_utc(value: datetime) -> datetime:
    # The server writes "Z"; a naive stamp can only have meant UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Timestamp = Annotated[datetime, AfterValidator(_as_utc)]


def rfc3339(value: datetime) -> str:
    """``2026-11-01T00:00:00Z``: the form the Query API documents for ``since``/``until``."""
    if value.tzinfo is None:
        raise ValueError("timestamps sent to DAP must be timezone-aware")
    return format_time(value)


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


def _header_safe(token: SecretStr) -> SecretStr:
    value = token.get_secret_value()
    if not value or not all("!" <= char <= "~" for char in value):
        raise ValueError("the access token is not visible ASCII")
    return token


class TokenResponse(_Wire):
    """The Identity Service's answer to a login; the token never shows in a repr."""

    # A token travels in an HTTP header: only visible ASCII can (RFC 6750's b64token).
    access_token: Annotated[SecretStr, AfterValidator(_header_safe)]
    expires_in: float | None = None
    token_type: str | None = None


class ServerError(_Wire):
    """The ``{"error": {...}}`` part of a failed call or a failed job."""

    type: str | None = None
    uuid: str | None = None
    message: str | None = None


class ObjectRef(_Wire):
    id: str


class Job(_Wire):
    id: str
    status: JobStatus
    expires_at: Timestamp | None = None
    at: Timestamp | None = None
    since: Timestamp | None = None
    until: Timestamp | None = None
    schema_version: int | None = None
    objects: list[ObjectRef] = Field(default_factory=list)
    error: ServerError | None = None

    @property
    def terminal(self) -> bool:
        return self.status in ("complete", "failed")


class TableList(_Wire):
    tables: list[str]


class TableSchema(_Wire):
    version: int
    schema_: dict[str, Any] = Field(alias="schema")


class ObjectUrl(_Wire):
    url: str


class ObjectUrls(_Wire):
    urls: dict[str, ObjectUrl]


class QueryRequest(_Wire):
    """A table query: a snapshot without ``since``, an incremental one with it."""

    format: Format = "jsonl"
    mode: Mode | None = None
    since: Timestamp | None = None
    until: Timestamp | None = None

    @property
    def incremental(self) -> bool:
        return self.since is not None

    def to_json(self) -> dict[str, Any]:
        """The request body; ``until`` is omitted when open-ended, as the API recommends."""
        body: dict[str, Any] = {"format": self.format, "mode": self.mode}
        if self.since is not None:
            body["since"] = rfc3339(self.since)
            if self.until is not None:
                body["until"] = rfc3339(self.until)
        return body


def server_error(body: bytes, content_type: str | None) -> tuple[ServerError | None, str]:
    """The server's error object if the body carries one, and a short text for messages.

    Gateways answer 5xx with HTML pages, and some proxies mislabel JSON, so the body is
    tried as JSON whatever the content type says; failing that, its first characters are
    quoted (collapsed to one line) so the user sees what came back.
    """
    text = body.decode("utf-8", errors="replace")
    try:
        parsed = json.loads(text) if text.strip() else None
    except (ValueError, RecursionError):
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        try:
            error = ServerError.model_validate(parsed["error"])
        except ValidationError:
            error = None
        if error is not None:
            return error, error.message or error.type or "(no message)"
    excerpt = " ".join(text.split())[:EXCERPT_CHARS]
    kind = (content_type or "no content type").split(";")[0]
    return None, f"{excerpt!r} ({kind})" if excerpt else f"empty body ({kind})"


class TransferError(ValueError):
    """A downloaded part is not what was sent: cut off, or not valid gzip."""


class GzipError(TransferError):
    """The bytes are not one or more complete gzip members."""


class GzipVerifier:
    """Checks gzip integrity as chunks stream past, in constant memory.

    Decompressed output is produced in bounded pieces and dropped: only the CRC and length
    checks zlib performs at each member's end matter. Several members back to back are legal
    (RFC 1952 section 2.2), so a finished member followed by more bytes starts another.
    """

    _PIECE = 1 << 20

    def __init__(self, on_text: Callable[[bytes], None] | None = None) -> None:
        self._inflater = deflate.decompressobj()
        self._members = 0
        # The check decompresses anyway: whoever needs the text (to count records, or to
        # keep it) takes it from here rather than decompressing a second time.
        self._on_text = on_text

    def feed(self, chunk: bytes) -> None:
        data = chunk
        while data:
            if self._inflater.eof:
                self._members += 1
                self._inflater = deflate.decompressobj()
            try:
                self._pass(self._inflater.decompress(data, self._PIECE))
            except deflate.ERRORS as exc:
                raise GzipError(f"corrupt gzip data: {exc}") from exc
            # At a member's end the rest is unused_data (the next member); before it, what
            # the piece limit left is unconsumed_tail. After eof zlib keeps an old tail, so
            # only eof says which one holds the rest.
            inflater = self._inflater
            data = inflater.unused_data if inflater.eof else inflater.unconsumed_tail

    def _pass(self, text: bytes) -> None:
        if text and self._on_text is not None:
            self._on_text(text)

    def finish(self) -> int:
        """The number of complete members; raises ``GzipError`` if the stream stops short."""
        if not self._inflater.eof:
            raise GzipError("the gzip stream ends before its last member is complete")
        return self._members + 1


def copy_checked(
    chunks: Iterable[bytes],
    dest: BinaryIO,
    *,
    declared: int | None,
    gzip: bool,
    on_text: Callable[[bytes], None] | None = None,
) -> int:
    """Writes ``chunks`` to ``dest`` and returns the byte count, checking the part on the way.

    The count must match the declared Content-Length, and with ``gzip`` the bytes must form
    complete gzip members; a corrupt stream fails as soon as it is seen. ``on_text`` hears
    the decompressed bytes as the check produces them.
    """
    verifier = GzipVerifier(on_text) if gzip else None
    written = 0
    for chunk in chunks:
        dest.write(chunk)
        written += len(chunk)
        if verifier is not None:
            verifier.feed(chunk)
    if declared is not None and written != declared:
        raise TransferError(f"cut off after {written} of {declared} bytes")
    if verifier is not None:
        verifier.finish()
    return written

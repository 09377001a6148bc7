"""Response values and the documented error shape.

Handlers return a `Response` or raise `ApiError`; the server turns either into bytes. Every
error body is ``{"error": {"type", "uuid", "message", ...extra}}`` with exactly the extra
fields its type defines (the official client rejects unknown fields and would then report a
bare ``ServerError``): ``location`` for ``ValidationError``, ``id``/``kind`` for
``NotFoundError``, ``since``/``until`` for ``SnapshotRequired`` and ``OutOfRange``. Gateway
style 5xx errors can instead carry an HTML page, as real gateways send.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

HTML_ERROR = "<html><head><title>{0}</title></head><body><h1>{0}</h1><hr>gateway</body></html>"
REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass
class Response:
    """A complete HTTP response: status, body bytes, content type and extra headers."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(payload, ensure_ascii=False).encode())


class ApiError(Exception):
    """An error answer; ``extra`` holds the type-specific fields."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        html: bool = False,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status, self.type, self.message = status, type_, message
        self.headers = headers or {}
        self.html = html
        self.extra = extra
        self.uuid = str(uuid.uuid4())

    def response(self) -> Response:
        if self.html:
            title = f"{self.status} {REASONS.get(self.status, 'Error')}"
            body = HTML_ERROR.format(title).encode()
            return Response(self.status, body, "text/html; charset=utf-8", dict(self.headers))
        error = {"type": self.type, "uuid": self.uuid, "message": self.message, **self.extra}
        response = json_response({"error": error}, self.status)
        response.headers.update(self.headers)
        return response


def location(text: str, needle: str | None = None, index: int | None = None) -> dict[str, int]:
    """A ``ValidationError`` location (1-based line, column, character) in a request body."""
    if index is None:
        found = text.find(needle) if needle else -1
        index = max(found, 0)
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return {"line": line, "column": column, "character": index + 1}


def validation(text: str, message: str, needle: str | None = None) -> ApiError:
    return ApiError(400, "ValidationError", message, location=location(text, needle))


def not_found(kind: str, id_: str) -> ApiError:
    return ApiError(404, "NotFoundError", f"{kind} not found: {id_}", id=id_, kind=kind)

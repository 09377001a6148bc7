"""The scripted stub HTTP server, for answers the emulator does not give (pytest plugin).

``StubServer`` answers on a real socket (127.0.0.1, port 0) and records every request it
``Seen``. Each request is answered by the first of:

1. a script queued for its exact (method, path) with ``on``: ``Reply`` values (or callables
   from the ``Seen`` to a ``Reply``) served in turn, the last one repeating forever. Client
   and auth tests pin edge cases this way (a login 403 that clears, an opaque token, an
   HTML 503);
2. ``replies[endpoint]`` for one of DAP's endpoints by name (``ENDPOINTS``), however its path
   is spelled: the hardening fuzzers swap one endpoint's answer for garbage this way;
3. with ``dap_defaults=True``, a working DAP: a login, one table, a complete snapshot job with
   ``object_ids`` as parts, their URLs back on the stub, gzip JSON Lines parts; otherwise a
   JSON 404.

A ``Reply`` body may be an iterable of chunks, sent with chunked encoding (a trickle, or an
answer that streams until the iterable ends); ``cut_to`` sends only part of a body while the
Content-Length promises all of it, then closes the connection. Fixtures: ``server`` (a
started stub with no defaults).
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.clock import T0

SECRET = "s3cr3t-VALUE-never-shown"
CLIENT_ID = "us-east-1#2f6d1c4e-client"
JSON = "application/json"
AT = "2026-11-02T12:00:00Z"
RECORDS = [
    {"key": {"id": 1}, "value": {"name": "a"}, "meta": {"ts": AT, "action": "U"}},
    {"key": {"id": 2}, "value": {"name": "b"}, "meta": {"ts": AT, "action": "U"}},
]


def make_jwt(exp: float, **claims: Any) -> str:
    def part(obj: dict[str, Any]) -> str:
        raw = json.dumps(obj).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part({'exp': int(exp), **claims})}.c2lnbmF0dXJl"


def jsonl_gz(records: list[dict[str, Any]] = RECORDS) -> bytes:
    return gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode())


@dataclass
class Reply:
    """One answer. ``json`` (when not None) becomes the body, typed ``application/json``
    unless ``content_type`` says otherwise; ``content_type=None`` with no ``json`` sends no
    Content-Type at all."""

    status: int = 200
    json: Any = None
    body: bytes | Iterable[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    cut_to: int | None = None  # send only this many body bytes, Content-Length stays full
    delay: float = 0.0


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Script = Reply | Callable[[Seen], Reply]

ENDPOINTS = ("login", "tables", "schema", "job", "poll", "urls", "object")
PATTERNS = (
    ("POST", re.compile(r"/ids/auth/login"), "login"),
    ("GET", re.compile(r"/dap/query/[^/]+/table"), "tables"),
    ("GET", re.compile(r"/dap/query/[^/]+/table/[^/]+/schema"), "schema"),
    ("POST", re.compile(r"/dap/query/[^/]+/table/[^/]+/data"), "job"),
    ("GET", re.compile(r"/dap/job/.+"), "poll"),
    ("POST", re.compile(r"/dap/object/url"), "urls"),
)


def endpoint_of(method: str, path: str) -> str:
    """The DAP endpoint a request is for; anything unknown is an object download."""
    for want, pattern, name in PATTERNS:
        if method == want and pattern.fullmatch(path):
            return name
    return "object"


class StubServer:
    """See the module docstring. Use as a context manager or with ``start``/``stop``."""

    def __init__(self, *, dap_defaults: bool = False) -> None:
        self.dap_defaults = dap_defaults
        self.scripts: dict[tuple[str, str], list[Script]] = {}
        self.replies: dict[str, Script] = {}
        self.seen: list[Seen] = []
        self.tables = ["accounts"]
        self.object_ids = ["part-00000"]
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> StubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Back to a fresh stub (for a module-scoped one shared between examples)."""
        with self._lock:
            self.scripts, self.replies, self.seen = {}, {}, []
            self.tables = ["accounts"]
            self.object_ids = ["part-00000"]

    def on(self, method: str, path: str, *replies: Script) -> None:
        self.scripts[(method, path)] = list(replies)

    def count(self, method: str, path: str) -> int:
        return len(self.requests(method, path))

    def requests(self, method: str, path: str) -> list[Seen]:
        return [s for s in self.seen if (s.method, s.path) == (method, path)]

    def complete_job(self, **fields: Any) -> dict[str, Any]:
        job = {
            "id": "job-1",
            "status": "complete",
            "expires_at": "2099-01-01T00:00:00Z",
            "at": AT,
            "schema_version": 1,
            "objects": [{"id": i} for i in self.object_ids],
        }
        job.update(fields)
        return job

    def reply_to(self, seen: Seen) -> Reply:
        endpoint = endpoint_of(seen.method, seen.path)
        with self._lock:
            self.seen.append(seen)
            queue = self.scripts.get((seen.method, seen.path))
            if queue:
                script: Script | None = queue.pop(0) if len(queue) > 1 else queue[0]
            else:
                script = self.replies.get(endpoint)
        if script is not None:
            return script(seen) if callable(script) else script
        if self.dap_defaults:
            return self.default(endpoint, seen)
        error = {"type": "NotFoundError", "uuid": "u-404", "message": "no such path"}
        return Reply(404, json={"error": error})

    def default(self, endpoint: str, seen: Seen) -> Reply:
        """A DAP that works, for whatever no script or reply covers."""
        if endpoint == "login":
            return Reply(json={"access_token": make_jwt(time.time() + 3600), "expires_in": 3600})
        if endpoint == "tables":
            return Reply(json={"tables": self.tables})
        if endpoint == "schema":
            return Reply(json={"version": 1, "schema": {}})
        if endpoint in ("job", "poll"):
            return Reply(json=self.complete_job())
        if endpoint == "urls":
            ids = [item["id"] for item in seen.json()]
            urls = {i: {"url": f"{self.base_url}/objects/{n}"} for n, i in enumerate(ids)}
            return Reply(json={"urls": urls})
        return Reply(body=jsonl_gz(), content_type="application/octet-stream")


def _handler_for(server: StubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            parts = urlsplit(self.path)
            body = self.rfile.read(length) if length else b""
            seen = Seen(self.command, parts.path, parts.query, dict(self.headers), body)
            reply = server.reply_to(seen)
            time.sleep(reply.delay)
            try:
                self._send(reply)
            except OSError:
                self.close_connection = True  # the client gave up (read timeout tests)

        def _send(self, reply: Reply) -> None:
            body = reply.body
            content_type = reply.content_type
            if reply.json is not None:
                body = json.dumps(reply.json).encode()
                content_type = content_type or JSON
            self.send_response(reply.status)
            if content_type is not None:
                self.send_header("Content-Type", content_type)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if isinstance(body, bytes):
                if "Content-Length" not in reply.headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if reply.cut_to is not None:
                    body = body[: reply.cut_to]
                    self.close_connection = True  # or the client waits for the rest
                self.wfile.write(body)
                self.wfile.flush()
                return
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in _chunks(body):
                self.wfile.write(chunk)
                self.wfile.flush()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def _chunks(body: Iterable[bytes]) -> Iterator[bytes]:
    for chunk in body:
        if chunk:
            yield f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    yield b"0\r\n\r\n"


def login_reply(token: str | None = None, expires_in: int = 3599) -> Reply:
    return Reply(
        json={
            "access_token": token or make_jwt(T0 + 3600),
            "expires_in": expires_in,
            "scope": "urn:dap",
            "token_type": "bearer",
        }
    )


def token_sequence(*tokens: str) -> Callable[[Seen], Reply]:
    """A login script handing out the given tokens in turn (then the last one again)."""
    remaining = list(tokens)
    lock = threading.Lock()

    def reply(_: Seen) -> Reply:
        with lock:
            token = remaining.pop(0) if len(remaining) > 1 else remaining[0]
        return login_reply(token)

    return reply


@pytest.fixture
def server() -> Iterator[StubServer]:
    with StubServer() as stub:
        yield stub

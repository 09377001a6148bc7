"""A scriptable stand-in for the DAP API on 127.0.0.1, for answers no real server should give.

``StubServer`` answers every call dapctl makes with a working default (a login, a complete
snapshot job with one part, its URL, a gzip JSON Lines part) unless ``replies`` holds
something else for that endpoint: a ``Reply`` (status, content type, body, headers), or a
callable from the request to a ``Reply``. Bodies may be an iterable of chunks, sent with
chunked encoding, so a test can trickle or stream without end (bounded by the iterable).
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

JSON = "application/json"
ENDPOINTS = ("login", "tables", "job", "poll", "urls", "object", "schema")
AT = "2026-11-02T12:00:00Z"
RECORDS = [
    {"key": {"id": 1}, "value": {"name": "a"}, "meta": {"ts": AT, "action": "U"}},
    {"key": {"id": 2}, "value": {"name": "b"}, "meta": {"ts": AT, "action": "U"}},
]


def make_jwt(exp: float) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part({'exp': int(exp), 'sub': 'stub'})}.c2ln"


@dataclass
class Reply:
    status: int = 200
    content_type: str | None = JSON
    body: bytes | Iterable[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, value: Any, status: int = 200) -> Reply:
        return cls(status, JSON, json.dumps(value).encode())


@dataclass
class Seen:
    method: str
    path: str
    body: bytes
    headers: dict[str, str]


Script = Reply | Callable[[Seen], Reply]


def jsonl_gz(records: list[dict[str, Any]] = RECORDS) -> bytes:
    return gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode())


class StubServer:
    def __init__(self) -> None:
        self.replies: dict[str, Script] = {}
        self.seen: list[Seen] = []
        self.tables = ["accounts"]
        self.object_ids = ["part-00000"]
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> StubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def reset(self) -> None:
        self.replies = {}
        self.seen = []
        self.tables = ["accounts"]
        self.object_ids = ["part-00000"]

    # -- the defaults: a server that works ---------------------------------------------

    def default(self, endpoint: str, seen: Seen) -> Reply:
        if endpoint == "login":
            return Reply.json({"access_token": make_jwt(time.time() + 3600), "expires_in": 3600})
        if endpoint == "tables":
            return Reply.json({"tables": self.tables})
        if endpoint == "schema":
            return Reply.json({"version": 1, "schema": {}})
        if endpoint in ("job", "poll"):
            return Reply.json(self.complete_job())
        if endpoint == "urls":
            ids = [item["id"] for item in json.loads(seen.body)]
            return Reply.json(
                {"urls": {i: {"url": f"{self.base_url}/objects/{n}"} for n, i in enumerate(ids)}}
            )
        return Reply(200, "application/octet-stream", jsonl_gz())

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

    def answer(self, seen: Seen) -> Reply:
        endpoint = endpoint_of(seen.method, seen.path)
        self.seen.append(seen)
        script = self.replies.get(endpoint)
        if script is None:
            return self.default(endpoint, seen)
        return script(seen) if callable(script) else script


PATTERNS = (
    ("POST", re.compile(r"/ids/auth/login"), "login"),
    ("GET", re.compile(r"/dap/query/[^/]+/table"), "tables"),
    ("GET", re.compile(r"/dap/query/[^/]+/table/[^/]+/schema"), "schema"),
    ("POST", re.compile(r"/dap/query/[^/]+/table/[^/]+/data"), "job"),
    ("GET", re.compile(r"/dap/job/.+"), "poll"),
    ("POST", re.compile(r"/dap/object/url"), "urls"),
)


def endpoint_of(method: str, path: str) -> str:
    for want, pattern, name in PATTERNS:
        if method == want and pattern.fullmatch(path.split("?", 1)[0]):
            return name
    return "object"


def _handler(stub: StubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            seen = Seen(self.command, self.path, body, dict(self.headers))
            reply = stub.answer(seen)
            try:
                self._send(reply)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _send(self, reply: Reply) -> None:
            self.send_response(reply.status)
            if reply.content_type is not None:
                self.send_header("Content-Type", reply.content_type)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if isinstance(reply.body, bytes):
                if "Content-Length" not in reply.headers:
                    self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
                return
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in reply.body:
                if chunk:
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")

        do_GET = do_POST = _serve

    return Handler

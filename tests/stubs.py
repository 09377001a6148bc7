"""Scripted stub servers and a fake clock for client and auth tests (pytest plugin).

``ScriptedServer`` answers on a real socket (127.0.0.1, port 0) with ``Reply`` values a test
queues per (method, path), and records what it ``Seen``; it pins edge cases the emulator does
not script (a login 403 that clears, an opaque token, an HTML 503). ``FakeTime`` is a clock
and sleeper in one. Fixtures: ``server`` (a started stub) and ``fake`` (a FakeTime).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

T0 = 1_900_000_000.0
SECRET = "s3cr3t-VALUE-never-shown"
CLIENT_ID = "us-east-1#2f6d1c4e-client"


def make_jwt(exp: float, **claims: Any) -> str:
    def part(obj: dict[str, Any]) -> str:
        raw = json.dumps(obj).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part({'exp': int(exp), **claims})}.c2lnbmF0dXJl"


@dataclass
class Reply:
    status: int = 200
    json: Any = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
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


class ScriptedServer:
    """Answers each (method, path) from its script; the last reply repeats forever."""

    def __init__(self) -> None:
        self.scripts: dict[tuple[str, str], list[Script]] = {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def on(self, method: str, path: str, *replies: Script) -> None:
        self.scripts[(method, path)] = list(replies)

    def count(self, method: str, path: str) -> int:
        return sum(1 for s in self.seen if (s.method, s.path) == (method, path))

    def requests(self, method: str, path: str) -> list[Seen]:
        return [s for s in self.seen if (s.method, s.path) == (method, path)]

    def reply_to(self, seen: Seen) -> Reply:
        with self._lock:
            self.seen.append(seen)
            queue = self.scripts.get((seen.method, seen.path))
            if not queue:
                error = {"type": "NotFoundError", "uuid": "u-404", "message": "no such path"}
                return Reply(404, json={"error": error})
            script = queue.pop(0) if len(queue) > 1 else queue[0]
        return script(seen) if callable(script) else script

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _handler_for(server: ScriptedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            parts = urlsplit(self.path)
            seen = Seen(
                self.command, parts.path, parts.query, dict(self.headers), self.rfile.read(length)
            )
            reply = server.reply_to(seen)
            body = reply.body
            headers = dict(reply.headers)
            if reply.json is not None:
                body = json.dumps(reply.json).encode()
                headers.setdefault("Content-Type", "application/json")
            time.sleep(reply.delay)
            try:
                self.send_response(reply.status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body if reply.cut_to is None else body[: reply.cut_to])
                self.wfile.flush()
            except OSError:
                pass  # the client gave up (read timeout tests)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class FakeTime:
    """One fake clock for everything; ``sleep`` records the wait and moves the clock on."""

    def __init__(self, start: float = T0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


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
def server() -> Iterator[ScriptedServer]:
    stub = ScriptedServer().start()
    yield stub
    stub.stop()


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()

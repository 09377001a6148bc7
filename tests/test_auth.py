"""TokenProvider against a scripted Identity Service on a real socket (127.0.0.1, port 0).

The stub helpers here (``ScriptedServer``, ``Reply``, ``FakeTime``, ``make_jwt``) are shared
with ``test_client.py``; they pin edge cases the emulator does not script (a login 403 that
clears, an opaque token, an HTML 503).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from freezegun import freeze_time
from pydantic import SecretStr

from dapctl import __version__
from dapctl.auth import TokenProvider, jwt_expiry
from dapctl.config import RetrySettings
from dapctl.errors import AuthError

# ---------------------------------------------------------------------------------- stubs

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


RETRY = RetrySettings(attempts=4, initial_backoff=1.0, max_backoff=8.0)
LOGIN = ("POST", "/ids/auth/login")


def provider(server: ScriptedServer, fake: FakeTime, **overrides: Any) -> TokenProvider:
    options: dict[str, Any] = {
        "session": requests.Session(),
        "base_url": server.base_url,
        "client_id": CLIENT_ID,
        "client_secret": SecretStr(SECRET),
        "profile": "prod",
        "retry": RETRY,
        "clock": fake.clock,
        "sleep": fake.sleep,
    }
    options.update(overrides)
    return TokenProvider(**options)


# ---------------------------------------------------------------------------------- tests


def test_login_is_the_documented_client_credentials_request(server, fake):
    token = make_jwt(T0 + 3600)
    server.on(*LOGIN, login_reply(token))

    assert provider(server, fake).token() == token

    (seen,) = server.requests(*LOGIN)
    scheme, _, credentials = seen.headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(credentials).decode() == f"{CLIENT_ID}:{SECRET}"
    assert parse_qs(seen.body.decode()) == {"grant_type": ["client_credentials"]}
    assert seen.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert seen.headers["User-Agent"] == f"dapctl/{__version__}"


def test_token_is_reused_until_the_refresh_margin(server, fake):
    server.on(*LOGIN, token_sequence(make_jwt(T0 + 3600), make_jwt(T0 + 7200)))
    tokens = provider(server, fake, refresh_margin=300.0)

    first = tokens.token()
    assert tokens.expires_at is not None and tokens.expires_at.timestamp() == T0 + 3600
    fake.now = T0 + 3600 - 301  # just outside the margin: still good
    assert tokens.token() == first
    fake.now = T0 + 3600 - 299  # inside the margin: refreshed before it expires
    second = tokens.token()

    assert second != first
    assert server.count(*LOGIN) == 2
    assert tokens.expires_at.timestamp() == T0 + 7200


def test_expires_in_is_used_when_the_token_is_not_a_jwt(server, fake):
    server.on(*LOGIN, login_reply("opaque-token-value", expires_in=1200))
    tokens = provider(server, fake)

    tokens.token()

    assert tokens.expires_at is not None and tokens.expires_at.timestamp() == T0 + 1200


def test_short_lived_token_is_renewed_at_half_life_not_on_every_call(server, fake):
    server.on(*LOGIN, login_reply(make_jwt(T0 + 120)))  # shorter than the 5 minute margin
    tokens = provider(server, fake)

    tokens.token()
    fake.now = T0 + 59
    tokens.token()
    assert server.count(*LOGIN) == 1
    fake.now = T0 + 61
    tokens.token()
    assert server.count(*LOGIN) == 2


def test_refresh_follows_freezegun_time(server):
    with freeze_time("2030-03-17 12:00:00") as frozen:
        now = time.time()
        server.on(*LOGIN, token_sequence(make_jwt(now + 3600), make_jwt(now + 7200)))
        tokens = provider(server, FakeTime(), clock=time.time)
        first = tokens.token()
        frozen.tick(3000)
        assert tokens.token() == first
        frozen.tick(400)  # 200 s before exp: inside the 300 s margin
        assert tokens.token() != first
    assert server.count(*LOGIN) == 2


def test_many_threads_share_one_login(server, fake):
    # The login is slow, so every thread arrives while it is in flight.
    server.on(*LOGIN, dataclasses.replace(login_reply(), delay=0.3))
    tokens = provider(server, fake)
    barrier = threading.Barrier(8)
    results: list[str] = []

    def work() -> None:
        barrier.wait()
        results.append(tokens.token())

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert server.count(*LOGIN) == 1
    assert len(set(results)) == 1 and len(results) == 8


def test_invalidate_drops_only_the_current_token(server, fake):
    server.on(*LOGIN, token_sequence("token-one", "token-two", "token-three"))
    tokens = provider(server, fake)
    old = tokens.token()

    # Eight threads saw a 401 with the same token: one re-login between them.
    for _ in range(8):
        tokens.invalidate(old)
        new = tokens.token()
    tokens.invalidate("token-stale")  # a token already replaced changes nothing

    assert (old, new) == ("token-one", "token-two")
    assert tokens.token() == "token-two"
    assert server.count(*LOGIN) == 2


def test_login_403_from_a_gateway_is_retried(server, fake):
    forbidden = {"error": {"type": "Forbidden", "uuid": "u-1", "message": "try later"}}
    server.on(*LOGIN, Reply(403, json=forbidden), Reply(400, json=forbidden), login_reply())

    provider(server, fake).token()

    assert server.count(*LOGIN) == 3
    assert len(fake.sleeps) == 2
    assert 0.5 <= fake.sleeps[0] <= 1.0 and 1.0 <= fake.sleeps[1] <= 2.0


def test_login_failure_names_profile_status_message_uuid_and_hint(server, fake):
    error = {"type": "AuthenticationError", "uuid": "u-login-7", "message": "invalid client"}
    server.on(*LOGIN, Reply(403, json={"error": error}))

    with pytest.raises(AuthError) as caught:
        provider(server, fake).token()

    exc = caught.value
    assert server.count(*LOGIN) == RETRY.attempts
    assert (exc.status, exc.error_type, exc.uuid) == (403, "AuthenticationError", "u-login-7")
    text = str(exc)
    for part in ("'prod'", "403", "invalid client", "u-login-7", "check the client ID and secret"):
        assert part in text


def test_login_401_is_not_retried(server, fake):
    server.on(*LOGIN, Reply(401, json={"error": {"type": "AuthenticationError"}}))

    with pytest.raises(AuthError):
        provider(server, fake).token()

    assert server.count(*LOGIN) == 1


def test_login_html_503_is_retried_then_quoted(server, fake):
    page = b"<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"
    server.on(*LOGIN, Reply(503, body=page, headers={"Content-Type": "text/html"}))

    with pytest.raises(AuthError) as caught:
        provider(server, fake).token()

    assert server.count(*LOGIN) == RETRY.attempts
    assert caught.value.status == 503
    assert "503 Service Temporarily Unavailable" in str(caught.value)
    assert "try again later" in str(caught.value)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nobody listens there now: connection refused


def test_unreachable_identity_service(server, fake):
    tokens = provider(server, fake, base_url=closed_port_url(), timeout=(1.0, 1.0))

    with pytest.raises(AuthError, match="cannot reach the Identity Service"):
        tokens.token()
    assert len(fake.sleeps) == RETRY.attempts - 1


def test_secret_and_token_never_leak(server, fake, caplog):
    token = make_jwt(T0 + 3600, sub="known-subject")
    caplog.set_level(logging.DEBUG)
    error = {"type": "Forbidden", "uuid": "u-9", "message": "nope"}
    server.on(*LOGIN, Reply(403, json={"error": error}), login_reply(token))
    tokens = provider(server, fake)
    tokens.token()
    tokens.invalidate(token)
    server.on(*LOGIN, Reply(403, json={"error": error}))
    with pytest.raises(AuthError) as caught:
        tokens.token()

    exposed = [str(caught.value), repr(caught.value), repr(tokens), caplog.text]
    exposed += [str(record.args) for record in caplog.records]
    for text in exposed:
        assert SECRET not in text
        assert token not in text
        assert token.split(".")[1] not in text
    assert "login for profile 'prod'" in caplog.text  # the retries were logged


def test_jwt_expiry_parsing():
    assert jwt_expiry(make_jwt(1234.0)) == 1234.0
    assert jwt_expiry("not-a-jwt") is None
    assert jwt_expiry("a.!!!.c") is None
    no_exp = base64.urlsafe_b64encode(b'{"sub": "x"}').decode().rstrip("=")
    assert jwt_expiry(f"h.{no_exp}.s") is None


def test_clock_running_past_the_servers_does_not_cause_a_login_per_call(server, fake):
    # The JWT says it expired an hour ago by our clock; the server still accepts it.
    server.on(*LOGIN, login_reply(make_jwt(T0 - 3600), expires_in=3599))
    tokens = provider(server, fake)

    tokens.token()
    fake.now += 600
    tokens.token()

    assert server.count(*LOGIN) == 1
    assert tokens.expires_at is not None and tokens.expires_at.timestamp() == T0 + 3599

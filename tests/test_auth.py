"""TokenProvider against a scripted Identity Service on a real socket (127.0.0.1, port 0).

The stub server comes from ``tests/stubs.py``, the fake clock from ``tests/clock.py``.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import socket
import threading
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
from pydantic import SecretStr

from dapctl import __version__
from dapctl.api.auth import TokenProvider, jwt_expiry
from dapctl.config import RetrySettings
from dapctl.errors import AuthError
from tests.clock import T0, FakeClock
from tests.stubs import (
    CLIENT_ID,
    SECRET,
    Reply,
    StubServer,
    login_reply,
    make_jwt,
    token_sequence,
)

RETRY = RetrySettings(attempts=4, initial_backoff=1.0, max_backoff=8.0)
LOGIN = ("POST", "/ids/auth/login")


def provider(server: StubServer, fake: FakeClock, **overrides: Any) -> TokenProvider:
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


def test_by_default_a_token_is_renewed_five_minutes_before_it_expires(server, fake):
    server.on(*LOGIN, token_sequence(make_jwt(T0 + 3600), make_jwt(T0 + 7200)))
    tokens = provider(server, fake)  # no refresh_margin: the default's
    first = tokens.token()
    fake.tick(3000)
    assert tokens.token() == first
    fake.tick(400)  # 200 s before exp: inside the 300 s margin
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

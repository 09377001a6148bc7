"""Alerts (issue 23, item 4): ``[[notify]]`` webhooks, against a local HTTP server.

One message per apply naming what failed and why, with the run id; "recovered" once when a
failing table succeeds again; Slack's and the JSON body; a webhook answering 500 is tried
again; a hanging one delays the apply by a bounded time; a webhook URL in the config is
refused without echoing it; and no secret (client secret, webhook URL) in any body, output
or log.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dapctl import notify
from tests.apply_helpers import config_text, environ

HOOK_VAR = "TEST_WEBHOOK_URL"
TOKEN = "T000/B000/hooksecret42"


class Hook:
    """A webhook on 127.0.0.1: records each body; answers ``statuses`` in turn (then 200),
    after ``delay`` seconds."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.statuses: list[int] = []
        self.delay = 0.0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                hook.bodies.append(json.loads(self.rfile.read(length)))
                time.sleep(hook.delay)
                status = hook.statuses.pop(0) if hook.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/{TOKEN}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def hook() -> Iterator[Hook]:
    made = Hook()
    yield made
    made.server.shutdown()


def _config(emu, *, form: str = "json", on: str = '["failure", "recovered"]') -> str:
    text = config_text(emu, tables='["accounts", "users"]')
    return f'{text}\n[[notify]]\nurl_env = "{HOOK_VAR}"\non = {on}\nformat = "{form}"\n'


def _env(emu, hook: Hook) -> dict[str, str]:
    return {**environ(emu), HOOK_VAR: hook.url}


def test_a_failure_sends_one_message_naming_it_then_recovered_once(
    make_emulator, write_config, run_cli, hook, caplog
):
    emu = make_emulator(failing_tables=["canvas.accounts"])
    path = write_config(_config(emu))

    failed = run_cli("apply", str(path), "--json", environ=_env(emu, hook))

    assert failed.code == 1
    [message] = hook.bodies
    run_id = json.loads(failed.stdout)["run_id"]
    assert message["run_id"] == run_id and message["outcome"] == "failed"
    assert [f["address"] for f in message["failed"]] == ["univ_a/core/canvas.accounts"]
    assert message["failed"][0]["error"]

    emu.faults.update(failing_tables=[])
    assert run_cli("apply", str(path), environ=_env(emu, hook)).code == 0
    assert hook.bodies[1]["recovered"] == ["univ_a/core/canvas.accounts"]
    assert hook.bodies[1]["failed"] == []

    emu.advance(600)
    assert run_cli("apply", str(path), environ=_env(emu, hook)).code == 0
    assert len(hook.bodies) == 2  # nothing failed, nothing recovered: no message

    shown = json.dumps(hook.bodies) + caplog.text
    assert emu.credentials[1] not in shown and TOKEN not in shown


def test_the_slack_body_is_one_text(make_emulator, write_config, run_cli, hook):
    emu = make_emulator(failing_tables=["canvas.users"])
    path = write_config(_config(emu, form="slack"))

    run_cli("apply", str(path), environ=_env(emu, hook))

    [message] = hook.bodies
    assert set(message) == {"text"}
    assert "failed univ_a/core/canvas.users" in message["text"]
    assert "run 20" in message["text"]


def test_stale_tables_are_told_when_asked(make_emulator, write_config, run_cli, hook):
    emu = make_emulator()  # its data is a month behind the wall clock
    text = _config(emu, on='["stale"]').replace(
        'tables = ["accounts", "users"]',
        'tables = ["accounts", "users"]\nfreshness = { warn_after = "6h", error_after = "1d" }',
    )
    path = write_config(text)

    assert run_cli("apply", str(path), environ=_env(emu, hook)).code == 0

    [message] = hook.bodies
    assert {s["address"] for s in message["stale"]} == {
        "univ_a/core/canvas.accounts",
        "univ_a/core/canvas.users",
    }
    assert message["stale"][0]["freshness"].startswith("error")


def test_a_webhook_answering_500_is_tried_again(hook):
    hook.statuses = [500, 502]

    assert notify.send(hook.url, {"text": "x"}, name="notify[0]") is True
    assert len(hook.bodies) == 3


def test_a_webhook_that_keeps_failing_is_logged_without_its_url(hook, caplog):
    hook.statuses = [500] * 5

    assert notify.send(hook.url, {"text": "x"}, name="notify[0]") is False
    assert len(hook.bodies) == notify.ATTEMPTS
    assert "notify[0]" in caplog.text and "HTTP 500" in caplog.text
    assert TOKEN not in caplog.text


def test_a_hanging_webhook_delays_the_apply_a_bounded_time(
    make_emulator, write_config, run_cli, hook, monkeypatch
):
    monkeypatch.setattr(notify, "TIMEOUT", (1.0, 0.5))
    hook.delay = 30.0  # far longer than any attempt may wait
    emu = make_emulator(failing_tables=["canvas.accounts"])
    path = write_config(_config(emu))

    started = time.monotonic()
    result = run_cli("apply", str(path), environ=_env(emu, hook))
    took = time.monotonic() - started

    assert result.code == 1  # the step's failure, not the webhook's
    assert took < 15, took  # three half-second attempts and their waits, not 30 s each
    assert len(hook.bodies) == notify.ATTEMPTS
    assert "timed out" in result.stderr.lower() or "ReadTimeout" in result.stderr


def test_a_webhook_url_in_the_config_is_refused_without_echoing_it(
    make_emulator, write_config, run_cli, hook
):
    emu = make_emulator()
    text = config_text(emu) + f'\n[[notify]]\nurl = "{hook.url}"\n'
    path = write_config(text)

    result = run_cli("validate", str(path))

    assert result.code == 1
    assert "notify[0].url" in result.stderr and "url_env" in result.stderr
    assert TOKEN not in result.stderr + result.stdout


def test_a_missing_webhook_variable_is_logged_and_the_apply_stands(
    make_emulator, write_config, run_cli, hook
):
    emu = make_emulator(failing_tables=["canvas.accounts"])
    path = write_config(_config(emu))

    result = run_cli("apply", str(path), environ=environ(emu))  # no HOOK_VAR

    assert result.code == 1 and hook.bodies == []
    assert HOOK_VAR in result.stderr

"""The ``dapctl emulator`` flags: every knob documented, parsed into settings and faults."""

from __future__ import annotations

import argparse
import io
import logging
import socket
import struct
import threading
import time

from dapctl.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, RateLimits, cli
from dapctl.emulator.faults import KNOBS
from tests.emulator.helpers import http_get


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dapctl emulator")
    cli.configure_parser(p)
    return p


def test_help_documents_every_knob() -> None:
    text = parser().format_help()
    flags = {
        "token_lifetime": "--token-lifetime", "login_failures": "--fail-logins",
        "login_failure_status": "--login-failure-status",
        "expired_token_status": "--expired-token-status", "error_every": "--error-every",
        "error_status": "--error-status", "error_retry_after": "--error-retry-after",
        "error_html": "--error-html", "cut_every": "--cut-every", "job_delay": "--job-delay",
        "url_lifetime": "--url-lifetime", "failing_tables": "--fail-table",
        "failed_job_type": "--failed-job-type",
        "account_states": "--account-state", "cache_jobs": "--no-job-cache",
    }  # fmt: skip
    assert set(flags) == set(KNOBS)
    for flag in [*flags.values(), "--port", "--seed", "--client-id", "--rate-limit-window"]:
        assert flag in text
    assert "examples:" in text


def test_flags_become_settings_and_faults() -> None:
    args = parser().parse_args(
        ["--seed", "7", "--rows", "10", "--table-rows", "canvas.big=99", "--client", "b=s",
         "--rate-limit-jobs", "9", "--rate-limit-window", "1", "--error-every", "3",
         "--error-status", "503", "--error-html", "--error-retry-after", "none",
         "--fail-table", "canvas.users", "--account-state", "b=AccountDisabled",
         "--start", "2026-01-01T00:00:00Z", "--no-job-cache", "--fail-logins", "2"]
    )  # fmt: skip
    settings, faults = cli.settings_from_args(args)
    assert (settings.seed, settings.rows_per_table, dict(settings.rows)) == (
        7,
        10,
        {"canvas.big": 99},
    )
    assert settings.limits == RateLimits(jobs=9, job_status=500, urls=200, window=1.0, tables=5)
    assert settings.all_clients() == {DEMO_CLIENT_ID: DEMO_CLIENT_SECRET, "b": "s"}
    assert (faults.error_every, faults.error_status, faults.error_html) == (3, 503, True)
    assert faults.error_retry_after is None and faults.failing_tables == {"canvas.users"}
    assert faults.account_states == {"b": "AccountDisabled"} and not faults.cache_jobs
    assert faults.login_failures == 2
    no_limits, _ = cli.settings_from_args(parser().parse_args(["--no-rate-limits"]))
    assert no_limits.limits is None and not no_limits.live
    live, _ = cli.settings_from_args(parser().parse_args(["--live"]))
    assert live.live


def test_run_serves_until_stopped_and_prints_credentials() -> None:
    out, stop = io.StringIO(), threading.Event()
    args = parser().parse_args(["--job-delay", "0"])
    thread = threading.Thread(target=cli.run, args=(args, out, stop))
    thread.start()
    try:
        for _ in range(100):
            if "listening on" in out.getvalue():
                break
            time.sleep(0.02)
        text = out.getvalue()
        base_url = text.split("listening on ")[1].split()[0]
        assert f"DAP_CLIENT_ID={DEMO_CLIENT_ID}" in text and DEMO_CLIENT_SECRET in text
        assert http_get(f"{base_url}/_emulator/health").json()["ok"] is True
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def test_own_secret_is_not_echoed() -> None:
    out, stop = io.StringIO(), threading.Event()
    stop.set()
    args = parser().parse_args(["--client-id", "me", "--client-secret", "hunter2"])
    assert cli.run(args, out, stop) == 0
    assert "hunter2" not in out.getvalue() and "DAP_CLIENT_ID=me" in out.getvalue()


# ---- bad ports and cut connections (issue 14 #19) ----------------------------------------


def test_a_port_in_use_is_a_clear_error_and_exit_1(run_cli) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = run_cli("emulator", "--port", str(port))

    assert result.code == 1, result.stderr
    assert result.stderr.startswith(f"Error: the emulator cannot listen on 127.0.0.1:{port}: ")
    assert "in use" in result.stderr and "--port 0 for a free one" in result.stderr
    assert "Internal error" not in result.stderr


def test_a_port_out_of_range_is_a_usage_error(run_cli) -> None:
    for port in ("70000", "-1", "http"):
        result = run_cli("emulator", "--port", port)

        assert result.code == 1, result.stderr
        assert f"argument --port: '{port}' is not a port: use 1-65535" in result.stderr
        assert "Internal error" not in result.stderr


def test_a_client_that_hangs_up_leaves_no_traceback(emulator, capfd, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="dapctl.emulator")
    with socket.create_connection(("127.0.0.1", emulator.port)) as conn:
        conn.sendall(b"GET /dap/query HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # ... closed with a reset: the server's read fails mid-request.
    deadline = time.monotonic() + 5
    err = ""
    while time.monotonic() < deadline and "hung up" not in caplog.text and not err:
        time.sleep(0.02)
        err = capfd.readouterr().err

    assert "Traceback" not in err and "Exception occurred" not in err
    assert "a client hung up mid-request (ConnectionResetError)" in caplog.text

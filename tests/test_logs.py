"""Logging: --log-format, --log-file, --log-level, the JSON line fields, and no secrets."""

from __future__ import annotations

import io
import json
import logging
import stat

import pytest

from dapctl.api.ratelimit import RateLimiter
from dapctl.cli.logs import JsonFormatter, logging_to, redact
from tests.apply_helpers import config_text, environ


def json_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_json_log_file_carries_step_fields_and_no_secrets(
    make_emulator, write_config, run_cli, tmp_path
):
    emu = make_emulator()
    emu.faults.fail_table("canvas", "users")
    path = write_config(config_text(emu))
    log_file = tmp_path / "dapctl.jsonl"
    token = run_cli("token", str(path), "--profile", "univ_a", environ=environ(emu)).stdout.strip()

    result = run_cli(
        "apply",
        str(path),
        "--debug",
        "--log-format",
        "json",
        "--log-file",
        str(log_file),
        environ=environ(emu),
    )

    assert result.code == 1
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
    records = json_lines(log_file)
    assert all(
        {"time", "level", "logger", "event", "address", "message"} <= set(r) for r in records
    )
    assert all(r["time"].endswith("Z") for r in records)
    started = [r for r in records if r["event"] == "job_started"]
    assert {r["address"] for r in started} == {
        "univ_a/core/canvas.accounts",
        "univ_a/core/canvas.users",
    }
    assert all(r["job_id"] for r in started)
    assert any(r["event"] == "running" and r["status"] == "complete" for r in records)
    finished = {r["address"]: r for r in records if r["event"] == "finished"}
    ok, failed = finished["univ_a/core/canvas.accounts"], finished["univ_a/core/canvas.users"]
    assert ok["level"] == "info" and ok["status"] == "ok" and ok["records"] > 0
    assert failed["level"] == "error" and failed["status"] == "failed"
    assert failed["error_uuid"] and failed["error_type"]
    text = log_file.read_text()
    assert emu.credentials[1] not in text
    assert token not in text and token.split(".")[2] not in text
    # With a log file the console keeps warnings and errors, as text: a failed step's record
    # too (issue "Tried as a new user would", item 10), but no info such as a job's start.
    assert "job_started" not in result.stderr and "canvas.accounts: ok" not in result.stderr
    assert "ERROR: univ_a/core/canvas.users: failed: ProcessingError" in result.stderr


def test_text_log_file_is_stamped_and_levels_filter(make_emulator, write_config, run_cli, tmp_path):
    emu = make_emulator()
    path = write_config(config_text(emu))
    log_file = tmp_path / "dapctl.log"

    result = run_cli(
        "apply", str(path), "--log-level", "info", "--log-file", str(log_file), environ=environ(emu)
    )

    assert result.code == 0
    lines = log_file.read_text().splitlines()
    started = " dapctl.apply INFO: univ_a/core/canvas.accounts: snapshot job "
    assert any(started in line for line in lines)
    assert not any(" DEBUG: " in line for line in lines)
    assert lines[0][:4].isdigit() and "Z " in lines[0]


def test_json_logs_on_stderr_without_a_file(make_emulator, write_config, run_cli):
    emu = make_emulator()
    path = write_config(config_text(emu))

    result = run_cli(
        "apply",
        str(path),
        "--json",
        "--log-format",
        "json",
        "--log-level",
        "info",
        environ=environ(emu),
    )

    assert result.code == 0
    assert json.loads(result.stdout)["ok"] is True  # stdout stays one document
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert {"job_started", "finished"} <= {r["event"] for r in records}


def test_default_console_shows_warnings_only(make_emulator, write_config, run_cli):
    emu = make_emulator()
    path = write_config(config_text(emu))
    result = run_cli("apply", str(path), environ=environ(emu))
    assert result.code == 0 and result.stderr == ""


def test_an_unwritable_log_file_is_an_error(write_config, run_cli, tmp_path):
    path = write_config(
        '[profiles.demo]\nemulator = true\n\n[[targets]]\nname = "c"\ntables = ["a"]\n'
    )
    (tmp_path / "a-file").write_text("")  # missing folders are created; a file is in the way
    result = run_cli("validate", str(path), "--log-file", str(tmp_path / "a-file" / "x.log"))
    assert result.code == 1 and "--log-file" in result.stderr and "cannot open" in result.stderr


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123456789",
        "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl here",
        "GET https://bucket.example/part-0.gz?X-Amz-Signature=deadbeef&X-Amz-Credential=x",
    ],
)
def test_redact_masks_what_must_never_be_logged(text):
    masked = redact(text)
    assert "abcdefghijklmnop" not in masked
    assert "c2lnbmF0dXJl" not in masked
    assert "deadbeef" not in masked
    assert "<redacted" in masked


def test_json_formatter_keeps_extra_fields_and_exceptions():
    record = logging.LogRecord("dapctl.apply", logging.ERROR, __file__, 1, "boom %s", ("x",), None)
    record.event, record.address, record.job_id = "finished", "a/t/ns.x", "j1"
    try:
        raise ValueError("bad")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()

    document = json.loads(JsonFormatter().format(record))

    assert document["message"] == "boom x" and document["level"] == "error"
    assert (document["event"], document["address"], document["job_id"]) == (
        "finished",
        "a/t/ns.x",
        "j1",
    )
    assert "ValueError: bad" in document["exception"]


def test_debug_shows_the_http_layer_without_secrets(make_emulator, write_config, run_cli):
    # Issue "Tried as a new user would", item 15: the README promises the HTTP layer's details.
    emu = make_emulator()
    path = write_config(config_text(emu, tables='["accounts"]'))

    result = run_cli("apply", str(path), "--debug", environ=environ(emu))

    assert result.code == 0
    lines = [line for line in result.stderr.splitlines() if " -> HTTP " in line]
    assert any(
        line.startswith("DEBUG: POST /dap/query/canvas/table/accounts/data") for line in lines
    )
    assert any("(pre-signed URL) -> HTTP 200" in line for line in lines), lines
    assert "X-Signature" not in result.stderr and emu.credentials[1] not in result.stderr
    assert "Bearer" not in result.stderr


# ---- a rate-limit wait's notice (issue 20, item 15) ----------------------------------------


def announce_a_wait(progress_shows: bool, *, level: int, file=None) -> str:
    """Run a limiter's announced wait under ``logging_to``; what the console got."""
    console = io.StringIO()
    limiter = RateLimiter(1, clock=lambda: 0.0, sleep=lambda s: None, purpose="a job slot")
    with logging_to(console, level=level, file=file, progress_shows=lambda: progress_shows):
        limiter.acquire()
        limiter.acquire()  # waits a minute
    return console.getvalue()


def test_a_wait_is_a_warning_where_no_progress_shows_it():
    assert announce_a_wait(False, level=logging.WARNING) == "WARNING: waiting 60 s for a job slot\n"


def test_a_wait_the_progress_shows_is_info(tmp_path):
    assert announce_a_wait(True, level=logging.WARNING) == ""
    assert announce_a_wait(True, level=logging.INFO) == "INFO: waiting 60 s for a job slot\n"
    log_file = tmp_path / "dapctl.log"
    assert announce_a_wait(True, level=logging.INFO, file=log_file) == ""
    assert log_file.read_text().endswith(" dapctl.ratelimit INFO: waiting 60 s for a job slot\n")

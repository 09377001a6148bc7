"""SIGTERM stops an apply as Ctrl-C does (exit 143), and what ends a command reaches
``--log-file`` (issue "Tried as a new user would", item 10)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from dapctl.errors import ExitStatus
from dapctl.loading import load_config
from dapctl.state import LocalStateStore
from tests.apply_helpers import FAST, apply, config_text, environ


def wait_for_pending(path, count: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = LocalStateStore(load_config(path).state_path).read()
        if state and sum(s.pending is not None for s in state.steps.values()) == count:
            return
        time.sleep(0.05)
    pytest.fail("the child never recorded its jobs")


def test_sigterm_stops_apply_records_the_jobs_and_exits_143(make_emulator, write_config):
    emu = make_emulator(job_delay=3.0)  # the jobs are still running when SIGTERM comes
    path = write_config(config_text(emu))
    log_file = path.parent / "logs" / "apply.jsonl"
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dapctl",
            "apply",
            str(path),
            *("--log-format", "json"),
            "--log-file",
            str(log_file),
        ],
        env={**os.environ, **environ(emu)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_pending(path, 2)
        child.send_signal(signal.SIGTERM)
        _, stderr = child.communicate(timeout=30)
    finally:
        child.kill()

    assert child.returncode == ExitStatus.TERMINATED == 143
    assert "Terminated (SIGTERM): stopped starting work" in stderr
    assert "next apply resumes them" in stderr and "Traceback" not in stderr
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [r["signal"] for r in records if r["event"] == "interrupted"] == ["SIGTERM"]
    jobs = emu.stats.jobs_created
    results = apply(path, emu, connection=dataclasses.replace(FAST, poll_max=0.2))
    assert [r.status for r in results] == ["ok", "ok"]
    assert emu.stats.jobs_created == jobs == 2  # the terminated apply's jobs were resumed


def test_an_error_that_ends_the_command_reaches_the_log_file(write_config, run_cli, make_emulator):
    emu = make_emulator()
    path = write_config(config_text(emu))
    log_file = path.parent / "logs" / "x.jsonl"
    store = LocalStateStore(load_config(path).state_path)

    with store.lock(timeout=0, command="dapctl apply"):
        result = run_cli(
            "apply",
            str(path),
            "--log-format",
            "json",
            "--log-file",
            str(log_file),
            environ=environ(emu),
        )

    assert result.code == 1
    assert result.stderr.count("locked by pid") == 1  # said once on the console
    fatal = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [(r["level"], r["event"], r["error_type"]) for r in fatal] == [
        ("error", "fatal", "LockError")
    ]
    assert "locked by pid" in fatal[0]["message"]


def test_a_failed_step_stays_on_the_console_with_a_log_file(write_config, run_cli, make_emulator):
    emu = make_emulator()
    emu.faults.fail_logins(1000, status=403)
    path = write_config(config_text(emu, tables='["accounts"]'))

    result = run_cli(
        "apply", str(path), "--log-file", str(path.parent / "x.log"), environ=environ(emu)
    )

    assert result.code == 1
    assert "ERROR: univ_a/core/canvas.accounts: failed: AuthenticationError" in result.stderr

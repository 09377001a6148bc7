"""Fidelity: the official client (``dap`` CLI of instructure-dap-client) against the emulator.

Every command must succeed, and what it downloads must decompress to exactly the records the
emulator meant to serve, record by record, for jsonl, csv and tsv. Jobs complete at once
(``job_delay=0``) because the client sleeps 5 s between polls.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dapctl.emulator import Emulator
from tests.clock import FakeClock
from tests.emulator.helpers import Client, by_key, decode, parse_ts

DAP = Path(sys.executable).with_name("dap")
pytestmark = pytest.mark.skipif(not DAP.exists(), reason="instructure-dap-client not installed")


def dap(emu: Emulator, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    client_id, secret = emu.credentials
    env = {**os.environ, "DAP_TRACKING": "false", "DAP_CLIENT_ID": client_id,
           "DAP_CLIENT_SECRET": secret, "NO_COLOR": "1", "COLUMNS": "200"}  # fmt: skip
    command = [str(DAP), "--base-url", emu.base_url, "--non-interactive", *args]
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result


def downloaded(emu: Emulator, out: Path, fmt: str) -> dict[str, list[dict]]:
    """Records per table name, decoded from every part the client saved."""
    found: dict[str, list[dict]] = {}
    emu.faults.fail_every(0)  # the schema look-ups below are not under test
    schemas = Client(emu)
    for job_dir in sorted(out.glob("job_*")):
        job = emu.jobs.get(job_dir.name.removeprefix("job_"), emu.clock())
        assert job is not None
        spec = job.table.spec
        schema = {} if fmt == "jsonl" else schemas.schema(spec.name, spec.namespace)
        records = found.setdefault(spec.name, [])
        for part in sorted(job_dir.iterdir()):
            records.extend(decode(gzip.decompress(part.read_bytes()).decode(), fmt, schema))
    return found


def test_list_and_schema(make_emulator, tmp_path: Path) -> None:
    emu = make_emulator(rate_limits=True)  # the real limits: 5 listings a minute is plenty
    listing = dap(emu, tmp_path, "list", "--namespace", "canvas")
    assert "accounts" in listing.stdout and "submissions" in listing.stdout
    dap(emu, tmp_path, "schema", "--namespace", "canvas", "--table", "courses,users")
    assert sorted(p.name for p in (tmp_path / "downloads").iterdir()) == [
        "courses_schema_version_1.json",
        "users_schema_version_1.json",
    ]


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "tsv"])
def test_snapshot_then_incremental_match_record_by_record(make_emulator, tmp_path, fmt) -> None:
    emu = make_emulator(part_size=15)
    at = emu.now
    dap(emu, tmp_path, "snapshot", "--namespace", "canvas", "--table", "accounts,courses",
        "--format", fmt, "--output-directory", "snap")  # fmt: skip
    snap = downloaded(emu, tmp_path / "snap", fmt)
    assert set(snap) == {"accounts", "courses"}
    for table, records in snap.items():
        assert by_key(records) == emu.expected_snapshot("canvas", table)
    emu.advance(600)
    emu.change("canvas", "accounts", inserts=4, updates=5, deletes=2)
    since = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    dap(emu, tmp_path, "incremental", "--namespace", "canvas", "--table", "accounts",
        "--format", fmt, "--since", since, "--output-directory", "inc")  # fmt: skip
    changes = downloaded(emu, tmp_path / "inc", fmt)["accounts"]
    assert len(changes) == 11
    assert by_key(changes) == emu.expected_changes("canvas", "accounts", parse_ts(since))


def test_logs_namespace_snapshot(emulator: Emulator, tmp_path: Path) -> None:
    dap(emulator, tmp_path, "snapshot", "--namespace", "canvas_logs", "--table", "web_logs",
        "--format", "tsv")  # fmt: skip
    records = downloaded(emulator, tmp_path / "downloads", "tsv")["web_logs"]
    assert by_key(records) == emulator.expected_snapshot("canvas_logs", "web_logs")


def test_token_refresh_with_short_lifetime(make_emulator, tmp_path: Path) -> None:
    # Under five minutes left counts as expiring for the client, so it logs in before each call.
    emu = make_emulator(token_lifetime=60)
    dap(emu, tmp_path, "snapshot", "--namespace", "canvas", "--table", "users,enrollments")
    assert emu.stats.logins >= 4
    assert set(downloaded(emu, tmp_path / "downloads", "jsonl")) == {"users", "enrollments"}


@pytest.mark.parametrize(
    ("status", "html"), [(429, False), (503, True), (500, False)], ids=["429", "503-html", "500"]
)
def test_retries_injected_errors(make_emulator, tmp_path: Path, status: int, html: bool) -> None:
    # Retry-After stays 1 s: without it the client would wait 30 s per 429.
    emu = make_emulator(error_every=2, error_status=status, error_retry_after=1, error_html=html)
    dap(emu, tmp_path, "snapshot", "--namespace", "canvas", "--table", "accounts")
    assert emu.stats.injected_errors >= 2
    assert emu.stats.responses[status] == emu.stats.injected_errors
    records = downloaded(emu, tmp_path / "downloads", "jsonl")["accounts"]
    assert by_key(records) == emu.expected_snapshot("canvas", "accounts")


def test_every_job_and_error_shape_parses_as_the_clients_types(make_emulator) -> None:
    # The client's deserializer rejects unknown fields, so a stray field would turn a job
    # into a parse failure and a typed error into a bare ServerError.
    from dap.dap_error import NotFoundError, SnapshotRequiredError, ValidationError
    from dap.dap_types import CompleteIncrementalJob, CompleteSnapshotJob, FailedJob, Job, TableJob
    from strong_typing.serialization import json_to_object

    clock = FakeClock()
    emu = make_emulator(clock=clock, job_delay=10.0, retention=86400.0)
    client = Client(emu)
    waiting = client.query("users")
    assert type(json_to_object(Job, waiting)) is TableJob
    emu.faults.fail_table("canvas", "courses")
    failed_id = client.query("courses")["id"]
    clock.tick(10)
    snapshot = client.get(f"/dap/job/{waiting['id']}").json()
    assert type(json_to_object(Job, snapshot)) is CompleteSnapshotJob
    failed = client.get(f"/dap/job/{failed_id}").json()
    assert type(json_to_object(Job, failed)) is FailedJob
    emu.faults.update(job_delay=0.0)
    incremental = client.query("users", since=snapshot["at"])
    assert type(json_to_object(Job, incremental)) is CompleteIncrementalJob
    errors = [
        (client.get("/dap/job/nope"), NotFoundError),
        (client.post("/dap/query/canvas/table/users/data", {"format": "xml"}), ValidationError),
        (client.query_raw("users", since="2020-01-01T00:00:00Z"), SnapshotRequiredError),
    ]
    for response, expected in errors:
        assert isinstance(json_to_object(expected, response.json()["error"]), expected)

"""apply against the emulator over real sockets: chains, faults, resumption, locking."""

from __future__ import annotations

import dataclasses
import gzip
import json
import threading
import time
from pathlib import Path

import pytest

from dapctl.errors import LockError
from dapctl.loading import load_config
from dapctl.state import LocalStateStore
from tests.apply_helpers import (
    FAST,
    SECRET_VAR,
    apply,
    by_table,
    config_text,
    environ,
    expected_rows,
    read_jsonl,
    replay,
)
from tests.hardening.helpers import whole_gzip


def state_of(path: Path):
    return LocalStateStore(load_config(path).state_path).read()


def test_snapshot_then_two_incrementals_equal_the_emulators_data(make_emulator, write_config):
    emu = make_emulator()
    path = write_config(config_text(emu))
    files: dict[str, list[str]] = {"accounts": [], "users": []}

    for round_ in range(3):
        if round_:
            emu.advance(3600)
            emu.change("canvas", "accounts", inserts=3, updates=2, deletes=1)
            emu.change("canvas", "users", inserts=2, updates=1, deletes=1)
        results = by_table(apply(path, emu))
        for table, result in results.items():
            assert result.status == "ok", result
            assert result.kind == ("snapshot" if round_ == 0 else "incremental")
            files[table].extend(result.files)

    for table in ("accounts", "users"):
        got = replay([read_jsonl(f) for f in files[table]])
        assert got == expected_rows(emu.expected_snapshot("canvas", table))
    state = state_of(path)
    step = state.step("univ_a/core/canvas.accounts")
    assert step.kind == "incremental" and step.pending is None
    assert step.watermark == emu.now


def test_incremental_window_chains_since_to_previous_until(make_emulator, write_config):
    emu = make_emulator()
    path = write_config(config_text(emu, tables='["accounts"]'))
    first = apply(path, emu)[0]
    emu.advance(60)
    second = apply(path, emu)[0]
    assert second.since == first.at
    emu.advance(60)
    third = apply(path, emu)[0]
    assert third.since == second.until


def test_state_records_file_bytes_sha256_and_records(make_emulator, write_config):
    import hashlib

    emu = make_emulator()
    path = write_config(config_text(emu, tables='["accounts"]'))
    result = apply(path, emu)[0]
    step = state_of(path).step(result.address)
    (location,) = step.files
    assert location == result.files[0].removeprefix(f"{path.parent}/")  # relative in the state
    file = path.parent / location
    data = file.read_bytes()
    assert step.bytes == len(data) == result.bytes
    assert step.sha256 == hashlib.sha256(data).hexdigest()
    assert step.records == len(read_jsonl(file)) == len(emu.expected_snapshot("canvas", "accounts"))
    assert step.job_id == result.job_id and step.schema_version == 1


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_text_formats_merge_parts_with_one_header(make_emulator, write_config, fmt):
    emu = make_emulator(part_size=7)  # 40 rows: six parts, each with its own header row
    path = write_config(
        config_text(emu, tables='["accounts"]', fmt=fmt, output="out/{table}-{timestamp}.{format}")
    )
    result = apply(path, emu)[0]
    assert result.status == "ok"
    text = Path(result.files[0]).read_bytes()
    header = text.split(b"\n", 1)[0]
    assert text.count(header + b"\n") == 1
    assert result.records == len(emu.expected_snapshot("canvas", "accounts")) == 40


def test_jsonl_from_many_parts_is_one_valid_gzip_stream(make_emulator, write_config):
    emu = make_emulator(part_size=3)
    path = write_config(config_text(emu, tables='["users"]'))
    result = apply(path, emu)[0]
    records = json.loads(
        "["
        + ",".join(gzip.decompress(Path(result.files[0]).read_bytes()).decode().split("\n")[:-1])
        + "]"
    )
    assert expected_rows(records) == expected_rows(emu.expected_snapshot("canvas", "users"))


def test_token_expiring_mid_apply_is_renewed(make_emulator, write_config):
    # Tokens live 2 s on the server; the refresh margin (0 here) does not save us, so the
    # server's 401 must make the client log in again and retry.
    emu = make_emulator(token_lifetime=2.0)
    path = write_config(config_text(emu, settings="refresh_margin = 0"))
    apply(path, emu)
    logins = emu.stats.logins
    emu.faults.update(job_delay=2.5)
    results = apply(path, emu, connection=dataclasses.replace(FAST, poll_max=0.2))
    assert all(r.status == "ok" for r in results), results
    assert emu.stats.logins >= logins + 2


@pytest.mark.parametrize("status", [400, 403])
def test_login_failures_are_retried_then_succeed(make_emulator, write_config, status):
    emu = make_emulator()
    emu.faults.fail_logins(3, status=status)
    path = write_config(config_text(emu))
    results = apply(path, emu)
    assert [r.status for r in results] == ["ok", "ok"]


def test_login_failing_for_good_fails_the_profile_with_a_hint(make_emulator, write_config):
    emu = make_emulator()
    emu.faults.fail_logins(100, status=403)
    path = write_config(config_text(emu))
    results = apply(path, emu)
    assert {r.status for r in results} <= {"failed", "skipped"}
    failed = [r for r in results if r.status == "failed"]
    assert failed and "univ_a" in failed[0].error.message
    assert "403" in failed[0].error.message or failed[0].error.type.endswith("403")
    assert emu.credentials[1] not in json.dumps([r.to_json() for r in results])


def test_429_storm_waits_retry_after(make_emulator, write_config):
    emu = make_emulator()
    emu.faults.fail_every(2, status=429, retry_after=1)
    waits: list[float] = []
    fast_sleep = dataclasses.replace(FAST, sleep=waits.append)
    path = write_config(config_text(emu))
    results = apply(path, emu, connection=fast_sleep)
    assert [r.status for r in results] == ["ok", "ok"]
    assert waits.count(1.0) >= 2


@pytest.mark.parametrize("html", [False, True])
def test_5xx_are_retried(make_emulator, write_config, html):
    emu = make_emulator()
    emu.faults.fail_every(3, status=503, retry_after=None, html=html)
    path = write_config(config_text(emu))
    assert [r.status for r in apply(path, emu)] == ["ok", "ok"]


def test_cut_off_downloads_are_fetched_again(make_emulator, write_config):
    emu = make_emulator(part_size=10)
    emu.faults.cut_downloads(2)
    path = write_config(config_text(emu, tables='["accounts"]'))
    result = apply(path, emu)[0]
    assert result.status == "ok"
    got = expected_rows(read_jsonl(result.files[0]))
    assert got == expected_rows(emu.expected_snapshot("canvas", "accounts"))


def test_a_failing_table_fails_alone_and_keeps_its_watermark(make_emulator, write_config):
    emu = make_emulator()
    path = write_config(config_text(emu))
    apply(path, emu)
    before = state_of(path).step("univ_a/core/canvas.users")
    emu.advance(60)
    emu.faults.fail_table("canvas", "users")
    results = by_table(apply(path, emu))
    assert results["accounts"].status == "ok"
    assert results["users"].status == "failed" and results["users"].error.uuid
    after = state_of(path).step("univ_a/core/canvas.users")
    assert after.watermark == before.watermark and after.pending is None
    emu.faults.fail_table("canvas", "users", failing=False)
    again = by_table(apply(path, emu))["users"]
    assert again.status == "ok" and again.since == before.watermark


def test_snapshot_required_takes_a_snapshot_and_says_so(make_emulator, write_config):
    emu = make_emulator(retention=3600.0)
    path = write_config(config_text(emu, tables='["accounts"]'))
    apply(path, emu)
    emu.advance(7200)
    result = apply(path, emu)[0]
    assert result.status == "ok" and result.kind == "snapshot"
    assert any("snapshot instead" in note for note in result.notes)
    assert state_of(path).step(result.address).kind == "snapshot"


def test_snapshot_required_fails_when_configured_to(make_emulator, write_config):
    emu = make_emulator(retention=3600.0)
    path = write_config(
        config_text(emu, tables='["accounts"]', settings='on_snapshot_required = "fail"')
    )
    first = apply(path, emu)[0]
    emu.advance(7200)
    result = apply(path, emu)[0]
    assert result.status == "failed" and result.error.uuid
    assert state_of(path).step(result.address).watermark == first.at


def test_no_wait_records_jobs_and_next_apply_collects_them(make_emulator, write_config):
    emu = make_emulator()
    path = write_config(config_text(emu))
    started = apply(path, emu, no_wait=True)
    assert {r.status for r in started} == {"started"}
    assert not list((path.parent / "out").rglob("*.gz"))
    jobs = emu.stats.jobs_created
    collected = apply(path, emu)
    assert [r.status for r in collected] == ["ok", "ok"]
    assert emu.stats.jobs_created == jobs  # resumed, not started again
    assert {r.job_id for r in collected} == {r.job_id for r in started}
    assert all(any("resumed" in n for n in r.notes) for r in collected)


def test_a_job_asked_for_in_a_format_the_config_no_longer_wants_is_not_resumed(
    make_emulator, write_config, caplog
):
    emu = make_emulator()
    path = write_config(config_text(emu, tables='["accounts"]', fmt="csv"))
    (started,) = apply(path, emu, no_wait=True)
    path.write_text(config_text(emu, tables='["accounts"]', fmt="jsonl"))
    (result,) = apply(path, emu)
    assert result.status == "ok" and result.job_id != started.job_id
    assert emu.stats.jobs_created == 2
    (written,) = list((path.parent / "out").rglob("*.gz"))
    assert written.name.endswith(".jsonl.gz") and whole_gzip(written)  # not CSV parts in it
    assert f"job {started.job_id} was asked for as csv, the target now wants jsonl" in caplog.text


def test_resume_of_a_vanished_job_starts_a_new_one(make_emulator, write_config):
    emu = make_emulator()
    path = write_config(config_text(emu, tables='["accounts"]'))
    apply(path, emu, no_wait=True)
    emu.stop()
    emu2 = make_emulator()  # a new server: the recorded job id means nothing there
    path.write_text(config_text(emu2, tables='["accounts"]'))
    result = apply(path, emu2)[0]
    assert result.status == "ok" and result.kind == "snapshot"
    assert emu2.stats.jobs_created == 1


def test_a_second_apply_is_refused_while_the_lock_is_held(make_emulator, write_config):
    emu = make_emulator(job_delay=1.0)
    path = write_config(config_text(emu, tables='["accounts"]'))
    store = LocalStateStore(load_config(path).state_path)
    with (
        store.lock(timeout=0, command="test"),
        pytest.raises(LockError, match=r"pid \d+ on host .* since"),
    ):
        apply(path, emu)


def test_two_applies_racing_for_the_lock(make_emulator, write_config):
    emu = make_emulator(job_delay=0.5)
    path = write_config(config_text(emu, tables='["accounts"]'))
    outcomes: list[object] = []

    def run() -> None:
        try:
            outcomes.append(apply(path, emu)[0].status)
        except LockError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(map(str, outcomes))[-1] == "ok"
    assert sum(isinstance(o, LockError) for o in outcomes) == 1
    assert emu.stats.jobs_created == 1


def test_lock_timeout_waits_for_the_other_apply(make_emulator, write_config):
    emu = make_emulator(job_delay=0.3)
    path = write_config(config_text(emu, tables='["accounts"]'))
    statuses: list[str] = []
    first = threading.Thread(target=lambda: statuses.extend(r.status for r in apply(path, emu)))
    first.start()
    store = LocalStateStore(load_config(path).state_path)
    deadline = time.monotonic() + 10
    while not store.lock_path.exists() and time.monotonic() < deadline:
        time.sleep(0.001)
    second = apply(path, emu, lock_timeout=30)
    first.join()
    assert statuses == ["ok"] and second[0].status == "ok"


def test_disabled_account_skips_the_profiles_remaining_steps(make_emulator, write_config):
    emu = make_emulator()
    emu.faults.set_account_state(emu.credentials[0], "AccountDisabled")
    path = write_config(config_text(emu, tables='["accounts", "users", "courses"]'))
    results = apply(path, emu, concurrency=1, job_workers=1)
    statuses = [r.status for r in results]
    assert statuses[0] == "failed" and set(statuses[1:]) == {"skipped"}
    assert results[0].error.type == "AccountDisabled"


def test_tables_all_lists_the_namespace(make_emulator, write_config):
    emu = make_emulator()
    path = write_config(config_text(emu, tables='"all"'))
    results = apply(path, emu)
    tables = {r.table for r in results}
    assert tables >= {"accounts", "users", "courses"}
    assert all(r.status == "ok" for r in results)


def test_secrets_never_reach_state_or_outputs(make_emulator, write_config):
    emu = make_emulator()
    path = write_config(config_text(emu))
    apply(path, emu)
    secret = emu.credentials[1].encode()
    for file in path.parent.rglob("*"):
        if file.is_file() and file != path:
            assert secret not in file.read_bytes(), file
    assert SECRET_VAR in environ(emu)


def test_client_rate_limits_keep_a_rate_limited_server_from_answering_429(
    make_emulator, write_config
):
    # One minute of the published quota compressed into one second on both sides: 12 tables
    # need three windows of job starts, and the server must never have to refuse one.
    from dapctl.emulator import RateLimits

    emu = make_emulator(rate_limits=RateLimits(jobs=5, job_status=500, urls=200, window=1.0))
    six = json.dumps(["accounts", "users", "courses", "enrollments", "assignments", "submissions"])
    path = write_config(
        config_text(
            emu,
            tables=six,
            extra_target=f'[[targets]]\nname = "again"\ntables = {six}\n'
            'output = "again/{table}-{timestamp}.jsonl.gz"',
            profile_extra=" ",  # the published limits, not the tests' generous ones
        )
    )
    results = apply(path, emu, connection=dataclasses.replace(FAST, window=1.0))
    assert all(r.status == "ok" for r in results), [r.error for r in results]
    assert len(results) == 12
    assert emu.stats.rate_limited == 0 and 429 not in emu.stats.responses


def test_a_failed_login_is_not_retried_by_every_waiting_thread(make_emulator, write_config):
    emu = make_emulator()
    emu.faults.fail_logins(1000, status=403)
    tables = json.dumps(["accounts", "users", "courses", "enrollments", "assignments"])
    path = write_config(config_text(emu, tables=tables))
    results = apply(path, emu)
    # One step says why the profile failed; the others, as the README says, are skipped.
    assert sorted(r.status for r in results) == ["failed"] + ["skipped"] * 4
    skipped = [r.error.message for r in results if r.status == "skipped"]
    assert all(m.startswith("profile univ_a failed: ") for m in skipped), skipped
    assert emu.stats.login_failures == 5  # one [retry] schedule, not one per table


def test_a_killed_apply_is_resumed_without_a_new_job(make_emulator, write_config):
    import os
    import signal
    import subprocess
    import sys

    emu = make_emulator(job_delay=3.0)  # the jobs are still running when the kill comes
    path = write_config(config_text(emu))
    child = subprocess.Popen(
        [sys.executable, "-m", "dapctl", "apply", str(path)],
        env={**os.environ, **environ(emu)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = LocalStateStore(load_config(path).state_path).read()
            if state and sum(s.pending is not None for s in state.steps.values()) == 2:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the child never recorded its jobs")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    jobs = emu.stats.jobs_created
    assert jobs == 2
    results = apply(path, emu, connection=dataclasses.replace(FAST, poll_max=0.2))
    assert [r.status for r in results] == ["ok", "ok"]
    assert emu.stats.jobs_created == jobs
    assert not list(path.parent.rglob("*.dapctl-tmp"))


def test_an_unrecorded_output_of_a_vanished_job_is_removed(make_emulator, write_config):
    # An apply killed after publishing a file but before recording it leaves the file and a
    # pending job naming it. If that job is gone, the new job covers its window again, so
    # the old file must go or its records would be counted twice.
    emu = make_emulator()
    path = write_config(config_text(emu, tables='["accounts"]'))
    apply(path, emu, no_wait=True)
    store = LocalStateStore(load_config(path).state_path)
    state = store.read()
    address = "univ_a/core/canvas.accounts"
    orphan = path.parent / "out" / "orphan.jsonl.gz"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(gzip.compress(b'{"key": {"id": 1}}\n'))
    pending = state.step(address).pending.model_copy(update={"output": str(orphan)})
    store.write(
        state.with_step(address, state.step(address).model_copy(update={"pending": pending}))
    )
    emu.stop()
    emu2 = make_emulator()
    path.write_text(config_text(emu2, tables='["accounts"]'))
    result = apply(path, emu2)[0]
    assert result.status == "ok"
    assert not orphan.exists()
    assert [str(p) for p in (path.parent / "out").rglob("*.gz")] == list(result.files)


def test_an_incremental_never_replaces_an_existing_file(make_emulator, write_config):
    from dapctl.text import compact_time

    emu = make_emulator()
    path = write_config(config_text(emu, tables='["accounts"]'))
    apply(path, emu)
    emu.advance(60)
    emu.change("canvas", "accounts", inserts=1)
    squatter = path.parent / "out" / "univ_a" / "accounts"
    squatter = squatter / f"incremental-{compact_time(emu.now)}.jsonl.gz"
    squatter.write_bytes(b"someone else's data")
    result = apply(path, emu)[0]
    assert result.status == "failed" and "exists already" in result.error.message
    assert squatter.read_bytes() == b"someone else's data"
    assert state_of(path).step(result.address).kind == "snapshot"  # the watermark stays


def test_a_job_that_finds_its_window_gone_falls_back_to_a_snapshot(make_emulator, write_config):
    emu = make_emulator()
    path = write_config(config_text(emu, tables='["accounts"]'))
    apply(path, emu)
    emu.advance(60)
    # The incremental job is accepted, then fails: its window went away while it ran.
    emu.faults.update(failed_job_type="SnapshotRequired", failing_tables=["canvas.accounts"])
    asked = emu.stats.jobs_created + emu.stats.jobs_reused
    result = apply(path, emu)[0]
    assert result.status == "ok" and result.kind == "snapshot", result.error
    assert any("snapshot instead" in note for note in result.notes)
    # The failed incremental, then the snapshot (which the server may serve from its cache).
    assert emu.stats.jobs_created + emu.stats.jobs_reused == asked + 2
    assert state_of(path).step(result.address).pending is None


def test_a_job_whose_window_is_gone_is_forgotten_when_falling_back_is_off(
    make_emulator, write_config
):
    emu = make_emulator()
    path = write_config(
        config_text(emu, tables='["accounts"]', settings='on_snapshot_required = "fail"')
    )
    first = apply(path, emu)[0]
    emu.advance(60)
    emu.faults.update(failed_job_type="SnapshotRequired", failing_tables=["canvas.accounts"])
    result = apply(path, emu)[0]
    assert result.status == "failed" and result.kind == "incremental"
    step = state_of(path).step(result.address)
    assert step.pending is None and step.watermark == first.at  # not resumed forever


def test_a_fallback_snapshot_after_the_window_is_gone_moves_the_watermark(
    make_emulator, write_config
):
    # Issue "Tried as a new user would": the server's job cache answered the fallback with
    # the first run's snapshot, so every apply rewrote it and the watermark never moved.
    emu = make_emulator(retention=3600.0)
    path = write_config(config_text(emu, tables='["accounts"]'))
    first = apply(path, emu)[0]
    emu.advance(7200)
    fallback = apply(path, emu)[0]
    assert fallback.status == "ok" and fallback.kind == "snapshot"
    assert fallback.at == emu.now and fallback.at > first.at
    assert fallback.files != first.files
    step = state_of(path).step(fallback.address)
    assert step.watermark == emu.now
    emu.change("canvas", "accounts", inserts=1)
    after = apply(path, emu)[0]
    assert after.status == "ok" and after.kind == "incremental", after.notes
    assert after.since == fallback.at and not after.notes


def test_a_fallback_snapshot_no_later_than_the_watermark_is_refused(make_emulator, write_config):
    emu = make_emulator()
    path = write_config(config_text(emu, tables='["accounts"]'))
    first = apply(path, emu)[0]
    # The data clock stands still: the cached snapshot job, at the watermark itself, is the
    # answer to the fallback, and taking it would fall back again on every apply.
    emu.faults.update(failed_job_type="SnapshotRequired", failing_tables=["canvas.accounts"])
    result = apply(path, emu)[0]
    assert result.status == "failed" and "not later than" in result.error.message
    step = state_of(path).step(result.address)
    assert step.watermark == first.at and step.pending is None and step.job_id == first.job_id


@pytest.mark.parametrize(
    ("fmt", "output"),
    [
        ("jsonl", "out/{table}/{kind}-{timestamp}.jsonl.gz"),
        ("csv", "out/{table}/{kind}-{timestamp}.csv"),
        ("parquet", "out/{table}/{kind}-{timestamp}.parquet"),
    ],
)
def test_an_incremental_with_no_records_writes_no_file(make_emulator, write_config, fmt, output):
    # Issue "Tried as a new user would": a 20-byte .jsonl.gz, a header-only CSV and a
    # column-less Parquet file appeared whenever the data clock moved.
    emu = make_emulator()
    path = write_config(config_text(emu, tables='["accounts"]', fmt=fmt, output=output))
    first = apply(path, emu)[0]
    emu.advance(600)
    result = apply(path, emu)[0]
    assert result.status == "ok" and result.kind == "incremental", result.error
    assert result.files == () and result.records == 0
    assert any("no records" in note for note in result.notes), result.notes
    assert [str(p) for p in (path.parent / "out").rglob("*-*")] == list(first.files)
    step = state_of(path).step(result.address)
    assert step.watermark == emu.now and step.kind == "incremental"


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_a_snapshot_with_no_records_still_writes_its_file(make_emulator, write_config, fmt):
    emu = make_emulator(rows={"canvas.accounts": 0})
    output = "out/{table}/{kind}-{timestamp}.{format}"
    path = write_config(config_text(emu, tables='["accounts"]', fmt=fmt, output=output))
    result = apply(path, emu)[0]
    assert result.status == "ok" and result.records == 0, result.error
    (written,) = result.files
    if fmt == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(written)
        assert table.num_rows == 0 and "key.id" in table.column_names  # the table's columns
    elif fmt == "csv":
        assert Path(written).read_text().startswith("meta.ts,meta.action,key.id")

"""Worker processes (``python -m dapctl apply``) on one config with the state in PostgreSQL
(issue 12), against emulators: one SIGKILLed with its job recorded, one stopped by
SIGTERM, one frozen (SIGSTOP) past its lease and then woken, N of them on a config of
several profiles, and four at once with one killed mid-download and one frozen."""

from __future__ import annotations

import gzip
import json
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from dapctl.emulator import RateLimits
from dapctl.text import format_time
from tests.apply_helpers import GENEROUS, SECRET_VAR, apply, environ
from tests.hardening.helpers import final_files, temp_files
from tests.worker_helpers import (
    ACCOUNTS,
    DEADLINE,
    LEASE,
    pg_config,
    planned_rescuer,
    record_of,
    recorded_job,
    spawn,
    stored,
    wait_for,
    wait_until,
    worker_json,
)


def test_a_killed_workers_recorded_job_is_resumed_by_a_worker_that_planned_before_it(
    make_emulator, write_config, pg_url
):
    emu = make_emulator(job_delay=2.0, cache_jobs=False)
    path = write_config(pg_config(emu, pg_url, tables='["accounts"]'))
    rescuer, go = planned_rescuer(path, emu)  # it planned a snapshot: no job recorded yet
    child = spawn(path, environ(emu))
    try:
        wait_until(lambda: recorded_job(pg_url, ACCOUNTS), "a job recorded")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    job_id = stored(pg_url).step(ACCOUNTS).pending.job_id
    go.set()

    (result,) = rescuer.result(timeout=DEADLINE)
    assert result.status == "ok" and result.job_id == job_id, result
    assert any("resumed job" in note for note in result.notes)
    assert emu.stats.jobs_created == 1
    assert stored(pg_url).step(ACCOUNTS).job_id == job_id


def test_a_worker_stopped_by_sigterm_frees_its_steps_at_once_unfinished(
    make_emulator, write_config, pg_url
):
    emu = make_emulator(job_delay=2.0, cache_jobs=False)
    text = pg_config(emu, pg_url, tables='["accounts"]')
    path = write_config(text.replace(f"lease_seconds = {LEASE}", "lease_seconds = 600"))
    rescuer, go = planned_rescuer(path, emu)
    child = spawn(path, environ(emu))
    try:
        wait_until(lambda: recorded_job(pg_url, ACCOUNTS), "a job recorded")
    finally:
        child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=30) == 143
    started = time.monotonic()
    go.set()  # a worker of the same round: the step was left unfinished, not done
    (result,) = rescuer.result(timeout=DEADLINE)
    assert result.status == "ok" and any("resumed job" in note for note in result.notes)
    assert time.monotonic() - started < 30 and emu.stats.jobs_created == 1  # no 600 s wait


def test_a_worker_frozen_past_its_lease_publishes_nothing_when_it_wakes(
    make_emulator, write_config, pg_url
):
    emu = make_emulator(rows={"canvas.accounts": 20_000}, part_size=400, cache_jobs=False)
    path = write_config(pg_config(emu, pg_url, tables='["accounts"]'))
    out = path.parent / "out"
    frozen = spawn(path, environ(emu), "frozen")
    try:
        wait_until(lambda: emu.stats.downloads >= 8 or frozen.poll() is not None, "a download")
        frozen.send_signal(signal.SIGSTOP)
        assert not final_files(out), "the worker was meant to freeze mid-download"
        pending = stored(pg_url).step(ACCOUNTS).pending

        (rescued,) = apply(path, emu)  # waits out the frozen worker's lease, then takes over
        assert rescued.status == "ok" and rescued.job_id == pending.job_id, rescued
        (published,) = final_files(out)
        inode, row = published.stat().st_ino, record_of(pg_url, ACCOUNTS)
    finally:
        frozen.send_signal(signal.SIGCONT)
    woken = worker_json(frozen)

    (result,) = woken["results"]
    assert woken["ok"] is True and result["status"] == "held"
    assert result["error"]["type"] == "LeaseLost"
    assert "lease lost: another worker took this step over" in result["error"]["message"]
    assert final_files(out) == [published] and published.stat().st_ino == inode
    assert record_of(pg_url, ACCOUNTS) == row  # its fenced writes never landed
    assert temp_files(path.parent) == []
    assert emu.stats.jobs_created == 1


PROFILES, TABLES, WORKERS = 4, ("accounts", "users", "courses"), 3


PROFILES, TABLES, WORKERS = 4, ("accounts", "users", "courses"), 3


OBJECTS = "out/"


def many_profiles(emulators, url: str, *, output: str = "out/", limits: str = GENEROUS) -> str:
    profiles = "".join(
        f'\n[profiles.p{i}]\nbase_url = "{emu.base_url}"\nclient_id = '
        f'"{emu.credentials[0]}"\nclient_secret_env = "{SECRET_VAR}_{i}"\n{limits}\n'
        for i, emu in enumerate(emulators)
    )
    return (
        f'[settings]\nstate = "{url}"\nlease_seconds = {LEASE}\nconcurrency = 2\n{profiles}\n'
        f'[[targets]]\nname = "core"\ntables = {json.dumps(list(TABLES))}\n'
        f'output = "{output}{{profile}}/{{table}}/{{kind}}-{{timestamp}}.{{format}}.gz"\n'
    )


def run_workers(path: Path, env: dict[str, str], round_: str) -> list[dict]:
    """``WORKERS`` processes in one round, named as a Kubernetes Job's pods would name it
    (a worker started after the others had all ended would otherwise begin the next)."""
    env = {**env, "DAPCTL_ROUND": round_}
    children = [spawn(path, env, f"worker{i}") for i in range(WORKERS)]
    return [worker_json(child) for child in children]


def test_worker_processes_on_one_config_commit_every_step_exactly_once(
    make_emulator, write_config, pg_url
):
    emulators = [make_emulator(job_delay=0.2, cache_jobs=False) for _ in range(PROFILES)]
    path = write_config(many_profiles(emulators, pg_url))
    env = {f"{SECRET_VAR}_{i}": emu.credentials[1] for i, emu in enumerate(emulators)}
    addresses = {f"p{i}/core/canvas.{t}" for i in range(PROFILES) for t in TABLES}

    watermarks = {}
    for round_ in ("first", "second"):  # the second's incrementals find nothing new
        workers = run_workers(path, env, round_)
        results = [r for worker in workers for r in worker["results"]]
        ok = Counter(r["address"] for r in results if r["status"] == "ok")
        assert ok == Counter(addresses), f"{round_} round: {ok}"  # once each, by one worker
        assert {r["status"] for r in results} <= {"ok", "held"}
        assert all(w["ok"] for w in workers)
        state = stored(pg_url)
        for r in (r for r in results if r["status"] == "ok"):
            step = state.step(r["address"])
            assert step.job_id == r["job_id"] and step.pending is None
            # Each round moves each watermark once: the second continues from the first.
            assert r["since"] == watermarks.get(r["address"])
            watermarks[r["address"]] = r["until"] or r["at"]
        assert len(final_files(path.parent / "out")) == len(addresses)  # one snapshot each
    assert sum(emu.stats.jobs_created for emu in emulators) == 2 * len(addresses)


BIG = {"rows": {"canvas.accounts": 20_000}, "part_size": 400}  # 50 parts: time to catch it
# p1's table is caught later (after p0's worker is killed): three times as many parts, so on
# a loaded machine it is still downloading then, whichever worker took it.
BIGGER = {"rows": {"canvas.accounts": 60_000}, "part_size": 400}
P0_BIG, P1_BIG = "p0/core/canvas.accounts", "p1/core/canvas.accounts"


def whole_gzip_bytes(data: bytes) -> bool:
    lines = gzip.decompress(data).decode().splitlines()
    return bool(lines) and all(json.loads(line) for line in lines)


def holder_pid(url: str, address: str) -> int | None:
    """The pid of the worker whose live lease holds ``address``."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT claimed_by FROM dapctl.state_leases WHERE address = %s "
            "AND lease_expires > now()",
            (address,),
        ).fetchone()
    return int(row[0].split()[1]) if row else None


def downloading_elsewhere(url: str, emu, address: str, not_pid: int) -> Callable[[], int | None]:
    """A probe: the pid of a worker other than ``not_pid`` well into ``address``'s download."""
    start: dict[int, int] = {}

    def probe() -> int | None:
        pid = holder_pid(url, address)
        if pid is None or pid == not_pid:
            return None
        start.setdefault(pid, emu.stats.downloads)
        return pid if emu.stats.downloads - start[pid] >= 5 else None

    return probe


# The four-worker test's emulators enforce quotas and its profiles keep the same ones: the
# published limits, except ten job creations a minute, so its two rounds (3 + 3 jobs per
# profile) fit one window and the test does not wait a minute for the second.
QUOTAS = RateLimits(jobs=10)
CONFIGURED = "rate_limits = {jobs_per_minute = 10}"


@pytest.mark.slow
def test_workers_outlive_one_killed_and_one_frozen_past_its_lease(
    make_emulator, write_config, pg_url, s3, tmp_path
):
    """Issue 12's "done when": four workers, twelve profiles, outputs in S3 (moto's server),
    one worker SIGKILLed mid-download, one SIGSTOPped past its lease and then woken."""
    emulators = [
        make_emulator(
            job_delay=0.2, cache_jobs=False, rate_limits=QUOTAS, **({0: BIG, 1: BIGGER}.get(i, {}))
        )
        for i in range(12)
    ]
    text = many_profiles(emulators, pg_url, output=s3.url(OBJECTS), limits=CONFIGURED)
    path = write_config(text)
    scratch = tmp_path / "scratch"  # the workers' $TMPDIR, where objects are staged
    scratch.mkdir()
    env = {f"{SECRET_VAR}_{i}": emu.credentials[1] for i, emu in enumerate(emulators)}
    env |= s3.server.environ | {"TMPDIR": str(scratch)}
    addresses = {f"p{i}/core/canvas.{t}" for i in range(len(emulators)) for t in TABLES}
    first = {**env, "DAPCTL_ROUND": "first"}
    children = {child.pid: child for child in (spawn(path, first, f"w{i}") for i in range(4))}
    try:
        wait_until(lambda: emulators[0].stats.downloads >= 4, "p0's big table downloading")
        killed = children.pop(holder_pid(pg_url, P0_BIG))
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)  # reaped: a zombie's temporary files look alive
        probe = downloading_elsewhere(pg_url, emulators[1], P1_BIG, killed.pid)
        frozen = children[wait_for(probe, "p1's big table downloading in a live worker")]
        frozen.send_signal(signal.SIGSTOP)
        assert stored(pg_url).step(P1_BIG).pending is not None
        time.sleep(LEASE + 1)
        # Another worker takes the frozen one's step over and finishes it.
        wait_until(lambda: stored(pg_url).step(P1_BIG).pending is None, "p1")
    except BaseException:
        for child in children.values():
            child.kill()
        raise
    finally:
        for child in children.values():
            child.send_signal(signal.SIGCONT)
    workers = {pid: worker_json(child) for pid, child in children.items()}

    (lost,) = [r for r in workers[frozen.pid]["results"] if r["address"] == P1_BIG]
    assert lost["status"] == "held" and lost["error"]["type"] == "LeaseLost"
    results = [r for worker in workers.values() for r in worker["results"]]
    ok = Counter(r["address"] for r in results if r["status"] == "ok")
    assert max(ok.values()) == 1  # the killed worker's own may be missing, never doubled
    state = stored(pg_url)
    assert set(state.steps) == addresses
    assert all(s.watermark is not None and s.pending is None for s in state.steps.values())
    recorded = [f for step in state.steps.values() for f in step.files]
    assert len(set(recorded)) == len(recorded) == len(addresses)  # one object each, once
    assert sorted(s3.url(key) for key in s3.objects(OBJECTS)) == sorted(recorded)
    assert all(whole_gzip_bytes(s3.read(url)) for url in recorded)
    assert s3.uploads() == []  # no multipart upload left behind
    assert [emu.stats.jobs_created for emu in emulators] == [len(TABLES)] * len(emulators)

    workers = run_workers(path, env, "second")
    second = [r for w in workers for r in w["results"] if r["status"] == "ok"]
    assert Counter(r["address"] for r in second) == Counter(addresses)
    assert all(r["since"] == format_time(state.step(r["address"]).watermark) for r in second)
    assert [emu.stats.rate_limited for emu in emulators] == [0] * len(emulators)
    leftover = [p for p in scratch.rglob("*") if p.is_file()]
    assert leftover == []  # the killed worker's staged parts were swept by a later worker

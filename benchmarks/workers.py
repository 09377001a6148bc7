"""Scenario 6: many workers (issue 12). 1, 2 and 4 ``dapctl apply`` processes run one config
whose state is in PostgreSQL (a database made for each run and dropped after it) and split
its steps between them, on two sets of steps:

- **CPU-bound**: ``cpu_profiles`` profiles each collect one large generic table, JSON Lines
  into ``.gz`` files, with no rate limit on either side. Every profile asks the same query,
  so the emulator encodes the job once, before anything is timed, and hands each profile that
  cached job: every step downloads, verifies, counts and writes a whole table, and the
  emulator only serves bytes.
- **Rate-limit-bound**: ``rate_profiles`` x ``rate_tables`` small tables, the published quotas
  in a window of ``window`` seconds on both sides (the real 60 s; ``--quick`` squeezes it),
  the emulator's job cache off (each profile's job is its own). One client ID per
  profile: the emulator counts each one's quota apart, and the workers share each one's
  budget through the state. The profiles are independent, so the bound is one profile's
  schedule (``Workers.bound``).

The emulator runs here; the workers are children (``child.py apply``: the window given)
spawned together with one ``DAPCTL_ROUND``. Wall time runs from the first spawn to the last
exit, start-up included; the last output's time (its file's last write) leaves out the tail
in which a worker waits to see a step another worker holds finished before it exits. CPU:
the workers' whole processes (``RUSAGE_CHILDREN``, start-up included), the emulator's (this
process), the state database's backends (when PostgreSQL runs here), and every core's busy
time up to the last output (``/proc/stat``: all of these and any neighbour).
"""

from __future__ import annotations

import math
import os
import resource
import shutil
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from common import SECRET_VAR, WARM_ID, WARM_SECRET, Figure, Row, child, child_env, prepare_job

from dapctl.emulator import Emulator, EmulatorSettings
from dapctl.emulator.settings import RateLimits

MB = 1e6
CLIENT_SECRET = "bench-worker-secret"  # noqa: S105 (the emulator's, for every profile)
# Scenario 2's reason: the emulator enforces no quota in the CPU-bound set, and throughput
# is measured there, not dapctl's waits.
NO_QUOTA = "rate_limits = {" + ", ".join(
    f"{name}_per_minute = 1000000" for name in ("jobs", "job_status", "tables", "schema", "urls")
) + "}"  # fmt: skip


@dataclass(frozen=True)
class Workers:
    workers: tuple[int, ...] = (1, 2, 4)
    cpu_profiles: int = 16
    cpu_rows: int = 1_100_000  # ~0.25 GB of JSON Lines, ~54 MB of gzip, per table
    part_size: int = 100_000
    rate_profiles: int = 20
    rate_tables: int = 10
    rate_rows: int = 100
    # The real window: start-up, the spread of a window's job starts and the last polls cost
    # the same seconds whatever the window, so a squeezed one overstates them (at 10 s:
    # 1.24-1.31x the bound, against 1.05-1.07x at 60 s, 2026-12-01).
    window: float = 60.0
    job_delay: float = 1.0
    jobs_per_window: int = 5
    lease_seconds: float = 30.0
    admin_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"

    @property
    def bound(self) -> float:
        """A profile's last job starts ceil(N/5)-1 windows after its first, then runs its
        delay; the profiles' budgets are apart, so the slowest profile's schedule is all."""
        windows = math.ceil(self.rate_tables / self.jobs_per_window) - 1
        return windows * self.window + self.job_delay


@dataclass(frozen=True)
class Crowd:
    """One configuration's run, measured from outside its workers."""

    seconds: float  # first spawn to last exit
    last_output: float  # first spawn to the last output's last write
    worker_cpu: float  # user + sys of the worker processes, start-up included
    emulator_cpu: float  # this process's: the emulator serving
    postgres_cpu: float  # the backends serving the state database
    machine_cpu: float  # every core's busy time up to the last output, whoever used it
    bytes: int  # the outputs written

    @property
    def total_cpu(self) -> float:
        """All the CPU this run's work took: the workers', the emulator's, the state's."""
        return self.worker_cpu + self.emulator_cpu + self.postgres_cpu


def workers(size: Workers, runs: int, work: Path) -> list[Row]:
    return _cpu_bound(size, runs, work) + _rate_bound(size, runs, work)


# -- the CPU-bound set --------------------------------------------------------------------


def _cpu_bound(size: Workers, runs: int, work: Path) -> list[Row]:
    profiles = [f"c{p:02d}" for p in range(1, size.cpu_profiles + 1)]
    crowds: dict[int, list[Crowd]] = {n: [] for n in size.workers}
    with _emulator(profiles, rate_limits=None, job_delay=0.0, part_size=size.part_size,
                   rows={"canvas.big": size.cpu_rows}) as emu:  # fmt: skip
        prepare_job(emu, "canvas.big")
        env = child_env(emu, **{SECRET_VAR: CLIENT_SECRET})
        for run in range(runs):
            for count in size.workers:
                folder = work / f"workers-cpu-{run}-{count}"
                before = emu.stats.jobs_created
                with _state_database(size.admin_url) as url:
                    text = _config(emu, url, profiles, ["big"], size, NO_QUOTA)
                    crowd = _crowd(count, folder, text, (), env, len(profiles), size.admin_url, url)
                    crowds[count].append(crowd)
                if emu.stats.jobs_created != before:
                    raise RuntimeError("a worker made a job: its encoding would be timed")
                shutil.rmtree(folder)
    return _cpu_rows(size, crowds)


def _cpu_rows(size: Workers, crowds: dict[int, list[Crowd]]) -> list[Row]:
    out: list[Row] = []
    cores = os.cpu_count() or 1
    for count, runs in crowds.items():
        label = f"6. {_workers(count)}, {size.cpu_profiles} large tables (CPU)"
        note = (
            f"{size.cpu_profiles} profiles x 1 table of {size.cpu_rows:,} rows (one cached "
            f"job), jsonl into .gz, {runs[0].bytes / MB:.0f} MB in all; lease "
            f"{size.lease_seconds:g} s"
        )
        out += [
            Row(label, "wall time (spawn to last exit)", Figure([c.seconds for c in runs]), "s"),
            Row(label, "last output written", Figure([c.last_output for c in runs]), "s"),
            Row(label, "MB/s written (gzip), to last exit",
                Figure([c.bytes / MB / c.seconds for c in runs]), "MB/s", 0, "", None, note),
            Row(label, "MB/s written (gzip), to last output",
                Figure([c.bytes / MB / c.last_output for c in runs]), "MB/s", 0),
            Row(label, f"bound: {cores} cores on this work only, MB/s",
                Figure([c.bytes / MB / (c.total_cpu / cores) for c in runs]), "MB/s", 0, "",
                None, "the bytes over the CPU of workers, emulator and state backends, "
                f"spread over {cores} cores"),
            Row(label, "workers' CPU (user + sys)", Figure([c.worker_cpu for c in runs]), "s"),
            Row(label, "workers' cores busy, to last output",
                Figure([c.worker_cpu / c.last_output for c in runs]), "x"),
            Row(label, "emulator's CPU (serving)", Figure([c.emulator_cpu for c in runs]), "s"),
            Row(label, "PostgreSQL's CPU (state backends)", Figure([c.postgres_cpu for c in runs]),
                "s"),
            Row(label, "machine's cores busy, to last output",
                Figure([c.machine_cpu / c.last_output for c in runs]), "x", 2, "", None,
                f"of {cores} (/proc/stat): workers, emulator, PostgreSQL, neighbours"),
        ]  # fmt: skip
    return out


# -- the rate-limit-bound set -------------------------------------------------------------


def _rate_bound(size: Workers, runs: int, work: Path) -> list[Row]:
    profiles = [f"r{p:02d}" for p in range(1, size.rate_profiles + 1)]
    tables = [f"t{t:02d}" for t in range(1, size.rate_tables + 1)]
    limits = RateLimits(jobs=size.jobs_per_window, job_status=500, urls=200, window=size.window)
    scale = size.window / 60.0  # dapctl's poll intervals scaled like the quota
    args = ("--window", str(size.window), "--poll-initial", str(0.5 * scale),
            "--poll-max", str(15 * scale))  # fmt: skip
    steps = len(profiles) * len(tables)
    crowds: dict[int, list[Crowd]] = {n: [] for n in size.workers}
    throttled = dict.fromkeys(size.workers, 0)
    for run in range(runs):
        for count in size.workers:
            folder = work / f"workers-rate-{run}-{count}"
            # A new emulator and state each time: every run starts with its windows unspent.
            with (
                _emulator(profiles, rate_limits=limits, job_delay=size.job_delay,
                          rows={f"canvas.{t}": size.rate_rows for t in tables}) as emu,
                _state_database(size.admin_url) as url,
            ):  # fmt: skip
                emu.faults.update(cache_jobs=False)
                env = child_env(emu, **{SECRET_VAR: CLIENT_SECRET})
                text = _config(emu, url, profiles, tables, size, "")
                crowd = _crowd(count, folder, text, args, env, steps, size.admin_url, url)
                crowds[count].append(crowd)
                throttled[count] += emu.stats.rate_limited
            shutil.rmtree(folder)
    return _rate_rows(size, crowds, throttled)


def _rate_rows(
    size: Workers, crowds: dict[int, list[Crowd]], throttled: dict[int, int]
) -> list[Row]:
    out: list[Row] = []
    windows = math.ceil(size.rate_tables / size.jobs_per_window)
    for count, runs in crowds.items():
        label = f"6. {_workers(count)}, {size.rate_profiles} x {size.rate_tables} tables (quota)"
        ratio = Figure([c.seconds / size.bound for c in runs])
        note = (
            f"bound = ({windows}-1) x {size.window:g} s + {size.job_delay:g} s job delay = "
            f"{size.bound:.2f} s (per profile; profiles apart); server 429s: {throttled[count]}"
        )
        out += [
            Row(label, "wall time (spawn to last exit)", Figure([c.seconds for c in runs]), "s"),
            Row(label, "last output written", Figure([c.last_output for c in runs]), "s"),
            Row(label, "ratio to lower bound", ratio, "x", 3, "<= 1.15", ratio.median <= 1.15,
                note),
            Row(label, "workers' CPU (user + sys)", Figure([c.worker_cpu for c in runs]), "s"),
            Row(label, "PostgreSQL's CPU (state backends)", Figure([c.postgres_cpu for c in runs]),
                "s"),
        ]  # fmt: skip
    return out


# -- plumbing -----------------------------------------------------------------------------


def _workers(count: int) -> str:
    return f"{count} worker" + ("s" if count > 1 else "")


def _client_id(profile: str) -> str:
    return f"bench-{profile}"


def _emulator(profiles: Sequence[str], **settings: Any) -> Emulator:
    """An emulator that knows one client per profile (and the warmer that prepares jobs)."""
    clients = {WARM_ID: WARM_SECRET, **{_client_id(p): CLIENT_SECRET for p in profiles}}
    base = EmulatorSettings(clients=clients, gzip_level=1)
    return Emulator(base.with_(**settings)).start()


def _config(
    emu: Emulator,
    state_url: str,
    profiles: Sequence[str],
    tables: Sequence[str],
    size: Workers,
    rate_limits: str,
) -> str:
    blocks = "".join(
        f'\n[profiles.{p}]\nbase_url = "{emu.base_url}"\nclient_id = "{_client_id(p)}"\n'
        f'client_secret_env = "{SECRET_VAR}"\n{rate_limits}\n'
        for p in profiles
    )
    names = ", ".join(f'"{t}"' for t in tables)
    return f"""[settings]
state = "{state_url}"
lease_seconds = {size.lease_seconds:g}
{blocks}
[[targets]]
name = "bench"
namespace = "canvas"
tables = [{names}]
format = "jsonl"
sync = "snapshot"
output = "out/{{profile}}/{{table}}.{{format}}.gz"
"""


@contextmanager
def _state_database(admin_url: str) -> Iterator[str]:
    """A database for one run's state, dropped after it whatever happens."""
    name = f"bench_workers_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _crowd(
    count: int,
    folder: Path,
    config: str,
    args: Sequence[str],
    env: dict[str, str],
    steps: int,
    admin_url: str,
    state_url: str,
) -> Crowd:
    """Run ``count`` workers on ``config`` at once, in one round; check every step ran once."""
    folder.mkdir(parents=True)
    path = folder / "dapctl.toml"
    path.write_text(config)
    env = {**env, "DAPCTL_ROUND": f"bench-{uuid.uuid4().hex[:8]}"}
    command = ("apply", str(path), *args)
    cpu, sampler = _cpu_now(), _Sampler(admin_url, state_url.rsplit("/", 1)[1])
    wall, started = time.time(), time.perf_counter()
    with ThreadPoolExecutor(count) as pool:
        spawned = [pool.submit(child, *command, env=env, cwd=folder) for _ in range(count)]
        reports = [future.result()[1] for future in spawned]
    seconds = time.perf_counter() - started
    sampler.stop()
    workers_cpu, emulator_cpu = (end - start for start, end in zip(cpu, _cpu_now(), strict=True))
    outputs = [p.stat() for p in (folder / "out").rglob("*.gz")]
    ran = sum(report["ok"] for report in reports)
    if ran != steps or len(outputs) != steps:
        raise RuntimeError(f"{steps} steps, but {ran} ran and {len(outputs)} outputs were written")
    last = max(stat.st_mtime for stat in outputs)
    return Crowd(
        seconds=seconds,
        last_output=last - wall,
        worker_cpu=workers_cpu,
        emulator_cpu=emulator_cpu,
        postgres_cpu=sampler.backends_cpu(),
        machine_cpu=sampler.busy_until(last),
        bytes=sum(stat.st_size for stat in outputs),
    )


def _cpu_now() -> tuple[float, float]:
    """User + sys of this process's waited-for children (the workers, through
    ``/usr/bin/time``), and of this process itself (the emulator)."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = resource.getrusage(resource.RUSAGE_SELF)
    return kids.ru_utime + kids.ru_stime, own.ru_utime + own.ru_stime


class _Sampler:
    """Every 0.1 s while the workers run: every core's busy seconds (so the busy time up to
    the last output can be read afterwards, without the idle tail of workers waiting for
    each other's steps), and the CPU of each server backend connected to the run's state
    database, when the server runs here (others' work on a shared server is not counted;
    a backend's last tenth of a second is missed)."""

    def __init__(self, admin_url: str, database: str) -> None:
        self.samples = [(time.time(), _machine_busy())]
        self.backends: dict[int, float] = {}
        self._database = database
        local = urlsplit(admin_url).hostname in ("127.0.0.1", "localhost", "::1")
        self._conn = psycopg.connect(admin_url, autocommit=True) if local else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="bench-sampler", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            self.samples.append((time.time(), _machine_busy()))
            if self._conn is None:
                continue
            found = self._conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self._database,)
            ).fetchall()
            for (pid,) in found:
                used = _process_cpu(pid, "postgres")
                self.backends[pid] = max(self.backends.get(pid, 0.0), used)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.time(), _machine_busy()))
        if self._conn is not None:
            self._conn.close()

    def busy_until(self, moment: float) -> float:
        """Busy seconds from the start to ``moment``, between the samples either side of it."""
        before = [sample for sample in self.samples if sample[0] <= moment][-1]
        after = next((sample for sample in self.samples if sample[0] > moment), before)
        share = (moment - before[0]) / (after[0] - before[0]) if after is not before else 0.0
        return before[1] + share * (after[1] - before[1]) - self.samples[0][1]

    def backends_cpu(self) -> float:
        return sum(self.backends.values()) if self._conn is not None else math.nan


def _process_cpu(pid: int, name: str) -> float:
    """User + sys seconds of process ``pid`` if it is a ``name``, else 0."""
    proc = Path("/proc") / str(pid)
    try:
        if (proc / "comm").read_text().strip() != name:
            return 0.0
        fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # gone meanwhile
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> float:
    """Seconds every core together spent on user, nice, system, irq and softirq since boot."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return math.nan
    user, nice, system, _idle, _iowait, irq, softirq = (int(f) for f in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")

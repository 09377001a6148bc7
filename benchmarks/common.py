"""Shared plumbing of the benchmarks: emulators, configs, measured child processes, figures.

The emulator always runs in the benchmark's own process; whatever is measured (``dapctl``,
the raw downloader, the official ``dap`` CLI) runs in a child process, so its wall time and
peak resident memory (``os.wait4``'s rusage) are its own and it does not share a GIL with
the server.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from dapctl.emulator import Emulator, EmulatorSettings

HERE = Path(__file__).resolve().parent
CHILD = HERE / "child.py"
TIME = "/usr/bin/time"  # GNU time: the peak RSS of a command
PYTHON = sys.executable
SECRET_VAR = "DAPCTL_BENCH_SECRET"  # noqa: S105 (a variable name)
ID_VAR = "DAPCTL_BENCH_CLIENT_ID"
# Jobs made ahead of a measurement use their own client, so they spend none of its quota.
WARM_ID, WARM_SECRET = "bench-warmer", "bench-warmer-secret"


# The official client in scenario 3 logs in as its own client: the server counts rate limits
# per client, and dapctl's client-side books cannot know about another program's calls.
OTHER_ID, OTHER_SECRET = "bench-other", "bench-other-secret"


def emulator(**settings: Any) -> Emulator:
    clients = {WARM_ID: WARM_SECRET, OTHER_ID: OTHER_SECRET}
    base = EmulatorSettings(clients=clients, gzip_level=1)
    return Emulator(base.with_(**settings)).start()


def child_env(emu: Emulator, **extra: str) -> dict[str, str]:
    client_id, secret = emu.credentials
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAP_")}
    root = str(HERE.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return {**env, ID_VAR: client_id, SECRET_VAR: secret, **extra}


def config_text(
    emu: Emulator,
    tables: Sequence[str],
    *,
    fmt: str = "jsonl",
    namespace: str = "canvas",
    rate_limits: str = "",
    concurrency: int = 4,
) -> str:
    names = ", ".join(json.dumps(t) for t in tables)
    return f"""
[settings]
state = "state.json"
concurrency = {concurrency}

[profiles.bench]
base_url = "{emu.base_url}"
client_id_env = "{ID_VAR}"
client_secret_env = "{SECRET_VAR}"
{rate_limits}

[[targets]]
name = "bench"
namespace = "{namespace}"
tables = [{names}]
format = "{fmt}"
sync = "snapshot"
output = "out/{{table}}.{{format}}.gz"
"""


def prepare_job(emu: Emulator, table: str, fmt: str = "jsonl", timeout: float = 3600) -> None:
    """Create the job a measurement will ask for, and wait until its parts are encoded.

    An identical query later gets this job back from the emulator's cache, complete, so the
    emulator's encoding (tens of microseconds a row) stays out of the measured window.
    """
    namespace, name = table.split(".", 1)
    session = requests.Session()
    login = session.post(
        f"{emu.base_url}/ids/auth/login",
        auth=(WARM_ID, WARM_SECRET),
        data={"grant_type": "client_credentials"},
        timeout=30,
    )
    auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
    url = f"{emu.base_url}/dap/query/{namespace}/table/{name}/data"
    job = session.post(url, json={"format": fmt, "mode": None}, headers=auth, timeout=30).json()
    deadline = time.monotonic() + timeout
    while job["status"] != "complete":
        if time.monotonic() > deadline:
            raise RuntimeError(f"job for {table} not ready after {timeout} s")
        time.sleep(0.2)
        job = session.get(f"{emu.base_url}/dap/job/{job['id']}", headers=auth, timeout=30).json()


@dataclass(frozen=True)
class Measured:
    seconds: float  # wall time, from spawn to exit
    peak_rss_mb: float  # the child's peak resident set
    stdout: str


def measure(
    command: Sequence[str], *, env: dict[str, str], cwd: Path, timeout: float = 3600
) -> Measured:
    """Run ``command`` to its end; its wall time and peak RSS, failing loudly if it fails.

    Peak RSS comes from ``/usr/bin/time``, not from our own ``wait4``: Linux carries a
    process's ``ru_maxrss`` across fork and exec, so a child of this process (which holds the
    emulator's data) would report at least our size. ``time`` is small, and so is that floor.
    """
    timed = Path(TIME).exists()
    with tempfile.TemporaryDirectory() as scratch:
        report, out_path, err_path = (Path(scratch) / name for name in ("rss", "out", "err"))
        prefix = [TIME, "-f", "%M", "-o", str(report)] if timed else []
        with out_path.open("wb") as out, err_path.open("wb") as err:
            started = time.perf_counter()
            proc = subprocess.Popen([*prefix, *command], stdout=out, stderr=err, env=env, cwd=cwd)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
            seconds = time.perf_counter() - started
        stdout, stderr = out_path.read_text(), err_path.read_text()
        if proc.returncode != 0:
            raise RuntimeError(
                f"{list(command[:4])} failed ({proc.returncode}):\n{stdout}\n{stderr}"
            )
        rss_kib = float(report.read_text().split()[-1]) if timed else float("nan")
    return Measured(seconds, rss_kib / 1024, stdout)


def child(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 3600
) -> tuple[Measured, dict[str, Any]]:
    """Run ``child.py`` with ``args``; its own report (the last stdout line) beside ours."""
    measured = measure([PYTHON, str(CHILD), *args], env=env, cwd=cwd, timeout=timeout)
    report = json.loads(measured.stdout.strip().splitlines()[-1])
    if report.get("failed"):
        raise RuntimeError(f"apply had failed steps: {report['failed'][:3]}")
    return measured, report


@dataclass
class Figure:
    """Several runs of one quantity: shown as median (min to max)."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def show(self, digits: int = 2) -> tuple[str, str, str]:
        return tuple(f"{v:.{digits}f}" for v in (self.median, min(self.values), max(self.values)))  # type: ignore[return-value]


@dataclass(frozen=True)
class Row:
    scenario: str
    measure: str
    figure: Figure
    unit: str
    digits: int = 2
    target: str = ""
    met: bool | None = None
    note: str = ""

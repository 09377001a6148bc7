"""The measured side of a benchmark, run in its own process so its memory and CPU are its own.

``child.py apply CONFIG``: one ``dapctl apply`` through the library (so the benchmark can pass
the scaled rate-limit window and poll intervals the CLI does not expose). ``child.py raw
BASE_URL NS.TABLE FORMAT``: the physical limit, the same job's parts fetched from the same
pre-signed URLs in parallel with requests, bytes discarded. Either prints one JSON line:
seconds inside the measured window (wall, and CPU of all the process's threads), bytes,
records, the steps it ran (``ok``) and those another worker ran (``held``), and the process's
peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

SECRET_VAR = "DAPCTL_BENCH_SECRET"  # noqa: S105 (a variable name)
ID_VAR = "DAPCTL_BENCH_CLIENT_ID"
CHUNK = 1 << 20


def _peak_rss_mb() -> float:
    """This process's own peak RSS: ``VmHWM``, which (unlike ``ru_maxrss``) exec resets."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_apply_once(args: argparse.Namespace) -> dict[str, Any]:
    from dapctl.api.session import Connection
    from dapctl.apply import ApplyOptions
    from dapctl.loading import load_config
    from dapctl.wiring import run_apply

    loaded = load_config(Path(args.config))
    connection = Connection(
        window=args.window, poll_initial=args.poll_initial, poll_max=args.poll_max
    )
    started, cpu = time.perf_counter(), time.process_time()
    results = run_apply(
        loaded,
        environ=os.environ,
        options=ApplyOptions(concurrency=args.concurrency),
        connection=connection,
    )
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    # ``held``: a worker sharing the state (scenario 6) ran the step, not a failure.
    failed = [f"{r.address}: {r.error.message if r.error else r.status}" for r in results
              if r.status not in ("ok", "held")]  # fmt: skip
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "bytes": sum(r.bytes for r in results),
        "records": sum(r.records for r in results),
        "ok": sum(r.status == "ok" for r in results),
        "held": sum(r.status == "held" for r in results),
        "failed": failed,
        "peak_rss_mb": _peak_rss_mb(),
    }


def run_raw_once(args: argparse.Namespace) -> dict[str, Any]:
    base = args.base_url.rstrip("/")
    namespace, table = args.table.split(".", 1)
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=args.workers)
    session.mount("http://", adapter)
    started, cpu = time.perf_counter(), time.process_time()
    login = session.post(
        f"{base}/ids/auth/login",
        auth=(os.environ[ID_VAR], os.environ[SECRET_VAR]),
        data={"grant_type": "client_credentials"},
        timeout=30,
    )
    login.raise_for_status()
    auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
    job = session.post(
        f"{base}/dap/query/{namespace}/table/{table}/data",
        json={"format": args.format, "mode": None},
        headers=auth,
        timeout=30,
    ).json()
    if job.get("status") != "complete":  # the benchmark makes the job before it runs us
        raise SystemExit(f"job is {job.get('status')}, not complete: prepare it first")
    ids = [{"id": ref["id"]} for ref in job["objects"]]
    answer = session.post(f"{base}/dap/object/url", json=ids, headers=auth, timeout=30)
    urls = [entry["url"] for entry in answer.json()["urls"].values()]

    def fetch(url: str) -> int:
        with session.get(url, stream=True, timeout=60) as response:
            response.raise_for_status()
            return sum(len(chunk) for chunk in response.iter_content(CHUNK))

    with ThreadPoolExecutor(args.workers) as pool:
        total = sum(pool.map(fetch, urls))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "bytes": total,
        "parts": len(urls),
        "peak_rss_mb": _peak_rss_mb(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="mode", required=True)
    apply = sub.add_parser("apply")
    apply.add_argument("config")
    apply.add_argument("--window", type=float, default=60.0)
    apply.add_argument("--poll-initial", type=float, default=0.5)
    apply.add_argument("--poll-max", type=float, default=15.0)
    apply.add_argument("--concurrency", type=int, default=4)
    raw = sub.add_parser("raw")
    raw.add_argument("base_url")
    raw.add_argument("table")
    raw.add_argument("format")
    raw.add_argument("--workers", type=int, default=4)
    args = parser.parse_args(argv)
    answer = run_apply_once(args) if args.mode == "apply" else run_raw_once(args)
    sys.stdout.write(json.dumps(answer) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

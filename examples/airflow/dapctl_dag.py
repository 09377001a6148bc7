"""dapctl in Airflow (2.7+): plan once, then apply each institution's steps in parallel tasks.

The first task runs ``dapctl plan CONFIG --json``. For each profile of the config, one task
is mapped (``.expand``) over that profile's planned steps, in chunks of ``CHUNK``; each
mapped instance runs ``dapctl apply CONFIG --profile P --target ADDRESS ... --json``. Every
task of one profile runs in that profile's Airflow pool, ``dap_<profile>``, so the number
of applies working against one institution's DAP credentials at once is set per
institution, and one institution's slow tables or rate limits never hold up another's.

Requirements:

- The config keeps its state in PostgreSQL (``[settings] state`` or ``state_env``), since
  several applies run at once on different Airflow workers: they share the state, each
  claiming its steps with a lease (README: "Running at scale" > "Many workers"). Every
  task of one DAG run sets ``DAPCTL_ROUND`` to the run's id, so a retried or late task
  never redoes a step another task finished in this run.
- dapctl is installed where the tasks run (``pip install 'dapctl[postgresql]'``), and the
  config is readable there and by the scheduler (this file reads its profile names).
- The DAP credentials and PGPASSWORD (or a ~/.pgpass) are in the workers' environment, or
  in files the config's ``client_secret_file`` names; none of them goes through XCom.

Create one pool per profile before enabling the DAG (a task whose pool does not exist is
never scheduled). Slots are how many applies may work on that institution at once; dapctl
keeps DAP's per-client rate limits across them anyway (budgets kept in the database), so
extra slots only add tables downloading side by side:

    airflow pools set dap_univ_a 2 "dapctl: DAP applies for univ_a at once"
    airflow pools set dap_univ_b 1 "dapctl: DAP applies for univ_b at once"

(or Admin > Pools in the web UI, or ``airflow pools import pools.json``).
"""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from datetime import datetime, timedelta
from pathlib import Path

from airflow.decorators import dag, task
from airflow.operators.python import get_current_context

CONFIG = os.environ.get("DAPCTL_CONFIG", "/opt/dapctl/dapctl.toml")
CHUNK = 5  # steps (tables) per mapped task: fewer, larger tasks, or more, finer retries
# The profiles, read when the scheduler parses this file: one mapped task and pool each.
PROFILES = sorted(tomllib.loads(Path(CONFIG).read_text(encoding="utf-8")).get("profiles", {}))


def dapctl(args: list[str]) -> dict:
    """Run dapctl with the run's round; return its --json document (it goes to the task's
    XCom), failing the task when dapctl exits non-zero (its JSON logs go to the task's log).
    A task stopped (execution_timeout, marked failed) stops dapctl with SIGTERM, which
    releases its leases at once (exit 143), rather than SIGKILL, whose leases must expire."""
    env = {**os.environ, "DAPCTL_ROUND": get_current_context()["run_id"]}
    with subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            out, err = proc.communicate()
        except BaseException:
            proc.terminate()
            proc.communicate(timeout=60)
            raise
    print(err)
    if proc.returncode != 0:
        raise RuntimeError(f"dapctl {args[1]} exited {proc.returncode}: {out[-2000:]}")
    return json.loads(out)


@dag(
    schedule="15 */6 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # one round at a time, as a CronJob's concurrencyPolicy Forbid
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["dapctl"],
)
def dapctl_apply():
    @task
    def plan() -> list[dict]:
        """Every step dapctl would run, from the shared state; nothing started yet."""
        return dapctl(["dapctl", "plan", CONFIG, "--json"])["steps"]

    @task
    def chunks(steps: list[dict], profile: str) -> list[list[str]]:
        """This profile's step addresses, in chunks of CHUNK (none: no mapped task runs)."""
        addresses = [s["address"] for s in steps if s["profile"] == profile]
        return [addresses[i : i + CHUNK] for i in range(0, len(addresses), CHUNK)]

    @task(execution_timeout=timedelta(hours=5))  # on timeout: SIGTERM, leases released
    def apply(addresses: list[str], profile: str) -> dict:
        """One chunk of one profile's steps; another task's held steps report as held."""
        targets = [arg for address in addresses for arg in ("--target", address)]
        return dapctl(
            [
                "dapctl",
                "apply",
                CONFIG,
                "--profile",
                profile,
                "--json",
                "--log-format",
                "json",
                "--no-progress",
                *targets,
            ]
        )

    @task(trigger_rule="all_done")
    def freshness() -> dict:
        """After every apply task, fail the run if a table is beyond its freshness (dapctl
        status exits 4 or 5): the one task to alert on, whatever a retry fixed."""
        return dapctl(["dapctl", "status", CONFIG, "--json"])

    steps = plan()
    applies = []
    for profile in PROFILES:
        mine = chunks.override(task_id=f"chunks_{profile}")(steps, profile)
        # A pool is a task's setting and cannot be mapped: each profile gets its own mapped
        # task, all of whose instances share the profile's pool.
        applies.append(
            apply.override(task_id=f"apply_{profile}", pool=f"dap_{profile}")
            .partial(profile=profile)
            .expand(addresses=mine)
        )
    applies >> freshness()


dapctl_apply()

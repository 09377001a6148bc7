"""Many workers on one state, in one process (issue 12): workers racing for the same steps
(state in PostgreSQL, or in memory with ``MemoryLeases``; file and database targets), and a
lease that expires between a failed claim and the read of its holder. The worker processes,
killed, stopped and frozen, are in ``test_worker_processes.py``."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from dapctl.databases import table_columns
from dapctl.loading import load_config
from dapctl.results import StepResult
from dapctl.state import MemoryBackend, MemoryStateStore
from dapctl.state.leases import SupportsLeases
from dapctl.state.memory_leases import LeasedMemoryStore, MemoryLeases
from dapctl.wiring import run_apply
from dapctl.workers import Worker
from tests.apply_helpers import FAST, apply, config_text, environ
from tests.clock import FakeClock
from tests.databases.helpers import Backend, dap_schema, expected_rows, query_postgresql
from tests.hardening.helpers import final_files
from tests.worker_helpers import ACCOUNTS, LEASE, USERS, pg_config, race, stored


def test_two_workers_racing_for_the_same_steps_each_step_runs_once(
    make_emulator, write_config, pg_url
):
    emu = make_emulator(job_delay=0.3, cache_jobs=False)
    path = write_config(pg_config(emu, pg_url))
    results = race(lambda: apply(path, emu))

    assert len(results) == 2
    by_address = defaultdict(list)
    for result in (r for worker in results for r in worker):
        by_address[result.address].append(result)
    for address in (ACCOUNTS, USERS):
        ok = [r for r in by_address[address] if r.status == "ok"]
        held = [r for r in by_address[address] if r.status == "held"]
        assert len(ok) == 1 and len(held) == 1, by_address[address]
        assert held[0].error.type == "ClaimedElsewhere"
        assert "finished by another worker" in held[0].error.message
        assert stored(pg_url).step(address).job_id == ok[0].job_id
    assert emu.stats.jobs_created == 2
    assert len(final_files(path.parent / "out")) == 2


@pytest.mark.parametrize("tables", ['["accounts", "users"]', '"all"'])
def test_apply_is_a_worker_on_any_store_that_leases_steps_and_alone_on_others(
    make_emulator, write_config, tables
):
    emu = make_emulator(job_delay=0.3, cache_jobs=False)
    path = write_config(config_text(emu, tables=tables, settings=f"lease_seconds = {LEASE}"))
    shared = MemoryBackend()

    def work() -> list[StepResult]:
        store = LeasedMemoryStore(shared)
        return run_apply(load_config(path), environ=environ(emu), connection=FAST, store=store)

    results = [r for worker in race(work) for r in worker]
    steps = MemoryStateStore(shared).read().steps
    assert Counter(r.status for r in results) == {"ok": len(steps), "held": len(steps)}
    assert {r.address for r in results if r.status == "ok"} == set(steps)
    assert emu.stats.jobs_created == len(steps) >= 2
    assert not isinstance(MemoryStateStore(shared), SupportsLeases)  # alone, under the lock


def test_racing_workers_load_each_database_table_once_per_round(
    make_emulator, write_config, pg_url, tmp_path
):
    emu = make_emulator(job_delay=0.3, cache_jobs=False)
    text = pg_config(emu, pg_url).replace('output = "out/', 'database = "wh"\n# output = "')
    path = write_config(f'[databases.wh]\nurl = "{pg_url}"\n\n{text}')
    warehouse = Backend("postgresql", pg_url, tmp_path, query_postgresql)
    for round_ in range(2):
        if round_:
            emu.advance(3600)
            emu.change("canvas", "accounts", inserts=3, updates=2, deletes=1)
        results = [r for worker in race(lambda: apply(path, emu)) for r in worker]
        assert sorted(r.status for r in results) == ["held", "held", "ok", "ok"], results
        for result in (r for r in results if r.status == "ok"):  # as a lone apply asks
            job = emu.jobs.get(str(result.job_id), emu.clock())
            assert job is not None and (job.query.format, job.query.mode) == ("tsv", "condensed")
    for table in ("accounts", "users"):
        schema = dap_schema("canvas", table)
        want = expected_rows(emu.expected_snapshot("canvas", table), table_columns(schema))
        assert warehouse.rows(f"canvas.{table}", schema) == want, table
    assert emu.stats.jobs_created == 4 and warehouse.staging_tables() == []


def test_a_lease_that_expires_between_a_failed_claim_and_its_holders_read_is_tried_again():
    shared, fake = MemoryBackend(), FakeClock()

    class Expiring(MemoryLeases):  # the holder's lease runs out just after the claim fails
        def claim(self, *args, **kwargs):
            lease = super().claim(*args, **kwargs)
            fake.tick(LEASE + 1)
            return lease

    holder = Worker(MemoryLeases(shared, clock=fake.utc), ttl=LEASE, heartbeat=3600)
    worker = Worker(Expiring(shared, clock=fake.utc), ttl=LEASE, heartbeat=3600)
    holder.leases.begin(holder.name, LEASE)
    assert holder.claim(ACCOUNTS).held_by is None
    claim = worker.claim(ACCOUNTS)
    assert claim.held_by is not None and claim.wait  # not reported: claimed once it is free
    assert worker.claim(ACCOUNTS).held_by is None

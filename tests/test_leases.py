"""The ``Leases`` contract, for the in-memory leases and PostgreSQL's: one winner of a race,
expiry and take-over by the backend's clock, fencing tokens that only grow, fenced writes
that land only under a live lease, heartbeats, and steps finished in this round."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg
import pytest
from freezegun import freeze_time

from dapctl.state import MemoryBackend, StepState
from dapctl.state.leases import FencedError, Leases
from dapctl.state.memory_leases import MemoryLeases
from dapctl.state.postgres import PostgresStateStore
from tests.clock import FakeClock

A, B = "univ_a/core/canvas.accounts", "univ_a/core/canvas.users"
TTL = 0.6  # seconds: short, so expiry on the real server's clock costs little wall time


@dataclass
class Backend:
    """``open()`` another worker's view of one shared backend; ``expire()`` lets more than a
    lease's time pass on the backend's clock."""

    open: Callable[[], Leases]
    expire: Callable[[], None]


@pytest.fixture(params=["memory", "postgresql"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "memory":
        shared, fake = MemoryBackend(), FakeClock()
        yield Backend(lambda: MemoryLeases(shared, clock=fake.utc), lambda: fake.tick(TTL + 0.1))
        return
    url = request.getfixturevalue("pg_url")
    stores: list[PostgresStateStore] = []

    def open_pg() -> Leases:
        stores.append(PostgresStateStore(url, namespace="dapctl"))
        return stores[-1].leases()

    yield Backend(open_pg, lambda: time.sleep(TTL + 0.1))
    for store in stores:
        store.close()


def test_of_workers_racing_for_one_step_exactly_one_wins(backend):
    workers = [backend.open() for _ in range(8)]
    workers[0].begin("w0", 30)
    barrier = threading.Barrier(len(workers))
    won: list[object] = []

    def claim(index: int) -> None:
        barrier.wait()
        won.append(workers[index].claim(A, f"w{index}", 30))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    leases = [lease for lease in won if lease is not None]
    assert len(won) == 8 and len(leases) == 1
    holder = workers[0].holder(A)
    assert holder is not None and holder.live and holder.worker == leases[0].worker


def test_a_live_lease_is_taken_over_only_once_it_expires_with_a_larger_token(backend):
    first, second = backend.open(), backend.open()
    first.begin("first", 30)
    mine = first.claim(A, "first", TTL)
    assert mine is not None
    assert second.claim(A, "second", TTL) is None
    assert "claimed by another worker (first)" in second.holder(A).describe()
    other = second.claim(B, "second", TTL)  # another step is free
    assert other is not None and other.token > mine.token

    backend.expire()
    taken = second.claim(A, "second", TTL)
    assert taken is not None and taken.token > other.token


def test_live_names_the_steps_a_live_lease_holds_in_one_read(backend):
    holder, waiter = backend.open(), backend.open()
    holder.begin("holder", 30)
    a, b = holder.claim(A, "holder", TTL), holder.claim(B, "holder", TTL)
    assert a is not None and b is not None
    assert waiter.live([A, B, "never/claimed/x.y"]) == {A, B}
    holder.release(a, finished=True)
    assert waiter.live([A, B]) == {B}
    backend.expire()
    assert waiter.live([A, B]) == set()


def test_a_fenced_write_lands_only_while_the_lease_is_live_and_carries_the_token(backend):
    frozen, rescuer = backend.open(), backend.open()
    frozen.begin("frozen", 30)
    lease = frozen.claim(A, "frozen", TTL)
    frozen.write_step(lease, StepState(records=1))
    assert rescuer.read_step(A) == StepState(records=1)

    backend.expire()
    with pytest.raises(FencedError, match="lease lost: another worker took this step over"):
        frozen.write_step(lease, StepState(records=2))  # expired, though nobody took it yet
    taken = rescuer.claim(A, "rescuer", 30)
    rescuer.write_step(taken, StepState(records=3))
    with pytest.raises(FencedError):
        frozen.write_step(lease, StepState(records=4))
    with pytest.raises(FencedError):
        frozen.check(lease)
    frozen.release(lease, finished=True)  # a lost lease's release changes nothing
    rescuer.check(taken)
    assert rescuer.read_step(A) == StepState(records=3)
    assert rescuer.holder(A).live and rescuer.holder(A).finished is None


def test_a_worker_may_claim_its_own_live_lease_again_and_the_old_token_is_fenced(backend):
    leases = backend.open()
    leases.begin("me", 30)
    first = leases.claim(A, "me", 30)  # say its answer was lost on the way
    again = leases.claim(A, "me", 30)
    assert again is not None and again.token > first.token
    with pytest.raises(FencedError):
        leases.write_step(first, StepState(records=1))
    leases.write_step(again, StepState(records=2))
    assert leases.read_step(A) == StepState(records=2)


def test_a_statement_whose_session_the_server_ended_is_tried_again(pg_url):
    store = PostgresStateStore(pg_url, namespace="dapctl")
    leases = store.leases()
    leases.begin("me", 30)
    lease = leases.claim(A, "me", 30)
    with psycopg.connect(pg_url, autocommit=True) as admin:  # as idle_in_transaction would
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    leases.write_step(lease, StepState(records=7))
    assert leases.read_step(A) == StepState(records=7)
    store.close()


def test_a_heartbeat_extends_the_workers_live_leases_only(backend):
    leases = backend.open()
    leases.begin("me", 30)
    kept = leases.claim(A, "me", TTL)
    dropped = leases.claim(B, "me", TTL)
    leases.release(dropped, finished=False)
    assert leases.heartbeat("me", 30) == {kept.token}
    backend.expire()
    leases.check(kept)  # extended: still live past the first expiry
    assert leases.claim(A, "other", TTL) is None
    assert leases.claim(B, "other", TTL) is not None  # released unfinished: free at once


def test_a_step_finished_since_a_worker_started_is_not_claimed_by_it(backend):
    early, finisher, late = backend.open(), backend.open(), backend.open()
    since = early.begin("early", TTL)
    early.end("early")
    lease = finisher.claim(A, "finisher", TTL)
    finisher.write_step(lease, StepState(records=5))
    finisher.release(lease, finished=True)
    backend.expire()  # later than the finish, on the backend's clock

    assert early.claim(A, "early", TTL, since=since) is None
    holder = early.holder(A)
    assert not holder.live and holder.finished is not None
    assert "finished by another worker (finisher)" in holder.describe()
    again = finisher.claim(A, "finisher", TTL, since=since)  # its own step: a follow-up
    assert again is not None
    finisher.release(again, finished=True)
    backend.expire()
    assert late.claim(A, "late", TTL, since=late.begin("late", TTL)) is not None  # next round


def test_a_worker_that_starts_while_others_run_joins_their_round(backend):
    first, second, third, next_round = (backend.open() for _ in range(4))
    started = first.begin("first", TTL)
    backend.expire()
    first.heartbeat("first", TTL)  # still running, though it began more than TTL ago
    assert second.begin("second", TTL) == started
    first.end("first")
    assert third.begin("third", TTL) == started  # the round lasts while any worker runs
    second.end("second")
    backend.expire()  # third died without signing off: forgotten after a lease's time
    assert next_round.begin("next", TTL) > started


def test_workers_of_a_named_round_share_its_start_however_late_they_come(backend):
    first, late, other = backend.open(), backend.open(), backend.open()
    started = first.begin("first", TTL, round="job-1")
    first.end("first")
    backend.expire()  # nobody of the round runs any more
    assert late.begin("late", TTL, round="job-1") == started
    assert other.begin("other", TTL, round="job-2") > started


def test_lease_times_come_from_the_databases_clock(pg_url):
    store = PostgresStateStore(pg_url, namespace="dapctl")
    leases = store.leases()
    with freeze_time("2001-02-03T04:05:06Z"):
        since = leases.begin("me", 30)
        lease = leases.claim(A, "me", 30)
    store.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        (now,) = conn.execute("SELECT now()").fetchone()
    assert since.year != 2001 and abs((lease.expires - now).total_seconds() - 30) < 5

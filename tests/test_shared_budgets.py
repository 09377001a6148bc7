"""Rate-limit budgets shared by every worker through the PostgreSQL state (issue 12).

DAP counts a credential's requests whoever sends them, so two workers on one institution
must spend one budget between them: the ledger books each send under the credential's key,
at the database's clock, no closer than the quota allows to the sends before it.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter

import psycopg
import pytest

from dapctl.api.ratelimit import RateLimiter
from dapctl.emulator import RateLimits
from dapctl.state.pg_sends import IN_FLIGHT_POLL, PgSendLedger
from tests.apply_helpers import FAST, GENEROUS, apply
from tests.worker_helpers import pg_config, race

SPAN = 0.4


def _booked(url: str, key: str) -> list[float]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM at)::float8 FROM dapctl.state_sends WHERE key = %s "
            "ORDER BY at",
            (key,),
        ).fetchall()
    return [at for (at,) in rows]


def test_sends_from_two_processes_keep_one_budget_between_them(pg_url):
    ledgers = [PgSendLedger(pg_url), PgSendLedger(pg_url)]  # a connection each, as two workers

    def send(ledger: PgSendLedger) -> None:
        limiter = RateLimiter(2, window=SPAN, margin=0.0, name="jobs")
        limiter.share(ledger, "cred:jobs")
        for _ in range(4):
            with limiter.slot():
                time.sleep(0.01)  # the request's round trip

    threads = [threading.Thread(target=send, args=(ledger,)) for ledger in ledgers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for ledger in ledgers:
        ledger.close()

    at = _booked(pg_url, "cred:jobs")
    assert len(at) == 8
    gaps = [later - earlier for earlier, later in zip(at, at[2:], strict=False)]
    assert min(gaps) >= SPAN - 0.001, gaps  # never 3 sends within one span, whoever sent them
    assert at[-1] - at[0] >= 3 * SPAN
    assert _booked(pg_url, "cred:urls") == []  # another endpoint class: its own budget


def test_a_refused_send_costs_no_slot_and_other_credentials_are_apart(pg_url):
    ledger = PgSendLedger(pg_url)
    try:
        refused, _ = ledger.reserve("a:jobs", 1, 60.0)
        assert refused is not None
        ledger.settle(refused, refused=True)  # a 429: the server did not count it
        first, wait = ledger.reserve("a:jobs", 1, 60.0)
        assert first is not None and wait == 0.0
        ledger.settle(first, refused=False)
        _, other = ledger.reserve("b:jobs", 1, 60.0)  # another institution's budget
        assert other == 0.0
        _, wait = ledger.reserve("a:jobs", 1, 60.0)
        assert 59.0 < wait <= 60.0  # the quota spent: the next send waits its window
    finally:
        ledger.close()


def test_a_limiter_sharing_a_ledger_waits_for_sends_another_process_made(pg_url):
    ledger = PgSendLedger(pg_url)
    slept: list[float] = []
    try:
        for _ in range(2):  # another worker's sends, a moment ago
            booked, _ = ledger.reserve("cred:jobs", 2, 60.0)
            assert booked is not None
            ledger.settle(booked, refused=False)
        limiter = RateLimiter(2, sleep=slept.append, name="jobs")
        limiter.share(ledger, "cred:jobs")
        with limiter.slot() as slot:
            pass
        assert len(slept) == 1 and 59.0 < slept[0] <= 60.2 and slot.waited == slept[0]
    finally:
        ledger.close()


def test_a_send_in_flight_holds_the_next_back_until_its_answer_books_it(pg_url):
    ledger = PgSendLedger(pg_url)
    try:
        flying, _ = ledger.reserve("cred:jobs", 1, 60.0)
        assert flying is not None
        assert ledger.reserve("cred:jobs", 1, 60.0) == (None, IN_FLIGHT_POLL)  # not counted yet
        time.sleep(0.2)  # the answer comes late: the server may have counted it just now
        ledger.settle(flying, refused=False)
        booked, wait = ledger.reserve("cred:jobs", 1, 60.0)
        assert booked is not None and 59.9 < wait <= 60.0  # a span after the answer
        at = _booked(pg_url, "cred:jobs")
        assert at[1] - at[0] == pytest.approx(60.0, abs=0.05)
    finally:
        ledger.close()


def test_a_send_a_killed_worker_never_settled_stops_holding_others_back(pg_url):
    ledger = PgSendLedger(pg_url)
    try:
        ledger.reserve("cred:jobs", 1, 60.0)  # creates the table
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("DELETE FROM dapctl.state_sends")
            conn.execute(  # in flight for 61 s: its worker died before the answer
                "INSERT INTO dapctl.state_sends (key, at) "
                "VALUES ('cred:urls', clock_timestamp() - interval '61 seconds')"
            )
        booked, wait = ledger.reserve("cred:urls", 1, 70.0)
        assert booked is not None and 8.0 < wait <= 9.1  # a span after its slot, not a poll
    finally:
        ledger.close()


def test_a_ledger_on_an_unreachable_database_fails_clearly_without_the_password():
    ledger = PgSendLedger("postgresql://dapctl:s3cret-pw@127.0.0.1:1/nowhere")
    with pytest.raises(Exception) as caught:
        ledger.reserve("cred:jobs", 5, 60.0)
    message = str(caught.value)
    assert "shared rate-limit budget" in message and "s3cret-pw" not in message


class _Alone:
    """A ledger that books nothing: each worker with only its own budget (the control)."""

    def __init__(self) -> None:
        self.limiters: dict[str, RateLimiter] = {}

    def reserve(self, key: str, capacity: int, span: float) -> tuple[int | None, float]:
        limiter = self.limiters.setdefault(key, RateLimiter(capacity, window=span, margin=0))
        return 0, limiter.reserve()

    def settle(self, send: int, *, refused: bool) -> None:
        pass


def _racing_workers(make_emulator, write_config, pg_url, *, shared: bool) -> int:
    window = 3.0  # the published quotas, squeezed into 3 s on both sides
    emu = make_emulator(job_delay=0.2, cache_jobs=False, rate_limits=RateLimits(window=window))
    text = pg_config(emu, pg_url, tables='"all"').replace(GENEROUS, "# the published limits")
    copy = '[[targets]]\nname = "copy"\ntables = "all"\noutput = "copy/{table}-{timestamp}.jsonl"'
    path = write_config(f"{text}\n{copy}\n")  # 12 jobs: more than two windows' worth
    targets = iter([["*/core/*"], ["*/copy/*"]])  # one each: both certainly send at once

    def worker() -> list:
        books = {} if shared else {"ledger": _Alone()}  # the control: books of its own
        connection = dataclasses.replace(FAST, window=window, **books)
        return apply(path, emu, connection=connection, targets=next(targets))

    results = race(worker)
    statuses = Counter(r.status for worker in results for r in worker)
    assert statuses == {"ok": 12} and emu.stats.jobs_created == 12, statuses
    return emu.stats.rate_limited


def test_two_workers_on_one_credential_earn_no_429(make_emulator, write_config, pg_url):
    assert _racing_workers(make_emulator, write_config, pg_url, shared=True) == 0


def test_without_the_shared_budget_the_same_workers_do_earn_429s(
    make_emulator, write_config, pg_url
):
    """The control: this is what sharing the budget prevents."""
    assert _racing_workers(make_emulator, write_config, pg_url, shared=False) > 0

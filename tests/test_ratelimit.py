"""The client-side limiter: never more than N sends in any window, first come first served,
and no wait longer than the budget requires. A fake clock and sleeper make it exact."""

from __future__ import annotations

import logging
import random
import threading

import pytest

from dapctl.api.ratelimit import MARGIN_FRACTION, RateLimiter, RateLimits
from dapctl.config import RateLimitSettings
from tests.clock import FakeClock


def max_in_any_window(sends: list[float], span: float) -> int:
    """The most sends inside any half-open interval [t, t + span)."""
    ordered = sorted(sends)
    best, first = 0, 0
    for last, t in enumerate(ordered):
        while t - ordered[first] >= span:
            first += 1
        best = max(best, last - first + 1)
    return best


def limiter(per_minute: float, fake: FakeClock, **kwargs) -> RateLimiter:
    return RateLimiter(per_minute, clock=fake.clock, sleep=fake.sleep, **kwargs)


def test_sends_within_budget_do_not_wait():
    fake = FakeClock(1000.0)
    limit = limiter(5, fake)

    assert [limit.acquire() for _ in range(5)] == [0.0] * 5
    assert fake.sleeps == []


def test_the_next_send_waits_exactly_until_the_oldest_leaves_the_window():
    fake = FakeClock(1000.0)
    limit = limiter(5, fake, margin=1.0)
    for _ in range(5):
        limit.acquire()
        fake.now += 2.0  # sends at 1000, 1002, ..., 1008

    waited = limit.acquire()  # at 1010: the send at 1000 frees its slot at 1060 (+1 margin)

    assert waited == pytest.approx(51.0)
    assert fake.now == pytest.approx(1061.0)
    # The next one waits for the send at 1002, not a whole window more.
    assert limit.acquire() == pytest.approx(2.0)


def test_no_wait_once_the_window_has_passed():
    fake = FakeClock(1000.0)
    limit = limiter(5, fake)
    for _ in range(5):
        limit.acquire()
    fake.now += 62.0

    assert limit.acquire() == 0.0


def test_never_more_than_n_sends_in_any_window_under_random_load():
    fake = FakeClock(1000.0)
    limit = limiter(5, fake)  # the default margin, 1 s a minute
    rng = random.Random(3)
    sends = []
    for _ in range(300):
        fake.now += rng.expovariate(1 / 4.0)  # bursts and lulls around the budget
        limit.acquire()
        sends.append(fake.now)

    assert max_in_any_window(sends, 60.0) == 5


def test_full_throughput_a_hundred_jobs_take_the_time_the_budget_requires():
    fake = FakeClock(1000.0)
    limit = limiter(5, fake, margin=1.0)

    for _ in range(100):
        limit.acquire()

    # 100 sends at 5 per 61 s: 19 full waits after the first burst, nothing more.
    assert fake.now - 1000.0 == pytest.approx(19 * 61.0)


def test_threads_share_the_budget_in_arrival_order():
    fake = FakeClock(1000.0)  # the clock stands still: every wait shows as a reservation
    limit = RateLimiter(5, clock=fake.clock, sleep=lambda s: None, margin=0.5)
    slots: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        for _ in range(25):
            with lock:  # pair each reservation with its result, in reservation order
                slots.append(fake.now + limit.reserve())

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert slots == sorted(slots)  # first come, first served
    assert max_in_any_window(slots, 60.0) == 5
    assert len(slots) == 200


def test_reserve_is_thread_safe_without_outside_locking():
    fake = FakeClock(1000.0)
    limit = RateLimiter(50, clock=fake.clock, sleep=lambda s: None, margin=0.0)
    slots: list[float] = []
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        slots.extend(fake.now + limit.reserve() for _ in range(100))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert max_in_any_window(slots, 60.0) == 50
    assert max(slots) == pytest.approx(1000.0 + 15 * 60.0)  # 800 sends: 16 windows, no gaps


def test_budget_below_one_per_window_stretches_the_span():
    fake = FakeClock(1000.0)
    limit = limiter(0.5, fake, margin=0.0)

    limit.acquire()

    assert (limit.capacity, limit.span) == (1, 120.0)
    assert limit.acquire() == pytest.approx(120.0)


def test_fractional_budget_is_never_exceeded():
    limit = RateLimiter(2.5, margin=0.0)
    # 2 sends per 48 s: at most 2.5 in any 60 s, on average and at worst (3 need 96 s).
    assert (limit.capacity, limit.span) == (2, 48.0)


def test_window_scales_for_benchmarks():
    fake = FakeClock(1000.0)
    limit = limiter(5, fake, window=1.0)
    for _ in range(5):
        limit.acquire()

    assert limit.acquire() == pytest.approx(1.0 + MARGIN_FRACTION)  # one "minute" is 1 s


def test_rate_limits_from_settings_uses_the_published_defaults():
    fake = FakeClock(1000.0)
    limits = RateLimits.from_settings(RateLimitSettings(), fake.clock, fake.sleep)

    capacities = [
        limits.jobs.capacity,
        limits.job_status.capacity,
        limits.tables.capacity,
        limits.schema.capacity,
        limits.urls.capacity,
    ]
    assert capacities == [5, 500, 5, 500, 200]
    assert limits.jobs.span == 60.0
    assert "jobs" in repr(limits.jobs)


def test_overridden_budget_and_window():
    settings = RateLimitSettings(jobs_per_minute=2, job_status_per_minute=100, urls_per_minute=10)
    limits = RateLimits.from_settings(settings, window=0.5)

    assert (limits.jobs.capacity, limits.jobs.span) == (2, 0.5)
    assert (limits.job_status.capacity, limits.urls.capacity) == (100, 10)


def test_the_old_status_per_minute_still_sets_job_status_but_not_both():
    old = RateLimitSettings.model_validate({"status_per_minute": 300})
    assert old.job_status_per_minute == 300 and old.schema_per_minute == 500
    with pytest.raises(ValueError, match="set job_status_per_minute only"):
        RateLimitSettings.model_validate({"status_per_minute": 3, "job_status_per_minute": 4})


def test_a_refused_send_leaves_the_books_as_they_were():
    fake = FakeClock(1000.0)
    limiter = RateLimiter(2, clock=fake.clock, sleep=fake.sleep, window=60.0, margin=0.0)
    with limiter.slot() as slot:
        slot.refused()  # a 429: the server counted nothing
    with limiter.slot():
        pass
    with limiter.slot():
        pass  # the budget of two is only used up now

    assert fake.sleeps == []
    with limiter.slot() as third:
        pass
    assert third.waited == pytest.approx(60.0)


def test_invalid_budget():
    with pytest.raises(ValueError):
        RateLimiter(0)


def test_a_slot_waits_for_the_answer_of_the_send_it_is_anchored_on():
    # Capacity 1: the second send may go only a span after the first one's ANSWER, since
    # the server may have counted the first as late as that.
    fake = FakeClock(1000.0)
    limit = RateLimiter(1, clock=fake.clock, sleep=fake.sleep, margin=0.0)
    with limit.slot():
        fake.now += 5.0  # a slow request: its answer comes 5 s after it went out
    with limit.slot():
        sent = fake.now
    assert sent == pytest.approx(1000.0 + 5.0 + 60.0)


def test_a_slot_reserved_before_its_anchor_answered_still_waits_for_the_answer():
    fake = FakeClock(1000.0)
    limit = RateLimiter(1, clock=fake.clock, sleep=fake.sleep, margin=0.0)
    first = limit.slot()
    first.__enter__()
    done: list[float] = []

    def second() -> None:
        with limit.slot() as waited:
            done.append(waited)

    thread = threading.Thread(target=second)
    thread.start()
    fake.now += 3.0  # the first answer arrives late, while the second already waits
    first.__exit__(None, None, None)
    thread.join(timeout=5)
    assert done and fake.now >= 1000.0 + 3.0 + 60.0 - 1e-6


# ---- the wait's notice (issue 20, item 15) ------------------------------------------------


def wait_notices(caplog) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.event == "rate_limit_wait"]


def profile_limits(fake: FakeClock, sleep) -> RateLimits:
    return RateLimits.from_settings(
        RateLimitSettings(), clock=fake.clock, sleep=sleep, profile="univ_a"
    )


def test_a_wait_is_announced_once_per_episode_naming_its_budget_and_seconds(caplog):
    # A second apply within a minute waited ~50 s for job slots and said nothing.
    caplog.set_level(logging.DEBUG, logger="dapctl.ratelimit")
    fake = FakeClock(1000.0)
    jobs = profile_limits(fake, sleep=lambda seconds: None).jobs  # the clock stands still
    for _ in range(5):
        jobs.acquire()
        fake.tick(2.4)  # sends at 1000, 1002.4, ..., 1009.6; now 1012
    assert wait_notices(caplog) == []

    # Three sends wait at once, as three threads would: one episode, one notice.
    waits = [jobs.acquire() for _ in range(3)]

    assert [round(w, 1) for w in waits] == [48.1, 50.5, 52.9]
    notice = "univ_a: waiting 48 s for a job slot: jobs_per_minute = 5"
    assert wait_notices(caplog) == [(logging.WARNING, notice)]

    fake.tick(53.0)  # every wait of that episode is over: the next wait is news
    jobs.acquire()
    assert len(wait_notices(caplog)) == 2


def test_threads_waiting_together_share_one_notice(caplog):
    caplog.set_level(logging.DEBUG, logger="dapctl.ratelimit")
    fake = FakeClock(1000.0)
    together = threading.Barrier(3)  # each waiting thread sleeps until all three wait
    status = RateLimiter(
        1, clock=fake.clock, sleep=lambda s: together.wait(timeout=30), name="job status"
    )
    status.acquire()  # the one free slot

    threads = [threading.Thread(target=status.acquire) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not together.broken
    assert len(wait_notices(caplog)) == 1


def test_a_short_wait_is_only_info(caplog):
    caplog.set_level(logging.DEBUG, logger="dapctl.ratelimit")
    fake = FakeClock(1000.0)
    urls = profile_limits(fake, sleep=fake.sleep).urls
    for _ in range(200):
        urls.acquire()  # 200 sends spread over 59.8 s: the 201st waits 0.3 s
        fake.tick(0.299)

    urls.acquire()

    [(level, message)] = wait_notices(caplog)
    assert level == logging.INFO
    assert message.startswith("univ_a: waiting ") and message.endswith(
        "for an object URL slot: urls_per_minute = 200"
    )

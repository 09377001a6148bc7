"""Pre-signed URLs asked for many parts of a job a request (issue 13): the object-URL budget
counts requests, so a job of many parts must not spend one request a part."""

from __future__ import annotations

from dapctl.api.urls import BATCH, FRESH, UrlBook
from tests.apply_helpers import apply, config_text
from tests.hardening.helpers import final_files, whole_gzip


class Server:
    """A fake URL endpoint: the batches asked for, a URL per object and request."""

    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    def fetch(self, ids):
        self.asked.append(list(ids))
        return {i: f"https://store/{i}?request={len(self.asked)}" for i in ids}


def test_the_first_part_asks_for_the_next_ones_and_they_take_theirs_from_the_book(fake):
    server, book = Server(), UrlBook(fake.clock)
    job = [f"o{i}" for i in range(BATCH + 10)]
    with book.expecting(job):
        urls = [book.take(o, fresh=False, fetch=server.fetch) for o in job]
    assert server.asked == [job[:BATCH], job[BATCH:]]  # two requests for 60 parts
    assert urls == [f"https://store/{o}?request={1 + (i >= BATCH)}" for i, o in enumerate(job)]


def test_a_retry_and_a_stale_url_ask_anew_and_nothing_outlives_its_job(fake):
    server, book = Server(), UrlBook(fake.clock)
    with book.expecting(["a", "b", "c"]):
        book.take("a", fresh=False, fetch=server.fetch)  # fetches a, b, c
        assert book.take("a", fresh=True, fetch=server.fetch).endswith("request=2")  # a retry
        fake.tick(FRESH + 1)
        assert book.take("b", fresh=False, fetch=server.fetch).endswith("request=3")  # stale
    assert server.asked == [["a", "b", "c"], ["a"], ["b", "c"]]
    with book.expecting(["c"]):  # another collection of the same object: nothing kept
        assert book.take("c", fresh=False, fetch=server.fetch).endswith("request=4")


def test_parts_asking_out_of_order_still_spend_one_request_per_fifty(fake):
    # Threads do not always ask in the order their parts were queued: part 101 before 100,
    # at a batch's edge, once cost 100 a request of its own (4 requests for 120 parts).
    server, book = Server(), UrlBook(fake.clock)
    job = [f"o{i}" for i in range(120)]
    order = [1, 0, *range(2, 100), 101, 100, *range(102, 120)]
    with book.expecting(job):
        urls = {job[i]: book.take(job[i], fresh=False, fetch=server.fetch) for i in order}
    assert len(server.asked) == 3
    assert sorted(o for batch in server.asked for o in batch) == sorted(job)  # each once
    assert set(urls) == set(job)


def test_a_job_of_many_parts_spends_a_url_request_per_fifty_parts(make_emulator, write_config):
    emu = make_emulator(rows={"canvas.accounts": 12_000}, part_size=100)  # 120 parts
    path = write_config(config_text(emu, tables='["accounts"]'))
    (result,) = apply(path, emu)
    assert result.status == "ok" and result.records == 12_000, result
    assert emu.stats.urls_issued == 120 and emu.stats.url_requests == 3
    (written,) = final_files(path.parent / "out")
    assert whole_gzip(written)

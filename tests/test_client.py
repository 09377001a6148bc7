"""DapClient over real sockets against scripted stubs: every edge case pinned exactly.

Also the wire models and the gzip verifier, which exist for the client. Emulator-backed
end-to-end tests live in ``test_client_emulator``-style tests below once it is importable.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import logging
import random
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import requests
from pydantic import SecretStr, ValidationError

from dapctl import __version__
from dapctl.api.auth import TokenProvider
from dapctl.api.client import DapClient
from dapctl.api.ratelimit import MARGIN_FRACTION, RateLimits
from dapctl.api.retry import TransientDownloadError
from dapctl.api.wire import GzipError, GzipVerifier, Job, QueryRequest, TableSchema, server_error
from dapctl.config import RateLimitSettings, RetrySettings
from dapctl.emulator import Emulator, EmulatorSettings
from dapctl.emulator import RateLimits as EmulatorRateLimits
from dapctl.errors import ApiError, JobFailedError, SnapshotRequiredError
from tests.clock import T0, FakeClock
from tests.stubs import SECRET, Reply, Seen, StubServer, login_reply, make_jwt, token_sequence
from tests.test_auth import LOGIN, closed_port_url, provider

RETRY = RetrySettings(attempts=4, initial_backoff=1.0, max_backoff=8.0)
TABLES = ("GET", "/dap/query/canvas/table")
DATA = ("POST", "/dap/query/canvas/table/accounts/data")
URLS = ("POST", "/dap/object/url")
TOKEN = make_jwt(T0 + 3600, sub="client-under-test")


def client(server: StubServer, fake: FakeClock, **overrides: Any) -> DapClient:
    if LOGIN not in server.scripts:
        server.on(*LOGIN, login_reply(TOKEN))
    options: dict[str, Any] = {
        "session": requests.Session(),
        "base_url": server.base_url,
        "tokens": provider(server, fake),
        "limits": RateLimits.from_settings(RateLimitSettings(), fake.clock, fake.sleep),
        "retry": RETRY,
        "clock": fake.clock,
        "sleep": fake.sleep,
    }
    options.update(overrides)
    return DapClient(**options)


def error(status: int, kind: str, uuid: str, message: str, **extra: Any) -> Reply:
    return Reply(status, json={"error": {"type": kind, "uuid": uuid, "message": message, **extra}})


def job(status: str, **fields: Any) -> Reply:
    return Reply(json={"id": "job-1", "status": status, **fields})


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


# ------------------------------------------------------------------------------ wire models


def test_query_bodies_match_the_documented_shapes():
    since = datetime(2026, 11, 1, tzinfo=UTC)
    until = datetime(2026, 11, 2, 1, 0, tzinfo=timezone_plus(2))

    assert QueryRequest(format="jsonl").to_json() == {"format": "jsonl", "mode": None}
    assert QueryRequest(format="csv", mode="expanded", since=since).to_json() == {
        "format": "csv",
        "mode": "expanded",
        "since": "2026-11-01T00:00:00Z",
    }
    body = QueryRequest(format="tsv", since=since, until=until).to_json()
    assert body["until"] == "2026-11-01T23:00:00Z"


def timezone_plus(hours: int) -> timezone:
    return timezone(timedelta(hours=hours))


def test_query_rejects_unknown_format():
    with pytest.raises(ValidationError):
        QueryRequest(format="xml")


def test_job_parsing_tolerates_new_fields_and_reads_utc_stamps():
    parsed = Job.model_validate(
        {
            "id": "j",
            "status": "complete",
            "expires_at": "2026-11-02T00:00:00Z",
            "at": "2026-11-01T00:00:00.123Z",
            "schema_version": 3,
            "objects": [{"id": "o1", "size": 9}],
            "brand_new_field": True,
        }
    )
    assert parsed.expires_at == datetime(2026, 11, 2, tzinfo=UTC)
    assert parsed.objects[0].id == "o1" and parsed.terminal


def test_table_schema_alias():
    schema = TableSchema.model_validate({"version": 2, "schema": {"type": "object"}})
    assert schema.schema_ == {"type": "object"}


def test_server_error_reads_json_and_quotes_html():
    body = b'{"error": {"type": "NotFoundError", "uuid": "u", "message": "gone", "id": "x"}}'
    err, text = server_error(body, "application/json")
    assert err is not None and (err.type, err.uuid, text) == ("NotFoundError", "u", "gone")

    err, text = server_error(b"<html>\n<b>504 Gateway   Time-out</b></html>", "text/html")
    assert err is None and "504 Gateway Time-out" in text and "text/html" in text


def test_gzip_verifier_accepts_multi_member_and_rejects_damage():
    member = gz(b"a" * 100_000)
    two = member + gz(b"b" * 10)
    verifier = GzipVerifier()
    for i in range(0, len(two), 7):
        verifier.feed(two[i : i + 7])
    assert verifier.finish() == 2

    for damaged in (member[:-5], b"", member + b"\0\0", member[:20] + b"x" + member[21:]):
        with pytest.raises(GzipError):
            verifier = GzipVerifier()
            verifier.feed(damaged)
            verifier.finish()


def test_gzip_verifier_memory_stays_flat_on_a_bomb():
    stream = gz(b"\0" * (64 << 20))  # 64 MiB of zeros in ~64 KiB
    tracemalloc.start()
    try:
        verifier = GzipVerifier()
        verifier.feed(stream)  # inflated in 1 MiB pieces and dropped
        assert verifier.finish() == 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


# ---------------------------------------------------------------------------- API calls


def test_list_tables_sends_bearer_token_and_user_agent(server, fake):
    server.on(*TABLES, Reply(json={"tables": ["accounts", "users"]}))

    assert client(server, fake).list_tables("canvas") == ["accounts", "users"]

    (seen,) = server.requests(*TABLES)
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert "x-instauth" not in {name.lower() for name in seen.headers}
    assert seen.headers["User-Agent"] == f"dapctl/{__version__}"


def test_schema(server, fake):
    path = "/dap/query/canvas/table/accounts/schema"
    server.on("GET", path, Reply(json={"version": 3, "schema": {"properties": {}}}))

    assert client(server, fake).get_schema("canvas", "accounts").version == 3


def test_429_waits_retry_after(server, fake):
    server.on(*TABLES, Reply(429, headers={"Retry-After": "7"}), Reply(json={"tables": []}))

    client(server, fake).list_tables("canvas")

    assert fake.sleeps == [7.0]
    assert server.count(*TABLES) == 2


def test_429_without_retry_after_backs_off(server, fake):
    server.on(*TABLES, Reply(429), Reply(json={"tables": []}))

    client(server, fake).list_tables("canvas")

    assert len(fake.sleeps) == 1 and 0.5 <= fake.sleeps[0] <= 1.0


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_html_pages_are_retried(server, fake, status):
    page = Reply(
        status, body=b"<html>gateway trouble</html>", headers={"Content-Type": "text/html"}
    )
    server.on(*TABLES, page, page, Reply(json={"tables": ["t"]}))

    assert client(server, fake).list_tables("canvas") == ["t"]
    assert server.count(*TABLES) == 3


def test_persistent_5xx_raises_api_error_with_excerpt(server, fake):
    server.on(*TABLES, Reply(503, body=b"<h1>Down for maintenance</h1>"))

    with pytest.raises(ApiError) as caught:
        client(server, fake).list_tables("canvas")

    assert caught.value.status == 503
    assert "Down for maintenance" in str(caught.value)
    assert server.count(*TABLES) == RETRY.attempts


def test_other_4xx_fail_at_once_with_type_message_uuid(server, fake):
    server.on(*TABLES, error(404, "NotFoundError", "u-404-x", "namespace canvas not found"))

    with pytest.raises(ApiError) as caught:
        client(server, fake).list_tables("canvas")

    exc = caught.value
    assert (exc.status, exc.error_type, exc.uuid) == (404, "NotFoundError", "u-404-x")
    assert "namespace canvas not found" in str(exc) and "u-404-x" in str(exc)
    assert server.count(*TABLES) == 1 and fake.sleeps == []


def test_snapshot_required_has_its_own_error(server, fake):
    since = datetime(2026, 1, 1, tzinfo=UTC)
    server.on(*DATA, error(400, "SnapshotRequired", "u-snap", "reloaded", since="2026-01-01"))

    with pytest.raises(SnapshotRequiredError) as caught:
        client(server, fake).start_query("canvas", "accounts", QueryRequest(since=since))

    assert caught.value.uuid == "u-snap" and server.count(*DATA) == 1


def test_401_drops_the_token_logs_in_again_and_retries_once(server, fake):
    server.on(*LOGIN, token_sequence("token-a", "token-b"))
    unauthorized = error(401, "AuthenticationError", "u-401", "expired")
    server.on(*TABLES, unauthorized, Reply(json={"tables": ["t"]}))

    assert client(server, fake).list_tables("canvas") == ["t"]

    first, second = server.requests(*TABLES)
    assert first.headers["Authorization"] == "Bearer token-a"
    assert second.headers["Authorization"] == "Bearer token-b"
    assert server.count(*LOGIN) == 2 and fake.sleeps == []


def test_a_refused_token_is_retried_only_once(server, fake):
    server.on(*TABLES, error(403, "AccountDisabled", "u-403", "account disabled"))

    with pytest.raises(ApiError) as caught:
        client(server, fake).list_tables("canvas")

    assert caught.value.error_type == "AccountDisabled"
    assert server.count(*TABLES) == 2 and server.count(*LOGIN) == 2


def test_connection_refused_becomes_api_error(server, fake):
    dap = client(server, fake, base_url=closed_port_url())
    dap._tokens.token()  # logged in against the stub; the API host is down

    with pytest.raises(ApiError, match="no answer") as caught:
        dap.list_tables("canvas")

    assert caught.value.status is None and len(fake.sleeps) == RETRY.attempts - 1


def test_read_timeout_is_retried(server, fake):
    server.on(*TABLES, Reply(json={"tables": []}, delay=1.0), Reply(json={"tables": ["t"]}))

    assert client(server, fake, timeout=(2.0, 0.2)).list_tables("canvas") == ["t"]


def test_job_creation_is_rate_limited_client_side(server, fake):
    server.on(*TABLES, Reply(json={"tables": []}))
    dap = client(server, fake)

    for _ in range(6):
        dap.list_tables("canvas")

    # Five go at once; the sixth waits for the first to leave the window (plus margin).
    assert fake.sleeps == [pytest.approx(60.0 + 60.0 * MARGIN_FRACTION)]


# ----------------------------------------------------------------------------------- jobs


def test_start_query_posts_the_query_body(server, fake):
    server.on(*DATA, job("waiting"))

    started = client(server, fake).start_query("canvas", "accounts", QueryRequest(format="csv"))

    assert started.status == "waiting"
    assert server.requests(*DATA)[0].json() == {"format": "csv", "mode": None}


def test_a_cached_job_about_to_expire_is_asked_for_again(server, fake):
    soon = datetime.fromtimestamp(T0 + 20, tz=UTC).isoformat()
    later = datetime.fromtimestamp(T0 + 86400, tz=UTC).isoformat()
    server.on(*DATA, job("complete", expires_at=soon), job("complete", expires_at=later))

    fresh = client(server, fake).start_query("canvas", "accounts", QueryRequest())

    assert fresh.expires_at == datetime.fromtimestamp(T0 + 86400, tz=UTC)
    assert server.count(*DATA) == 2
    assert fake.sleeps == [pytest.approx(25.0)]  # until it expired, plus grace


def test_wait_for_job_polls_adaptively(server, fake):
    path = ("GET", "/dap/job/job-1")
    server.on(*path, *[job("running")] * 8, job("complete", objects=[{"id": "o1"}]))
    seen: list[str] = []

    done = client(server, fake, poll_max=3.0).wait_for_job(
        "job-1", on_status=lambda j: seen.append(j.status)
    )

    assert done.objects[0].id == "o1"
    assert fake.sleeps == pytest.approx([0.5, 0.75, 1.125, 1.6875, 2.53125, 3.0, 3.0, 3.0])
    assert seen == ["running"] * 8 + ["complete"]


def test_failed_job_raises_with_server_error_and_uuid(server, fake):
    failure = {"type": "ProcessingError", "uuid": "u-job", "message": "query engine crashed"}
    server.on("GET", "/dap/job/job-1", job("failed", error=failure))

    with pytest.raises(JobFailedError) as caught:
        client(server, fake).wait_for_job(Job(id="job-1", status="running"))

    assert caught.value.uuid == "u-job"
    assert "query engine crashed" in str(caught.value) and "u-job" in str(caught.value)


def test_wait_for_job_times_out(server, fake):
    server.on("GET", "/dap/job/job-1", job("running"))

    with pytest.raises(ApiError, match="still running"):
        client(server, fake).wait_for_job("job-1", timeout=10.0)

    assert sum(fake.sleeps) == pytest.approx(10.0)


# ------------------------------------------------------------------------------ downloads


class Objects:
    """Pre-signed URLs pointing back at the stub, a new signature per URL request."""

    def __init__(self, server: StubServer) -> None:
        self.issued = 0
        self.base = server.base_url
        server.on(*URLS, self.reply)

    def reply(self, seen: Seen) -> Reply:
        self.issued += 1
        urls = {
            item["id"]: {"url": f"{self.base}/bucket/{item['id']}?X-Amz-Signature=sig{self.issued}"}
            for item in seen.json()
        }
        return Reply(json={"urls": urls})


def test_download_streams_and_verifies_multi_member_gzip(server, fake):
    Objects(server)
    payload = gz(b'{"key": 1}\n' * 5000) + gz(b'{"key": 2}\n')
    server.on("GET", "/bucket/part-0", Reply(body=payload))
    dest = io.BytesIO(b"HEADER")
    dest.seek(0, io.SEEK_END)

    written = client(server, fake).download_object("part-0", dest)

    assert written == len(payload) and dest.getvalue() == b"HEADER" + payload
    (fetch,) = server.requests("GET", "/bucket/part-0")
    assert "Authorization" not in fetch.headers  # the bearer token never leaves DAP


def test_cut_off_download_is_truncated_and_fetched_again(server, fake):
    objects = Objects(server)
    payload = gz(bytes(range(256)) * 4000)
    server.on(
        "GET", "/bucket/p", Reply(body=payload, cut_to=len(payload) // 2), Reply(body=payload)
    )
    dest = io.BytesIO(b"KEEP")
    dest.seek(4)

    written = client(server, fake).download_object("p", dest)

    assert written == len(payload) and dest.getvalue() == b"KEEP" + payload
    assert objects.issued == 2  # a fresh URL for the second attempt


def test_corrupt_gzip_is_fetched_again(server, fake):
    Objects(server)
    payload = gz(b"x" * 10_000)
    corrupt = payload[:15] + bytes(b ^ 0xFF for b in payload[15:30]) + payload[30:]
    server.on("GET", "/bucket/p", Reply(body=corrupt), Reply(body=payload))

    assert client(server, fake).download_object("p", io.BytesIO()) == len(payload)
    assert len(fake.sleeps) == 1


def test_expired_url_403_fetches_a_fresh_url(server, fake):
    objects = Objects(server)
    denied = Reply(403, body=b"<Error><Code>AccessDenied</Code>Request has expired</Error>")
    server.on("GET", "/bucket/p", denied, Reply(body=gz(b"ok")))

    client(server, fake).download_object("p", io.BytesIO())

    first, second = server.requests("GET", "/bucket/p")
    assert (first.query, second.query) == ("X-Amz-Signature=sig1", "X-Amz-Signature=sig2")
    assert objects.issued == 2


def test_download_that_never_completes_fails_without_leaking_the_url(server, fake, caplog):
    caplog.set_level(logging.INFO, logger="dapctl")
    Objects(server)
    payload = gz(random.Random(0).randbytes(50_000))
    server.on("GET", "/bucket/p", Reply(body=payload, cut_to=100))

    with pytest.raises((ApiError, TransientDownloadError)) as caught:
        client(server, fake).download_object("p", io.BytesIO())

    assert server.count("GET", "/bucket/p") == RETRY.attempts
    assert "X-Amz-Signature" not in str(caught.value) + caplog.text


def test_download_memory_stays_flat_whatever_the_size(server, fake, tmp_path):
    Objects(server)
    payload = gz(random.Random(1).randbytes(24 << 20))  # incompressible: 24 MiB on the wire
    server.on("GET", "/bucket/big", Reply(body=payload))
    dap = client(server, fake)
    dap.object_urls(["warm-up"])  # log in before measuring
    with open(tmp_path / "part.gz", "wb") as dest:
        tracemalloc.start()
        try:
            written = dap.download_object("big", dest)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    assert written == len(payload) == (tmp_path / "part.gz").stat().st_size
    assert peak < 8 << 20  # a few 1 MiB chunks in flight, never the part


def test_parquet_parts_skip_the_gzip_check(server, fake):
    Objects(server)
    server.on("GET", "/bucket/p", Reply(body=b"PAR1....PAR1"))

    assert client(server, fake).download_object("p", io.BytesIO(), gzip=False) == 12


def test_missing_object_fails_at_once(server, fake):
    Objects(server)
    server.on("GET", "/bucket/p", Reply(404, body=b"<Error>NoSuchKey</Error>"))

    with pytest.raises(ApiError) as caught:
        client(server, fake).download_object("p", io.BytesIO())

    assert caught.value.status == 404 and server.count("GET", "/bucket/p") == 1


def test_failed_url_request_is_not_retried_twice_over(server, fake):
    server.on(*URLS, Reply(503, body=b"busy"))

    with pytest.raises(ApiError):
        client(server, fake).download_object("p", io.BytesIO())

    assert server.count(*URLS) == RETRY.attempts


def test_object_urls_must_cover_every_id(server, fake):
    server.on(*URLS, Reply(json={"urls": {"a": {"url": "http://x/a"}}}))

    with pytest.raises(ApiError, match="no URL for object"):
        client(server, fake).object_urls(["a", "b"])


# ------------------------------------------------------------------ sharing and secrets


def test_threads_share_one_client_and_one_login(server, fake):
    server.on(*LOGIN, dataclasses.replace(login_reply(TOKEN), delay=0.2))
    server.on("GET", "/dap/job/job-1", job("complete"))
    dap = client(server, fake)
    barrier = threading.Barrier(8)
    done: list[Job] = []

    def work() -> None:
        barrier.wait()
        done.append(dap.get_job("job-1"))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(done) == 8 and server.count(*LOGIN) == 1


def test_token_never_appears_in_errors_or_logs(server, fake, caplog):
    caplog.set_level(logging.DEBUG)
    server.on(*TABLES, error(401, "AuthenticationError", "u", "bad token"))
    dap = client(server, fake)

    with pytest.raises(ApiError) as caught:
        dap.list_tables("canvas")

    for text in (str(caught.value), repr(caught.value), repr(dap), caplog.text):
        assert TOKEN not in text and SECRET not in text


# ------------------------------------------------------------------ against the emulator


@pytest.fixture
def start_emulator(fake: FakeClock) -> Iterator[Callable[..., Any]]:
    """Starts emulators on the test's fake clock, so client and server agree on time."""
    started: list[Any] = []

    def start(clock: Callable[[], float] | None = None, **overrides: Any) -> Any:
        settings = EmulatorSettings.for_tests(**overrides)
        emu = Emulator(settings, clock=clock or fake.clock).start()
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()


def emulator_client(emu: Any, fake: FakeClock, window: float = 60.0, **overrides: Any) -> DapClient:
    client_id, secret = emu.credentials
    session = requests.Session()
    tokens = TokenProvider(
        session=session,
        base_url=emu.base_url,
        client_id=client_id,
        client_secret=SecretStr(secret),
        profile="emu",
        retry=RETRY,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    limits = RateLimits.from_settings(RateLimitSettings(), fake.clock, fake.sleep, window=window)
    options: dict[str, Any] = {"tokens": tokens, "limits": limits}
    options.update(overrides)
    return DapClient(
        session=session,
        base_url=emu.base_url,
        retry=RETRY,
        clock=fake.clock,
        sleep=fake.sleep,
        **options,
    )


def fetch_records(dap: DapClient, job: Job) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for ref in job.objects:
        buffer = io.BytesIO()
        written = dap.download_object(ref.id, buffer)
        assert written == len(buffer.getvalue())
        text = gzip.decompress(buffer.getvalue()).decode()
        records += [json.loads(line) for line in text.splitlines() if line]
    return records


def by_key(records: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(record, sort_keys=True) for record in records)


def test_emulator_snapshot_end_to_end(start_emulator, fake):
    emu = start_emulator(job_delay=10.0, part_size=15)
    dap = emulator_client(emu, fake)

    assert "accounts" in dap.list_tables("canvas")
    assert dap.get_schema("canvas", "accounts").version >= 1
    started = dap.start_query("canvas", "accounts", QueryRequest(format="jsonl"))
    done = dap.wait_for_job(started)

    assert done.status == "complete" and done.at is not None and len(done.objects) > 1
    assert by_key(fetch_records(dap, done)) == by_key(emu.expected_snapshot("canvas", "accounts"))
    assert emu.stats.logins == 1 and emu.stats.rate_limited == 0
    assert fake.sleeps[:3] == pytest.approx([0.5, 0.75, 1.125])  # polled until ready


def test_emulator_incremental_chains_from_the_snapshot(start_emulator, fake):
    emu = start_emulator()
    dap = emulator_client(emu, fake)
    snapshot = dap.wait_for_job(dap.start_query("canvas", "accounts", QueryRequest()))
    emu.advance(60)
    emu.change("canvas", "accounts", inserts=2, updates=3, deletes=1)
    emu.advance(60)

    query = QueryRequest(since=snapshot.at)
    changes = dap.wait_for_job(dap.start_query("canvas", "accounts", query))

    assert changes.since == snapshot.at and changes.until is not None
    expected = emu.expected_changes("canvas", "accounts", snapshot.at, changes.until)
    assert by_key(fetch_records(dap, changes)) == by_key(expected) and len(expected) == 6


def test_emulator_token_refreshed_before_expiry(start_emulator, fake):
    emu = start_emulator(token_lifetime=900.0)
    dap = emulator_client(emu, fake)
    dap.list_tables("canvas")

    fake.now += 550  # 350 s left: outside the 300 s margin
    dap.get_schema("canvas", "accounts")
    assert emu.stats.logins == 1
    fake.now += 100  # 250 s left: renewed before the server would refuse it
    dap.get_schema("canvas", "accounts")

    assert emu.stats.logins == 2 and emu.stats.responses.get(401, 0) == 0


def test_emulator_expired_token_is_replaced_on_401(start_emulator, fake):
    # The client's clock runs an hour behind the server's: it believes an expired token good.
    emu = start_emulator(clock=lambda: fake.clock() + 3600.0, token_lifetime=1200.0)
    dap = emulator_client(emu, fake)
    dap.list_tables("canvas")
    fake.now += 1300

    dap.get_schema("canvas", "accounts")

    assert emu.stats.logins == 2 and emu.stats.responses.get(401) == 1


def test_emulator_faults_are_ridden_out(start_emulator, fake):
    emu = start_emulator(part_size=10)
    dap = emulator_client(emu, fake)
    emu.faults.fail_logins(2, status=403)
    emu.faults.fail_every(3, status=429, retry_after=2)
    emu.faults.cut_downloads(2)

    job = dap.wait_for_job(dap.start_query("canvas", "accounts", QueryRequest()))
    records = fetch_records(dap, job)

    assert by_key(records) == by_key(emu.expected_snapshot("canvas", "accounts"))
    assert emu.stats.login_failures == 2 and emu.stats.logins == 1
    assert emu.stats.downloads_cut >= 1 and emu.stats.injected_errors >= 1
    assert 2.0 in fake.sleeps  # Retry-After honoured


def test_emulator_html_gateway_errors_are_retried(start_emulator, fake):
    emu = start_emulator()
    emu.faults.fail_every(2, status=504, html=True)
    dap = emulator_client(emu, fake)

    for _ in range(4):
        dap.get_schema("canvas", "accounts")

    assert emu.stats.injected_errors >= 2


def test_emulator_failed_job_carries_the_uuid(start_emulator, fake):
    emu = start_emulator()
    emu.faults.fail_table("canvas", "accounts")
    dap = emulator_client(emu, fake)

    with pytest.raises(JobFailedError) as caught:
        dap.wait_for_job(dap.start_query("canvas", "accounts", QueryRequest()))

    assert caught.value.uuid and caught.value.uuid in str(caught.value)


def test_emulator_disabled_account_fails_after_one_relogin(start_emulator, fake):
    emu = start_emulator()
    emu.faults.set_account_state(emu.credentials[0], "AccountDisabled")
    dap = emulator_client(emu, fake)

    with pytest.raises(ApiError) as caught:
        dap.list_tables("canvas")

    assert (caught.value.status, caught.value.error_type) == (403, "AccountDisabled")
    assert emu.stats.logins == 2


def test_emulator_rate_limits_are_never_hit(start_emulator, fake):
    emu = start_emulator(rate_limits=True)
    dap = emulator_client(emu, fake)

    for _ in range(12):
        dap.list_tables("canvas")  # job-class budget: 5 a minute

    assert emu.stats.rate_limited == 0
    assert len(fake.sleeps) == 2
    assert sum(fake.sleeps) == pytest.approx(2 * (60.0 + 60.0 * MARGIN_FRACTION))


def test_emulator_rate_limits_with_many_threads(start_emulator, fake):
    # With a fake clock, one thread's sleep moves time for all, so a send reserved earlier
    # can reach the server "late" and meet a 429 a real run would not: assert only that
    # the shared client gets every call through.
    emu = start_emulator(rate_limits=True)
    dap = emulator_client(emu, fake)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                dap.list_tables("canvas")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == [] and emu.stats.tables_listed == 12


def test_emulator_slow_login_does_not_spoil_a_reserved_slot(start_emulator, fake):
    emu = start_emulator(rate_limits=EmulatorRateLimits(jobs=1))
    emu.faults.fail_logins(3, status=403)  # several seconds of login backoff
    one_a_minute = RateLimits.from_settings(
        RateLimitSettings(jobs_per_minute=1), fake.clock, fake.sleep
    )
    dap = emulator_client(emu, fake, limits=one_a_minute)

    dap.list_tables("canvas")
    dap.list_tables("canvas")

    # The slot was taken after the login, so the second call is a full window after the
    # first one reached the server.
    assert emu.stats.rate_limited == 0 and emu.stats.tables_listed == 2

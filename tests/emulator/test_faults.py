"""Fault knobs, job timing, caching and expiry, URL signatures and server-side rate limits."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

import pytest
import requests

from dapctl.emulator import Emulator, Faults, RateLimits
from tests.clock import FakeClock
from tests.emulator.helpers import Client, http_get


def test_next_logins_fail_then_recover(emulator: Emulator) -> None:
    emulator.faults.fail_logins(2, status=400)
    client_statuses = [Client.login(_bare(emulator)).status_code for _ in range(3)]
    assert client_statuses == [400, 400, 200]
    assert emulator.stats.login_failures == 2


def _bare(emu: Emulator):
    # A Client without its automatic login, to observe each login attempt.
    client = Client.__new__(Client)
    client.base, client.session = emu.base_url, requests.Session()
    client.auth = emu.credentials
    return client


def test_every_nth_call_fails_with_html_5xx(emulator: Emulator) -> None:
    client = Client(emulator)
    emulator.faults.fail_every(3, status=502, html=True)
    statuses = [client.get("/dap/query/canvas/table") for _ in range(6)]
    assert [r.status_code for r in statuses] == [200, 200, 502, 200, 200, 502]
    assert statuses[2].headers["Content-Type"].startswith("text/html")
    assert "<html>" in statuses[2].text


def test_injected_429_with_and_without_retry_after(emulator: Emulator) -> None:
    client = Client(emulator)
    emulator.faults.fail_every(1, status=429, retry_after=2)
    response = client.get("/dap/query/canvas/table")
    assert (response.status_code, response.headers["Retry-After"]) == (429, "2")
    assert response.json()["error"]["type"] == "TooManyRequests"
    emulator.faults.fail_every(1, status=429, retry_after=None)
    assert "Retry-After" not in client.get("/dap/query/canvas/table").headers


def test_every_nth_download_is_cut_off_midway(emulator: Emulator) -> None:
    client = Client(emulator)
    url = client.urls(client.query("users"))[0]
    emulator.faults.cut_downloads(every=2)
    assert http_get(url).status_code == 200
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    conn.request("GET", f"{parts.path}?{parts.query}")
    response = conn.getresponse()
    length = int(response.getheader("Content-Length"))
    with pytest.raises(http.client.IncompleteRead) as excinfo:
        response.read()
    assert len(excinfo.value.partial) == length // 2
    assert emulator.stats.downloads_cut == 1


def test_failing_table(emulator: Emulator) -> None:
    client = Client(emulator)
    emulator.faults.fail_table("canvas", "courses")
    job = client.query("courses")
    assert job["status"] == "failed"
    assert set(job) == {"id", "status", "expires_at", "error"}
    assert job["error"]["type"] == "ProcessingError"
    emulator.faults.fail_table("canvas", "courses", failing=False)
    assert client.query("courses")["status"] == "complete"  # a failed job is never reused


def test_account_state(emulator: Emulator) -> None:
    client = Client(emulator)
    emulator.faults.set_account_state(emulator.settings.client_id, "AccountDisabled")
    response = client.get("/dap/query/canvas/table")
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "AccountDisabled"
    emulator.faults.set_account_state(emulator.settings.client_id, None)
    assert client.get("/dap/query/canvas/table").status_code == 200


def test_job_moves_waiting_running_complete_by_clock(make_emulator) -> None:
    clock = FakeClock()
    emu = make_emulator(clock=clock, job_delay=10.0)
    client = Client(emu)
    job = client.query("users")
    assert set(job) == {"id", "status", "expires_at"} and job["status"] == "waiting"
    assert client.post("/dap/object/url", [{"id": f"{job['id']}/x"}]).status_code == 404
    clock.tick(6)
    assert client.get(f"/dap/job/{job['id']}").json()["status"] == "running"
    clock.tick(4)
    assert client.get(f"/dap/job/{job['id']}").json()["status"] == "complete"
    emu.faults.update(job_delay=0.0)
    assert client.query("users", format="csv")["status"] == "complete"


def test_identical_query_reuses_job_unless_data_changed(emulator: Emulator) -> None:
    client = Client(emulator)
    first = client.query("users")
    assert client.query("users")["id"] == first["id"]
    assert client.query("users", format="csv")["id"] != first["id"]
    emulator.change("canvas", "users", updates=1)
    assert client.query("users")["id"] != first["id"]
    emulator.faults.update(cache_jobs=False)
    assert client.query("users")["id"] != client.query("users")["id"]
    assert (emulator.stats.jobs_created, emulator.stats.jobs_reused) == (5, 1)


def test_a_cached_job_is_not_reused_once_the_data_clock_moved(emulator: Emulator) -> None:
    # A snapshot asked for later is at a later `at`, changes or not: the cached one is stale.
    client = Client(emulator)
    first = client.query("users")
    emulator.advance(60)
    again = client.query("users")
    assert again["id"] != first["id"] and again["at"] > first["at"]
    assert client.query("users")["id"] == again["id"]


def test_jobs_and_objects_expire(make_emulator) -> None:
    clock = FakeClock()
    emu = make_emulator(clock=clock, job_lifetime=100.0)
    client = Client(emu)
    job = client.query("users")
    url = client.urls(job)[0]
    clock.tick(101)
    client.token = client.login().json()["access_token"]
    assert client.get(f"/dap/job/{job['id']}").json()["error"]["kind"] == "job"
    assert client.post("/dap/object/url", job["objects"]).json()["error"]["kind"] == "object"
    assert http_get(url).status_code == 404  # URL still signed-valid, object gone


def test_urls_expire_and_are_signed(make_emulator) -> None:
    clock = FakeClock()
    emu = make_emulator(clock=clock, faults=Faults(url_lifetime=5.0))
    client = Client(emu)
    url = client.urls(client.query("users"))[0]
    assert http_get(url).status_code == 200
    assert http_get(url.replace("X-Signature=", "X-Signature=0")).status_code == 403
    assert http_get(url.split("?")[0]).status_code == 403
    clock.tick(5)
    response = http_get(url)
    assert response.status_code == 403 and "expired" in response.text


def test_rate_limits_per_client_and_class(make_emulator) -> None:
    clock = FakeClock()
    limits = RateLimits(jobs=2, job_status=3, urls=1, window=10.0, tables=2)
    emu = make_emulator(clock=clock, rate_limits=limits, clients={"other": "pw"})
    client = Client(emu)
    assert [client.get("/dap/query/canvas/table").status_code for _ in range(2)] == [200, 200]
    clock.tick(4)
    refused = client.get("/dap/query/canvas/table")
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "6"
    assert refused.json()["error"]["type"] == "TooManyRequests"
    # The five limits are independent: listing tables spent none of job creation's budget.
    job = client.post("/dap/query/canvas/table/users/data", {"format": "jsonl"})
    assert job.status_code == 200
    assert client.get("/dap/query/canvas/table/users/schema").status_code == 200  # other class
    assert Client(emu, "other", "pw").get("/dap/query/canvas/table").status_code == 200
    clock.tick(6)
    assert client.get("/dap/query/canvas/table").status_code == 200
    assert emu.stats.rate_limited == 1


def test_default_rate_limits_are_the_services(make_emulator) -> None:
    emu = make_emulator(rate_limits=True)
    client = Client(emu)
    statuses = [client.get("/dap/query/canvas/table").status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]


def test_knob_validation() -> None:
    faults = Faults()
    with pytest.raises(ValueError, match="unknown fault knob"):
        faults.update(nope=1)
    with pytest.raises(ValueError, match="must be one of"):
        faults.fail_logins(1, status=500)
    with pytest.raises(ValueError, match="account state"):
        faults.set_account_state("x", "Sleepy")
    assert Faults(error_every=3).as_dict()["error_every"] == 3

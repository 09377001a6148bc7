"""The ``/_emulator/`` control endpoints, for a dapctl running in another process."""

from __future__ import annotations

from dapctl.emulator import Emulator
from tests.emulator.helpers import Client, http_get, http_post


def test_faults_over_http(emulator: Emulator) -> None:
    url = f"{emulator.base_url}/_emulator/faults"
    body = http_post(url, json={"error_every": 4, "failing_tables": ["canvas.users"]}).json()
    assert body["error_every"] == 4 and body["failing_tables"] == ["canvas.users"]
    assert emulator.faults.error_every == 4
    assert http_get(url).json() == body
    bad = http_post(url, json={"error_status": 418})
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "ValidationError"


def test_advance_change_expected_stats_over_http(emulator: Emulator) -> None:
    base = f"{emulator.base_url}/_emulator"
    assert http_get(f"{base}/clock").json() == {"now": "2026-11-02T12:00:00Z"}
    assert http_post(f"{base}/advance", json={"seconds": 60}).json() == {
        "now": "2026-11-02T12:01:00Z"
    }
    change = {"namespace": "canvas", "table": "users", "inserts": 1, "updates": [2], "deletes": 1}
    result = http_post(f"{base}/change", json=change).json()
    assert result["ts"] == "2026-11-02T12:01:00Z" and result["updated"] == [2]
    params = {"namespace": "canvas", "table": "users", "since": "2026-11-02T12:00:00Z"}
    records = http_get(f"{base}/expected", params=params).json()["records"]
    assert len(records) == 3
    del params["since"]
    snapshot = http_get(f"{base}/expected", params=params).json()["records"]
    assert snapshot == emulator.expected_snapshot("canvas", "users")
    Client(emulator).query("users")
    stats = http_get(f"{base}/stats").json()
    assert stats["jobs_created"] == 1 and stats["logins"] == 1
    assert http_post(f"{base}/stats/reset").json()["jobs_created"] == 0
    assert http_get(f"{base}/health").json()["ok"] is True
    assert http_get(f"{base}/nope").status_code == 404
    assert http_post(f"{base}/change", json={"namespace": "canvas"}).status_code == 400

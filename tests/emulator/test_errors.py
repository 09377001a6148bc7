"""Error answers: statuses and the documented ``{"error": {...}}`` shape with per-type fields."""

from __future__ import annotations

import base64
import sys

import pytest
import requests

from dapctl.emulator import DEMO_CLIENT_ID, Emulator
from tests.clock import FakeClock
from tests.emulator.helpers import Client, http_get, http_post


def error(response: requests.Response, status: int, type_: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["type"] == type_
    assert body["uuid"] and body["message"]
    return body


def login(emu: Emulator, headers: dict, data: dict | None = None) -> requests.Response:
    data = {"grant_type": "client_credentials"} if data is None else data
    return http_post(f"{emu.base_url}/ids/auth/login", headers=headers, data=data)


def basic(text: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(text.encode()).decode()}


def test_login_errors(emulator: Emulator) -> None:
    good = f"{DEMO_CLIENT_ID}:{emulator.settings.client_secret}"
    assert login(emulator, {}).status_code == 403
    assert login(emulator, basic(f"{DEMO_CLIENT_ID}:wrong")).status_code == 403
    assert login(emulator, {"Authorization": "Basic !!!"}).status_code == 400
    assert login(emulator, basic("no-colon")).status_code == 400
    assert login(emulator, basic(good), {"grant_type": "password"}).status_code == 400
    assert login(emulator, basic(good)).status_code == 200


def test_several_clients(make_emulator) -> None:
    emu = make_emulator(clients={"us-west-2#second": "s2"})
    assert Client(emu, "us-west-2#second", "s2").get("/dap/query/canvas/table").status_code == 200
    assert Client(emu).get("/dap/query/canvas/table").status_code == 200


def test_token_checks(emulator: Emulator) -> None:
    client = Client(emulator)
    url = f"{emulator.base_url}/dap/query/canvas/table"
    error(http_get(url), 401, "AuthenticationError")
    error(http_get(url, headers={"Authorization": "Bearer x.y.z"}), 401, "AuthenticationError")
    tampered = client.token[:-2] + ("AA" if not client.token.endswith("AA") else "BB")
    error(
        http_get(url, headers={"Authorization": f"Bearer {tampered}"}),
        401,
        "AuthenticationError",
    )
    assert http_get(url, headers={"x-instauth": client.token}).status_code == 200
    both = {"Authorization": "Bearer bad", "x-instauth": client.token}
    error(http_get(url, headers=both), 401, "AuthenticationError")  # Authorization wins


@pytest.mark.parametrize("status", [401, 403])
def test_expired_token(make_emulator, status: int) -> None:
    clock = FakeClock()
    emu = make_emulator(clock=clock, token_lifetime=10.0, expired_token_status=status)
    client = Client(emu)
    assert client.get("/dap/query/canvas/table").status_code == 200
    clock.tick(11)
    error(client.get("/dap/query/canvas/table"), status, "AuthenticationError")


def test_not_found_carries_id_and_kind(emulator: Emulator) -> None:
    client = Client(emulator)
    body = error(client.get("/dap/query/nope/table"), 404, "NotFoundError")
    assert (body["id"], body["kind"]) == ("nope", "namespace")
    body = error(client.get("/dap/query/canvas/table/nope/schema"), 404, "NotFoundError")
    assert (body["id"], body["kind"]) == ("canvas.nope", "table")
    body = error(client.get("/dap/job/123"), 404, "NotFoundError")
    assert (body["id"], body["kind"]) == ("123", "job")
    body = error(client.post("/dap/object/url", [{"id": "x/part-0"}]), 404, "NotFoundError")
    assert (body["id"], body["kind"]) == ("x/part-0", "object")


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ('{"format": "xml"}', '"format"'),
        ('{"format": "jsonl", "colour": 1}', '"colour"'),
        ('{"format": "jsonl", "mode": "wide"}', '"mode"'),
        ('{"format": "jsonl", "since": "yesterday"}', '"since"'),
        ('{"format": "jsonl", "since": "2026-11-01T00:00:00"}', '"since"'),
        ('{"format": "jsonl",\n "until": "2026-11-01T00:00:00Z"}', '"until"'),
    ],
)
def test_validation_errors_point_into_the_body(emulator: Emulator, body: str, needle: str) -> None:
    client = Client(emulator)
    response = client.session.post(
        f"{emulator.base_url}/dap/query/canvas/table/accounts/data",
        data=body,
        headers={"Authorization": f"Bearer {client.token}", "Content-Type": "application/json"},
    )
    found = error(response, 400, "ValidationError")
    index = body.index(needle)
    assert found["location"]["character"] == index + 1
    assert found["location"]["line"] == body.count("\n", 0, index) + 1


def test_parquet_error_says_how_to_get_it(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pyarrow is in the test extras; a None in sys.modules makes its import fail as if not.
    for module in ("pyarrow", "pyarrow.parquet"):
        monkeypatch.setitem(sys.modules, module, None)
    body = error(
        Client(emulator).post("/dap/query/canvas/table/accounts/data", {"format": "parquet"}),
        400,
        "ValidationError",
    )
    assert "pyarrow" in body["message"] and "dapctl[parquet]" in body["message"]
    assert body["location"]  # a ValidationError pointing at the "format" field


def test_malformed_json_location(emulator: Emulator) -> None:
    client = Client(emulator)
    response = client.session.post(
        f"{emulator.base_url}/dap/query/canvas/table/accounts/data",
        data='{"format": }',
        headers={"Authorization": f"Bearer {client.token}"},
    )
    assert error(response, 400, "ValidationError")["location"]["character"] == 12


def test_snapshot_required_outside_retention(make_emulator) -> None:
    emu = make_emulator(retention=7 * 86400)
    client = Client(emu)
    ok = client.post(
        "/dap/query/canvas/table/users/data", {"format": "jsonl", "since": "2026-10-27T00:00:00Z"}
    )
    assert ok.status_code == 200
    old = client.post(
        "/dap/query/canvas/table/users/data", {"format": "jsonl", "since": "2026-10-20T00:00:00Z"}
    )
    body = error(old, 400, "SnapshotRequired")
    assert (body["since"], body["until"]) == ("2026-10-26T12:00:00Z", "2026-11-02T12:00:00Z")
    future = {"format": "jsonl", "since": "2026-11-01T00:00:00Z", "until": "2027-01-01T00:00:00Z"}
    error(client.post("/dap/query/canvas/table/users/data", future), 400, "OutOfRange")


def test_unknown_path_and_method(emulator: Emulator) -> None:
    client = Client(emulator)
    assert client.get("/dap/nothing").status_code == 404
    assert client.get("/dap/object/url").status_code == 405

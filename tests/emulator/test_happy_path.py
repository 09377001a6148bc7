"""The happy path over real sockets: login, list, schema, jobs, URLs, downloads, expected_*."""

from __future__ import annotations

import gzip
import socket

import pytest

from dapctl.emulator import Emulator
from dapctl.emulator.server import Handler
from tests.emulator.helpers import Client, by_key, http_get, parse_ts

FORMATS = ["jsonl", "csv", "tsv"]


def test_login_returns_a_bearer_jwt(emulator: Emulator) -> None:
    body = Client(emulator).login().json()
    assert set(body) == {"access_token", "expires_in", "scope", "token_type"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["access_token"].count(".") == 2


def test_answers_are_sent_without_nagle_delay(emulator: Emulator, monkeypatch) -> None:
    # Headers and body are two writes: with Nagle's algorithm on, the body of every answer
    # after the first on a kept-alive connection waited ~40 ms for the client's delayed ACK.
    nodelay: list[int] = []
    setup = Handler.setup

    def recording(self: Handler) -> None:
        setup(self)
        nodelay.append(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    monkeypatch.setattr(Handler, "setup", recording)
    client = Client(emulator)
    client.login()
    client.get("/dap/query/canvas/table")
    assert nodelay and all(nodelay)


def test_lists_tables_of_both_namespaces(emulator: Emulator) -> None:
    client = Client(emulator)
    canvas = client.get("/dap/query/canvas/table").json()["tables"]
    assert {"accounts", "users", "courses", "submissions"} <= set(canvas)
    assert client.get("/dap/query/canvas_logs/table").json() == {"tables": ["web_logs"]}


def test_schema_has_key_value_meta(emulator: Emulator) -> None:
    body = Client(emulator).get("/dap/query/canvas/table/courses/schema").json()
    assert body["version"] == 1
    props = body["schema"]["properties"]
    assert set(props) == {"key", "value", "meta"}
    assert "settings" in props["value"]["properties"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_snapshot_serves_expected_records(make_emulator, fmt: str) -> None:
    emu = make_emulator(part_size=15)
    client = Client(emu)
    for namespace, table in [
        ("canvas", "accounts"),
        ("canvas", "courses"),
        ("canvas_logs", "web_logs"),
    ]:
        job = client.query(table, namespace, format=fmt)
        assert job["status"] == "complete"
        assert set(job) == {"id", "status", "expires_at", "objects", "schema_version", "at"}
        assert len(job["objects"]) == 3  # 40 rows in parts of 15
        schema = client.schema(table, namespace)
        records = client.download(job, fmt, schema)
        assert by_key(records) == emu.expected_snapshot(namespace, table)


@pytest.mark.parametrize("fmt", FORMATS)
def test_incremental_chain_serves_each_change_once(emulator: Emulator, fmt: str) -> None:
    client = Client(emulator)
    schema = client.schema("accounts")
    snapshot = client.query("accounts", format=fmt)
    emulator.advance(3600)
    change = emulator.change("canvas", "accounts", inserts=3, updates=2, deletes=1)
    first = client.query("accounts", format=fmt, since=snapshot["at"])
    assert first["since"] == snapshot["at"]
    records = by_key(client.download(first, fmt, schema))
    assert len(records) == 6
    assert [r["key"]["id"] for r in records if r["meta"]["action"] == "D"] == list(change.deleted)
    assert records == emulator.expected_changes("canvas", "accounts", parse_ts(snapshot["at"]))
    emulator.advance(60)
    emulator.change("canvas", "accounts", updates=list(change.updated))
    second = client.query("accounts", format=fmt, since=first["until"])
    again = by_key(client.download(second, fmt, schema))
    assert [r["key"]["id"] for r in again] == list(change.updated)


def test_empty_incremental_has_one_empty_part(emulator: Emulator) -> None:
    client = Client(emulator)
    snapshot = client.query("users")
    job = client.query("users", since=snapshot["at"])
    assert len(job["objects"]) == 1
    assert client.download(job) == []


def test_download_needs_no_token_and_is_gzip(emulator: Emulator) -> None:
    client = Client(emulator)
    url = client.urls(client.query("enrollments", format="csv"))[0]
    response = http_get(url)
    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) == len(response.content)
    assert gzip.decompress(response.content).startswith(b"meta.ts,meta.action,key.id,")


def test_job_can_be_polled(emulator: Emulator) -> None:
    client = Client(emulator)
    job = client.query("users")
    polled = client.get(f"/dap/job/{job['id']}").json()
    assert polled == job
    assert emulator.stats.job_polls == 1


def test_the_request_log_never_shows_a_presigned_signature(make_emulator, write_config, caplog):
    import logging

    from tests.apply_helpers import apply, config_text

    caplog.set_level(logging.DEBUG, logger="dapctl.emulator")
    emu = make_emulator()
    results = apply(write_config(config_text(emu, tables='["accounts"]')), emu)
    assert results[0].status == "ok"
    downloads = [r.getMessage() for r in caplog.records if "/_objects/" in r.getMessage()]
    assert downloads and all("?…" in line for line in downloads)
    assert "X-Signature" not in caplog.text

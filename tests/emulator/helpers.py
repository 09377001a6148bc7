"""Test helpers: a tiny authenticated client and decoders for served files.

The decoders turn downloaded CSV/TSV/JSONL parts back into JSON Lines shaped records (null
properties omitted) using the header row and the served JSON schema, so a test can compare
them record by record with `Emulator.expected_snapshot` / `expected_changes`. The CSV parser
is hand-written because the stdlib's cannot tell an unquoted NULL from a quoted "NULL".
"""

from __future__ import annotations

import gzip
import json
import time
from datetime import datetime
from typing import Any

import requests

from dapctl.emulator import Emulator

TIMEOUT = 30
_TSV_UNESCAPE = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r", "b": "\b", "f": "\f", "v": "\v"}


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def http_get(url: str, **kw: Any) -> requests.Response:
    return requests.get(url, timeout=TIMEOUT, **kw)


def http_post(url: str, **kw: Any) -> requests.Response:
    return requests.post(url, timeout=TIMEOUT, **kw)


class Client:
    """Logs in once and calls the emulator's API with the bearer token."""

    def __init__(self, emu: Emulator, client_id: str | None = None, secret: str | None = None):
        self.emu = emu
        self.base = emu.base_url
        self.session = requests.Session()
        self.auth = (client_id or emu.settings.client_id, secret or emu.settings.client_secret)
        self.token = self.login().json()["access_token"]

    def login(self) -> requests.Response:
        return self.session.post(
            f"{self.base}/ids/auth/login", auth=self.auth, data={"grant_type": "client_credentials"}
        )

    def get(self, path: str, **kw: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        return self.session.get(f"{self.base}{path}", headers=headers, **kw)

    def post(self, path: str, body: Any, **kw: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        return self.session.post(f"{self.base}{path}", json=body, headers=headers, **kw)

    def query_raw(self, table: str, namespace: str = "canvas", **body: Any) -> requests.Response:
        body.setdefault("format", "jsonl")
        return self.post(f"/dap/query/{namespace}/table/{table}/data", body)

    def query(self, table: str, namespace: str = "canvas", **body: Any) -> dict[str, Any]:
        response = self.query_raw(table, namespace, **body)
        assert response.status_code == 200, response.text
        return response.json()

    def finished(self, job: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        """The job once it is no longer waiting or running (its parts are encoded in the
        background: on a busy machine a small job may still be running when it is created)."""
        deadline = time.monotonic() + timeout
        while job["status"] in ("waiting", "running") and time.monotonic() < deadline:
            time.sleep(0.02)
            job = self.get(f"/dap/job/{job['id']}").json()
        return job

    def urls(self, job: dict[str, Any]) -> list[str]:
        job = self.finished(job)
        response = self.post("/dap/object/url", job["objects"])
        assert response.status_code == 200, response.text
        urls = response.json()["urls"]
        return [urls[obj["id"]]["url"] for obj in job["objects"]]

    def schema(self, table: str, namespace: str = "canvas") -> dict[str, Any]:
        return self.get(f"/dap/query/{namespace}/table/{table}/schema").json()["schema"]

    def download(
        self, job: dict[str, Any], fmt: str = "jsonl", schema: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Every record of a complete job, decoded from its parts (CSV/TSV need the schema)."""
        records: list[dict[str, Any]] = []
        for url in self.urls(job):
            response = http_get(url)
            assert response.status_code == 200, response.text
            text = gzip.decompress(response.content).decode()
            records.extend(decode(text, fmt, schema or {}))
        return records


def decode(text: str, fmt: str, schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The records of one decompressed part."""
    if fmt == "jsonl":
        return [json.loads(line) for line in text.splitlines() if line]
    rows = parse_csv(text) if fmt == "csv" else parse_tsv(text)
    header = [cell for cell, _ in rows[0]]
    records = [_record(header, row, schema) for row in rows[1:]]
    if "meta.action" not in header:  # a snapshot's TSV: every row is live
        for record in records:
            record["meta"]["action"] = "U"
    return records


def parse_csv(text: str) -> list[list[tuple[str | None, bool]]]:
    """RFC 4180 rows of (text, quoted) cells; an unquoted NULL becomes None."""
    rows: list[list[tuple[str | None, bool]]] = []
    row: list[tuple[str | None, bool]] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] == '"':
            parts, j = [], i + 1
            while True:
                k = text.index('"', j)
                parts.append(text[j:k])
                if text.startswith('""', k):
                    parts.append('"')
                    j = k + 2
                    continue
                i = k + 1
                break
            row.append(("".join(parts), True))
        else:
            k = i
            while k < n and text[k] not in ",\r\n":
                k += 1
            cell = text[i:k]
            row.append((None if cell == "NULL" else cell, False))
            i = k
        if i < n and text[i] == ",":
            i += 1
            continue
        i += 2 if text.startswith("\r\n", i) else 1
        rows.append(row)
        row = []
    return rows


def parse_tsv(text: str) -> list[list[tuple[str | None, bool]]]:
    """PostgreSQL COPY text rows; ``\\N`` becomes None."""
    return [[_tsv_cell(cell) for cell in line.split("\t")] for line in text.split("\n") if line]


def _tsv_cell(cell: str) -> tuple[str | None, bool]:
    if cell == "\\N":
        return None, False
    out, i = [], 0
    while i < len(cell):
        if cell[i] == "\\":
            out.append(_TSV_UNESCAPE[cell[i + 1]])
            i += 2
        else:
            out.append(cell[i])
            i += 1
    return "".join(out), True  # COPY has no "missing": an empty field is an empty string


def _record(header: list[str | None], row: list[tuple[str | None, bool]], schema: dict[str, Any]):
    assert len(row) == len(header), (header, row)
    record: dict[str, Any] = {}
    for name, (text, quoted) in zip(header, row, strict=True):
        assert name is not None
        if text is None or (text == "" and not quoted):
            continue  # NULL or missing: JSON Lines omits it
        path = name.split(".")
        node = record
        for step in path[:-1]:
            node = node.setdefault(step, {})
        node[path[-1]] = _typed(text, _type_at(schema, path))
    return record


def _type_at(schema: dict[str, Any], path: list[str]) -> dict[str, Any]:
    node = schema
    for step in path:
        node = node["properties"][step]
    return node


def _typed(text: str, node: dict[str, Any]) -> Any:
    kind = node.get("type")
    if kind == "integer":
        return int(text)
    if kind == "number":
        return float(text)
    if kind == "boolean":
        return {"true": True, "false": False}[text]
    if kind == "object":
        return json.loads(text)
    return text


def by_key(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(records, key=lambda r: r["key"]["id"])

"""The data model: determinism, the data clock, the change model and the expected_* helpers."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta

import pytest

from dapctl.emulator import Emulator, EmulatorSettings
from dapctl.emulator.catalog import TRICKY
from dapctl.emulator.formats import columns
from tests.emulator.helpers import Client, decode, http_get, parse_csv

START = datetime(2026, 11, 2, 12, 0, 0, tzinfo=UTC)


def offline(**overrides) -> Emulator:
    """An emulator that is never started: the data helpers need no socket."""
    return Emulator(EmulatorSettings.for_tests(**overrides))


def test_same_seed_same_data_other_seed_other_data() -> None:
    assert offline().expected_snapshot("canvas", "users") == offline().expected_snapshot(
        "canvas", "users"
    )
    assert offline(seed=1).expected_snapshot("canvas", "users") != offline().expected_snapshot(
        "canvas", "users"
    )


def test_values_stress_the_formats() -> None:
    emu = offline(rows_per_table=300)
    names = {r["value"]["name"] for r in emu.expected_snapshot("canvas", "accounts")}
    assert set(TRICKY) <= names
    nullable = [
        r["value"].get("parent_account_id") for r in emu.expected_snapshot("canvas", "accounts")
    ]
    assert None in nullable
    courses = emu.expected_snapshot("canvas", "courses")
    assert any(isinstance(r["value"].get("settings"), dict) for r in courses)


def test_data_clock_is_independent_and_defaults_to_the_clock() -> None:
    emu = Emulator(EmulatorSettings(), clock=lambda: 1_800_000_000.75)
    assert emu.now == datetime.fromtimestamp(1_800_000_000, UTC)
    assert offline().now == START
    assert offline().advance(90) == START + timedelta(seconds=90)
    with pytest.raises(ValueError):
        offline().advance(-1)


def test_change_commits_at_now_then_ticks() -> None:
    emu = offline()
    result = emu.change("canvas", "accounts", inserts=2, updates=3, deletes=1)
    assert datetime.fromtimestamp(result.ts, UTC) == START
    assert emu.now == START + timedelta(seconds=1)
    assert result.inserted == (41, 42)
    assert len(result.updated) == 3 and len(result.deleted) == 1
    assert not set(result.updated) & set(result.deleted)
    snapshot_ids = [r["key"]["id"] for r in emu.expected_snapshot("canvas", "accounts")]
    assert len(snapshot_ids) == 41 and result.deleted[0] not in snapshot_ids


def test_incremental_is_latest_version_in_window() -> None:
    emu = offline()
    first = emu.change("canvas", "users", updates=[5, 6])
    emu.advance(100)
    emu.change("canvas", "users", updates=[5], deletes=[7])
    window = emu.expected_changes("canvas", "users", START)
    assert [(r["key"]["id"], r["meta"]["action"]) for r in window] == [(5, "U"), (6, "U"), (7, "D")]
    assert window[0]["meta"]["ts"] == "2026-11-02T12:01:41Z"  # the second version of 5
    assert "value" not in window[2]
    # until is exclusive, since inclusive: the first commit alone
    until = START + timedelta(seconds=1)
    early = emu.expected_changes("canvas", "users", START, until)
    assert [r["key"]["id"] for r in early] == list(first.updated)


def test_explicit_ids_must_exist() -> None:
    emu = offline()
    emu.change("canvas", "users", deletes=[3])
    with pytest.raises(ValueError, match="do not exist"):
        emu.change("canvas", "users", updates=[3])
    with pytest.raises(ValueError, match="only"):
        emu.change("canvas", "users", deletes=1000)


def test_incremental_since_before_start_includes_base_rows() -> None:
    emu = offline()
    since = START - timedelta(days=20)
    window = emu.expected_changes("canvas", "users", since)
    snapshot = emu.expected_snapshot("canvas", "users")
    assert window == [r for r in snapshot if r["meta"]["ts"] >= "2026-10-13T12:00:00Z"]
    assert window  # some base rows are that recent


def test_extra_tables_by_rows_override() -> None:
    emu = offline(rows={"canvas.big": 123, "canvas.users": 7})
    assert len(emu.expected_snapshot("canvas", "big")) == 123
    assert len(emu.expected_snapshot("canvas", "users")) == 7
    with pytest.raises(KeyError):
        emu.expected_snapshot("canvas", "nope")


def test_each_part_has_its_own_header(make_emulator) -> None:
    emu = make_emulator(part_size=10)
    client = Client(emu)
    job = client.query("courses", format="csv")
    assert len(job["objects"]) == 4
    header = ",".join(name for name, _, _ in columns(emu.data.tables["canvas.courses"].spec, None))
    for url in client.urls(job):
        text = gzip.decompress(http_get(url).content).decode()
        assert text.startswith(header + "\r\n")
        assert len(parse_csv(text)) == 11


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_condensed_mode_embeds_nested_objects(emulator: Emulator, fmt: str) -> None:
    client = Client(emulator)
    job = client.query("courses", format=fmt, mode="condensed")
    schema = client.schema("courses")
    records = client.download(job, fmt, schema)
    assert records == emulator.expected_snapshot("canvas", "courses")
    text = gzip.decompress(http_get(client.urls(job)[0]).content).decode()
    headers = text.splitlines()[0].split("," if fmt == "csv" else "\t")
    assert "value.settings" in headers and "value.settings.theme" not in headers
    assert decode(text, fmt, schema) == records

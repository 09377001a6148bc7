"""Apply's core cases through every pairing of ``StateStore`` and ``Destination``.

The same cases run with the local state file and the in-memory store, and with the file
destination, objects in S3 (moto's server), GCS (fake-gcs-server) and Azure (Azurite), and the
in-memory one: a snapshot and chained
incrementals equal the emulator's
data; a failed download keeps the old watermark and publishes nothing; a job started by a
killed apply is resumed, not started again. A new backend joins by adding one fixture
parameter here.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from dapctl.apply import ApplyOptions
from dapctl.loading import load_config
from dapctl.outputs.destination import open_destination
from dapctl.outputs.memory import MemoryDestination
from dapctl.outputs.objects import ObjectDestination
from dapctl.state import LocalStateStore, MemoryBackend, MemoryStateStore
from dapctl.wiring import run_apply
from tests.apply_helpers import FAST, config_text, environ, expected_rows, replay
from tests.object_stores import emulated

TABLES = ("accounts", "users")


class Pairing:
    def __init__(self, store: str, destination: str, tmp_path: Path, s3=None) -> None:
        self.store_kind, self.destination_kind = store, destination
        self.backend = MemoryBackend()
        self.memory = MemoryDestination(scratch=tmp_path / "scratch")
        self.tmp_path = tmp_path
        self.s3 = s3

    def apply(self, path: Path, emu, **options):
        loaded = load_config(path)
        store = (
            LocalStateStore(loaded.state_path, base_dir=loaded.base_dir)
            if self.store_kind == "local"
            else MemoryStateStore(self.backend)
        )
        memory = self.memory
        destinations = {
            "files": None,
            "memory": lambda target: memory,
            "objects": self._objects,
            "gcs": self._objects,
            "azure": self._objects,
        }[self.destination_kind]
        results = run_apply(
            loaded,
            environ=environ(emu),
            options=ApplyOptions(**options),
            connection=FAST,
            store=store,
            destinations=destinations,
        )
        return results, store.read()

    def _objects(self, target):
        output = self.s3.url("{profile}/{table}/{kind}-{timestamp}.{format}.gz")
        return ObjectDestination(target.model_copy(update={"output": output}))

    def records(self, location: str) -> list[dict]:
        if self.destination_kind == "memory":
            data = self.memory.published[location]
        elif self.destination_kind in BUCKETS:
            data = gzip.decompress(self.s3.read(location))
        else:
            data = gzip.decompress(Path(location).read_bytes())
        return [json.loads(line) for line in data.decode().splitlines() if line]

    def published(self) -> list[str] | None:
        """Every location published so far, where the destination can list them."""
        if self.destination_kind == "memory":
            return list(self.memory.published)
        if self.destination_kind in BUCKETS:
            return [self.s3.url(key) for key in self.s3.objects()]
        return None


PAIRINGS = ["local+files", "local+memory", "memory+files", "memory+memory"]
BUCKETS = ("objects", "gcs", "azure")  # objects: S3's


@pytest.fixture(params=[*PAIRINGS, "local+objects", "memory+objects", "local+gcs", "local+azure"])
def pairing(request, tmp_path, monkeypatch) -> Pairing:
    store, destination = request.param.split("+")
    bucket = None  # a bucket of the destination's store (``s3``: any with url, read, objects)
    if destination == "objects":
        bucket = request.getfixturevalue("s3")
    elif destination in BUCKETS:
        bucket = emulated(request, destination, monkeypatch)
    return Pairing(store, destination, tmp_path, bucket)


def test_snapshot_then_incrementals_equal_the_emulators_data(pairing, make_emulator, write_config):
    emu = make_emulator()
    path = write_config(config_text(emu))
    shown: dict[str, list[str]] = {table: [] for table in TABLES}
    for round_ in range(3):
        if round_:
            emu.advance(3600)
            emu.change("canvas", "accounts", inserts=3, updates=2, deletes=1)
            emu.change("canvas", "users", inserts=2, updates=1, deletes=1)
        results, state = pairing.apply(path, emu)
        assert [r.status for r in results] == ["ok", "ok"], results
        for result in results:
            shown[result.table].extend(result.files)
            step = state.step(result.address)
            assert step.watermark == emu.now and step.pending is None
            assert step.records == result.records and step.kind == result.kind

    for table in TABLES:
        got = replay([pairing.records(location) for location in shown[table]])
        assert got == expected_rows(emu.expected_snapshot("canvas", table))


def test_a_failed_download_publishes_nothing_and_keeps_the_watermark(
    pairing, make_emulator, write_config
):
    emu = make_emulator()
    path = write_config(config_text(emu, tables='["accounts"]'))
    _, before = pairing.apply(path, emu)
    emu.advance(600)
    emu.change("canvas", "accounts", updates=2)
    emu.faults.cut_downloads(1)  # every try of every part is cut off

    results, after = pairing.apply(path, emu)

    (result,) = results
    assert result.status == "failed"
    address = result.address
    assert after.step(address).watermark == before.step(address).watermark
    assert after.step(address).files == before.step(address).files
    if pairing.published() is not None:
        assert pairing.published() == list(before.step(address).files)


def test_a_recorded_job_is_resumed_not_started_again(pairing, make_emulator, write_config):
    emu = make_emulator()
    path = write_config(config_text(emu, tables='["accounts"]'))
    started, state = pairing.apply(path, emu, no_wait=True)
    assert state.step(started[0].address).pending.job_id == started[0].job_id
    assert [r.status for r in started] == ["started"]
    created = emu.stats.jobs_created

    results, _ = pairing.apply(path, emu)

    (result,) = results
    assert result.status == "ok" and result.job_id == started[0].job_id
    assert emu.stats.jobs_created == created
    assert any("resumed job" in note for note in result.notes)


def test_an_incremental_with_no_records_publishes_nothing_and_moves_the_watermark(
    pairing, make_emulator, write_config
):
    emu = make_emulator()
    path = write_config(config_text(emu, tables='["accounts"]'))
    _, before = pairing.apply(path, emu)
    emu.advance(600)  # the data clock moves, the table does not change

    results, after = pairing.apply(path, emu)

    (result,) = results
    assert result.status == "ok" and result.kind == "incremental", result.error
    assert result.files == () and result.records == 0
    assert any("no records" in note for note in result.notes), result.notes
    step = after.step(result.address)
    assert step.watermark == emu.now and step.files == ()
    if pairing.published() is not None:
        assert pairing.published() == list(before.step(result.address).files)
    else:
        assert len(list((path.parent / "out").rglob("*.gz"))) == 1  # the snapshot alone


def test_the_factory_gives_the_file_destination_for_a_plain_output(tmp_path, write_config):
    from dapctl.outputs.files import FileDestination

    loaded = load_config(
        write_config('[profiles.p]\nemulator = true\n[[targets]]\nname = "t"\ntables = ["a"]\n')
    )
    destination = open_destination(loaded.config.targets[0], base_dir=loaded.base_dir)
    assert isinstance(destination, FileDestination)


def test_the_factory_gives_the_object_destination_for_a_bucket_url(tmp_path, write_config):
    loaded = load_config(
        write_config(
            '[profiles.p]\nemulator = true\n[[targets]]\nname = "t"\ntables = ["a"]\n'
            'output = "s3://bucket/{table}-{timestamp}.jsonl.gz"\n'
        )
    )
    destination = open_destination(loaded.config.targets[0], base_dir=loaded.base_dir)
    assert isinstance(destination, ObjectDestination)
    assert destination.bucket.root == "s3://bucket"


def test_an_output_folder_that_cannot_be_made_fails_its_target_before_any_job(
    make_emulator, write_config, run_cli
):
    # Root writes anywhere, so the folder is kept from being made by a file in its way.
    emu = make_emulator()
    text = config_text(emu, output="blocked/out/{profile}/{table}/{kind}-{timestamp}.{format}.gz")
    fine = 'output = "fine/{table}/{kind}-{timestamp}.gz"'
    text += f'\n[[targets]]\nname = "fine"\ntables = ["users"]\n{fine}\n'
    path = write_config(text)
    (path.parent / "blocked").write_text("a file, not a folder")

    result = run_cli("apply", str(path), "--json", environ=environ(emu))

    assert result.code == 1, result
    outcomes = {r["address"]: r for r in json.loads(result.stdout)["results"]}
    assert outcomes["univ_a/fine/canvas.users"]["status"] == "ok"
    folder = path.parent / "blocked" / "out"
    for table in TABLES:
        error = outcomes[f"univ_a/core/canvas.{table}"]["error"]
        assert f"target core: cannot write its files in {folder}" in error["message"], error
        assert "is a file, not a folder" in error["message"]
    assert emu.stats.jobs_created == 1  # the fine target's: none was spent on the blocked one

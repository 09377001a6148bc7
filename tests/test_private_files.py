"""Every kind of file dapctl creates is 0600, in folders it creates 0700, whatever the
umask (issue 20, item 5): the DuckDB file and its ``.wal``, part files (beside an output and
in a table's scratch folder), log files, rate-limit budgets and their lock, the state's lock,
and the state with its backup. Each kind is made under umask 022 (the usual one, which let
DuckDB make its file 0644) and umask 000, in folders that do not exist yet.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dapctl.api import budget
from dapctl.api.ratelimit import RateLimits
from dapctl.api.wire import Job, ObjectRef
from dapctl.cli.logs import open_log_file
from dapctl.collect import collect
from dapctl.config import RateLimitSettings
from dapctl.databases.duck import DuckDatabase
from dapctl.outputs.destination import Landed
from dapctl.outputs.files import FileLoad
from dapctl.outputs.tables import TableStepLoad
from dapctl.state import LocalStateStore, State, StepState

UMASKS = pytest.mark.parametrize("umask", [0o022, 0o000], ids=["022", "000"], indirect=True)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def made_by_dapctl(root: Path, new: Path) -> list[Path]:
    """``new`` and the folders between it and ``root``, which did not exist."""
    return [new, *[p for p in new.parents if root in p.parents]]


@UMASKS
def test_duckdb_file_and_its_wal(tmp_path, umask):
    path = tmp_path / "new" / "deeper" / "wh.duckdb"
    db = DuckDatabase.connect(path, sleep=time.sleep)
    try:
        db.write_step(
            ("c", "d"), address="a/b/c.d", record="{}"
        )  # a write: DuckDB keeps it in the .wal until closed
        wal = path.with_name("wh.duckdb.wal")
        assert wal.exists()
        assert (mode(path), mode(wal)) == (0o600, 0o600)
    finally:
        db.close()
    assert os.umask(umask) == umask, "the umask is put back once the file is closed"
    assert mode(path) == 0o600
    for folder in made_by_dapctl(tmp_path, path.parent):
        assert mode(folder) == 0o700, folder


@UMASKS
def test_an_existing_duckdb_file_keeps_its_mode(tmp_path, umask):
    path = tmp_path / "wh.duckdb"
    DuckDatabase.connect(path, sleep=time.sleep).close()
    path.chmod(0o640)  # a person's choice

    DuckDatabase.connect(path, sleep=time.sleep).close()

    assert mode(path) == 0o640


class _Client:
    """Serves each object as one gzip part of ``text``, the way ``DapClient`` does."""

    def __init__(self, text: bytes) -> None:
        self.text = text

    @contextlib.contextmanager
    def batching_urls(self, ids: list[str]) -> Iterator[None]:
        yield

    def download_object(self, object_id: str, dest: Any, *, text: Any = None, **_: Any) -> int:
        data = gzip.compress(self.text)
        dest.write(data)
        if text is not None:
            text.feed(self.text)
        return len(data)


class _Watching:
    """A load that notes each part's mode and its folder's as it is handed over."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.location = inner.location
        self.part_mode = inner.part_mode
        self.seen: list[tuple[int, int]] = []

    def part_path(self, index: int) -> Path:
        return self.inner.part_path(index)

    def add_part(self, part: Path, counted: Any) -> None:
        self.seen.append((mode(part), mode(part.parent)))
        self.inner.add_part(part, counted)

    def commit(self, settle: Any) -> Landed:
        return self.inner.commit(settle)

    def abort(self) -> None:
        self.inner.abort()


JOB = Job(id="j", status="complete", objects=[ObjectRef(id="p0"), ObjectRef(id="p1")])
LINES = b'{"key": {"id": 1}, "value": {}}\n'


@pytest.mark.parametrize("name", ["out.jsonl.gz", "out.jsonl"])
@UMASKS
def test_part_files_beside_an_output(tmp_path, umask, name):
    path = tmp_path / "new" / name
    load = _Watching(FileLoad(name, path, fmt="jsonl"))

    collect(_Client(LINES), JOB, load, settle=lambda landed: None)  # type: ignore[arg-type]

    assert load.seen == [(0o600, 0o700)] * 2
    assert mode(path) == 0o600


class _TableLoad:
    def add_part(self, path: Path) -> int:
        return 1

    def commit(self, *, address: str, record: str, run: object = None) -> int:
        return 2

    def abort(self) -> None:
        pass


@UMASKS
def test_part_files_of_a_table_in_their_scratch_folder(tmp_path, umask):
    scratch = tmp_path / "parts"
    held = contextlib.ExitStack()
    load = _Watching(TableStepLoad("database://wh/a.b", "a/b/c.d", _TableLoad(), held, scratch))

    collect(_Client(LINES), JOB, load, settle=lambda landed: StepState())  # type: ignore[arg-type]

    assert load.seen == [(0o600, 0o700)] * 2
    assert not scratch.exists()


@UMASKS
def test_log_files(tmp_path, umask):
    path = tmp_path / "new" / "logs" / "apply.log"
    with open_log_file(path) as handle:
        handle.write("x\n")
    assert mode(path) == 0o600
    for folder in made_by_dapctl(tmp_path, path.parent):
        assert mode(folder) == 0o700, folder


@UMASKS
def test_rate_limit_budgets_and_their_lock(tmp_path, umask):
    path = budget.budget_path("http://dap", "client", {"XDG_CACHE_HOME": str(tmp_path / "cache")})
    limits = RateLimits.from_settings(RateLimitSettings())
    with budget.kept(limits, path, wall=time.time, monotonic=time.monotonic):
        pass
    lock = path.with_suffix(".lock")
    assert (mode(path), mode(lock)) == (0o600, 0o600)
    for folder in made_by_dapctl(tmp_path, path.parent):
        assert mode(folder) == 0o700, folder


@UMASKS
def test_state_its_backup_and_its_lock(tmp_path, umask):
    path = tmp_path / "new" / "state" / "dapctl.state.json"
    store = LocalStateStore(path)
    with store.lock(timeout=0, command="test"):
        assert mode(store.lock_path) == 0o600
        store.read()
        first = State()
        store.write(first)
        store.write(first.model_copy(update={"serial": 1}))  # the second keeps a backup
    assert (mode(path), mode(store.backup_path)) == (0o600, 0o600)
    for folder in made_by_dapctl(tmp_path, path.parent):
        assert mode(folder) == 0o700, folder

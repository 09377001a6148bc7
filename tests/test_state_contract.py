"""One contract for every ``StateStore``: the local file, the in-memory store, PostgreSQL
(a database made for the test) and a bucket of each object store (S3 on moto's server, GCS on
fake-gcs-server, Azure on Azurite: ``tests/object_stores.py``) pass the same tests, so the
next backend is one module plus one fixture here; every backend of the registry is here.

The contract: ``read`` gives ``None`` before the first write and what was written after;
every write compares and swaps (a writer that read serial N loses to one that wrote N+1
since, and a state of another lineage is refused); the lock is exclusive and names its
holder; ``force_unlock`` refuses a live holder unless forced.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dapctl.errors import LockError, StateConflictError
from dapctl.state import (
    LocalStateStore,
    MemoryBackend,
    MemoryStateStore,
    State,
    StateKeeper,
    StateStore,
    StepState,
)
from dapctl.state.backends import BACKENDS
from dapctl.state.objects import ObjectStateStore
from dapctl.state.postgres import PostgresStateStore
from tests.object_stores import emulated

# The PostgreSQL fixtures of tests/databases: a server, and a database made per test.

ADDRESS = "univ_a/core/canvas.accounts"
Opener = Callable[[], StateStore]


BUCKETS = {"s3": "s3", "gcs": "gcs", "azure": "azure"}  # backend -> object store


@pytest.fixture(params=["local", "memory", "postgresql", *BUCKETS])
def opener(request, tmp_path: Path, monkeypatch) -> Iterator[Opener]:
    """Opens a new store on one shared backend, as a second process would."""
    if request.param == "local":
        yield lambda: LocalStateStore(tmp_path / "state" / "dapctl.state.json")
    elif request.param == "memory":
        backend = MemoryBackend()
        yield lambda: MemoryStateStore(backend)
    elif request.param == "s3":  # moto's server: its conditional writes, not their atomicity
        url = request.getfixturevalue("s3").url("states/")
        yield lambda: ObjectStateStore(url, namespace="dapctl")
    elif request.param in BUCKETS:
        url = emulated(request, BUCKETS[request.param], monkeypatch).url("states/")
        yield lambda: ObjectStateStore(url, namespace="dapctl")
    else:
        url, opened = request.getfixturevalue("pg_url"), []
        yield lambda: opened.append(PostgresStateStore(url, namespace="dapctl")) or opened[-1]
        for store in opened:
            store.close()


def test_every_backend_of_the_registry_is_in_this_suite():
    names = {backend.name for backend in BACKENDS}
    assert names == {"file", "memory", "postgresql", *BUCKETS}
    assert [b.name for b in BACKENDS if b.leases or b.shares_budgets] == ["postgresql"]


def test_nothing_is_there_before_the_first_write(opener):
    assert opener().read() is None


def test_what_is_written_is_read_back_by_another_store(opener):
    store = opener()
    store.read()
    state = State().with_step(ADDRESS, StepState(records=7))
    store.write(state)

    again = opener().read()

    assert again == state and again.step(ADDRESS).records == 7


def test_a_writer_may_go_on_writing_what_it_wrote(opener):
    store = opener()
    store.read()
    keeper = StateKeeper(store, State())
    for records in range(1, 4):
        keeper.update(ADDRESS, lambda s, n=records: s.model_copy(update={"records": n}))

    assert opener().read().serial == 3


def test_a_stale_writer_is_refused(opener):
    first, second = opener(), opener()
    first.read()
    first.write(State())
    base_a, base_b = first.read(), second.read()

    first.write(base_a.with_step(ADDRESS, StepState(records=1)))
    with pytest.raises(StateConflictError, match="the state changed since it was read") as caught:
        second.write(base_b.with_step(ADDRESS, StepState(records=2)))

    assert "serial 0 was read, serial 1 is there now" in caught.value.message
    assert opener().read().step(ADDRESS).records == 1  # the winner's write stands


def test_a_blind_write_over_an_existing_state_is_refused(opener):
    writer = opener()
    writer.read()
    writer.write(State())

    with pytest.raises(StateConflictError, match="no state was read, serial 0 is there now"):
        opener().write(State(serial=5))


def test_a_state_of_another_lineage_is_refused(opener):
    store = opener()
    store.read()
    store.write(State())

    with pytest.raises(StateConflictError, match="different states"):
        store.write(State(serial=1))  # a new lineage


def test_the_lock_is_exclusive_and_names_its_holder(opener):
    store, other = opener(), opener()
    with store.lock(timeout=0, command="dapctl apply"):
        holder = other.lock_info()
        with pytest.raises(LockError, match=r"dapctl apply"):
            other.lock(timeout=0, command="dapctl state rm").__enter__()
        with pytest.raises(LockError, match="still running"):
            other.force_unlock(force=False)
    assert holder is not None and holder["command"] == "dapctl apply"
    assert other.lock_info() is None
    assert other.force_unlock(force=False) is None  # nothing to remove


def test_discard_removes_the_state_so_another_may_take_its_place(opener):
    store = opener()
    store.read()
    store.write(State().with_step(ADDRESS, StepState(records=1)))

    store.discard()

    assert opener().read() is None
    store.write(State(serial=9))  # another lineage, any serial: as a migration writes
    assert opener().read().serial == 9


def test_discard_refuses_a_state_that_changed_since_it_was_read(opener):
    first, second = opener(), opener()
    first.read()
    first.write(State())
    second.read()
    first.write(first.read().with_step(ADDRESS, StepState()))

    with pytest.raises(StateConflictError, match="the state changed since it was read"):
        second.discard()
    assert opener().read().serial == 1


@pytest.fixture(params=["local", "postgresql", "gcs", "azure"])
def process_opener(request, tmp_path: Path, monkeypatch) -> Opener:
    """Opens a store on a backend that separate processes share (memory is one process's).
    GCS and Azure: their emulators decide the race by their conditional writes; moto's server
    does not make its conditional writes atomic, so S3 is not raced here."""
    if request.param == "local":
        return lambda: LocalStateStore(tmp_path / "dapctl.state.json")
    if request.param in BUCKETS:
        url = emulated(request, BUCKETS[request.param], monkeypatch).url("states/")
        return lambda: ObjectStateStore(url, namespace="dapctl")
    url = request.getfixturevalue("pg_url")
    return lambda: PostgresStateStore(url, namespace="dapctl")


def _race(open_store: Opener, barrier, results) -> None:
    store = open_store()  # after the fork: a connection is no thing to share with a parent
    state = store.read() or State()
    barrier.wait()
    try:
        store.write(state.with_step(ADDRESS, StepState(records=1)))
        results.put("ok")
    except StateConflictError as exc:
        results.put(exc.message)


def _outcomes(open_store: Opener) -> tuple[list[str], list[str]]:
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_race, args=(open_store, barrier, results)) for _ in "ab"]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=30) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    return outcomes, [o for o in outcomes if o != "ok"]


def test_two_processes_that_read_serial_n_get_one_success_and_one_clear_error(process_opener):
    seed = process_opener()
    seed.read()
    seed.write(State())

    outcomes, refused = _outcomes(process_opener)

    assert outcomes.count("ok") == 1 and len(refused) == 1, outcomes
    assert "the state changed since it was read (serial 0 was read, serial 1" in refused[0]
    assert process_opener().read().serial == 1


def test_two_processes_writing_the_first_state_get_one_success(process_opener):
    outcomes, refused = _outcomes(process_opener)

    assert outcomes.count("ok") == 1 and len(refused) == 1, outcomes
    assert "no state was read, serial 1 is there now" in refused[0], outcomes
    final = process_opener().read()
    assert final.serial == 1 and final.step(ADDRESS).records == 1


def test_a_folder_of_documents_removes_what_a_killed_writer_left(tmp_path):
    """A kill in the middle of a document's write leaves its temporary file; the next
    listing removes it when its process is gone, never a live writer's."""
    import os

    from dapctl.files import temp_path_for
    from dapctl.state.documents import FolderDocuments

    docs = FolderDocuments(tmp_path / "runs")
    docs.put("a", b"{}")
    live = temp_path_for(tmp_path / "runs" / "b.json")  # this process's: alive
    live.write_bytes(b"half")
    dead = live.with_name(live.name.replace(f"-{os.getpid()}.", "-999999999."))  # no such pid
    dead.write_bytes(b"half")
    assert docs.names() == ["a"]
    assert live.exists() and not dead.exists()


def test_every_backend_keeps_documents_beside_its_state(opener):
    """The run history's seam: names, whole replacement, another store reads them, removal;
    kinds apart; and the state itself untouched."""
    first, second = opener(), opener()
    runs = first.documents("runs")  # type: ignore[attr-defined]
    assert runs.names() == [] and runs.get("a") is None

    runs.put("20261206T010000.000000Z-aaaa", b'{"n": 1}')
    runs.put("20261206T020000.000000Z-bbbb", b'{"n": 2}')
    runs.put("20261206T010000.000000Z-aaaa", b'{"n": 3}')  # replaced whole
    other = second.documents("runs")  # type: ignore[attr-defined]

    assert other.names() == ["20261206T010000.000000Z-aaaa", "20261206T020000.000000Z-bbbb"]
    assert other.get("20261206T010000.000000Z-aaaa") == b'{"n": 3}'
    assert second.documents("other").names() == []  # type: ignore[attr-defined]
    other.remove("20261206T010000.000000Z-aaaa")
    other.remove("20261206T010000.000000Z-aaaa")  # gone already: no error
    assert runs.names() == ["20261206T020000.000000Z-bbbb"]
    assert first.read() is None  # documents are not the state

"""``FileLock``: one holder per state file, a useful error for the next, and no stale locks.

Two ``FileLock`` objects in one process open the file separately, and ``flock`` locks belong
to the open file, so they contend exactly as two processes would. Waiting uses an injected
clock and sleeper; the crash test kills a real subprocess with SIGKILL.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from datetime import datetime

import pytest

from dapctl.errors import LockError, StateError
from dapctl.state.filelock import FileLock, describe_holder, force_unlock, read_holder
from tests.clock import FakeClock


@pytest.fixture
def lock_log(caplog):
    """caplog for ``dapctl.lock``, attached to the logger itself: the CLI turns off propagation
    of the ``dapctl`` logger, so a root handler misses records once any CLI test has run."""
    logger = logging.getLogger("dapctl.lock")
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


def warnings_of(caplog) -> set[str]:
    return {r.getMessage() for r in caplog.records if r.levelno == logging.WARNING}


@pytest.fixture
def path(tmp_path):
    return tmp_path / "state.json.lock"


def test_holder_is_recorded_privately_while_held(path):
    with FileLock(path, command="dapctl apply"):
        holder = read_holder(path)
        mode = stat.S_IMODE(path.stat().st_mode)

    assert holder["pid"] == os.getpid()
    assert holder["host"] == socket.gethostname()
    assert holder["command"] == "dapctl apply"
    assert datetime.fromisoformat(str(holder["since"])).tzinfo is not None
    assert mode == 0o600


def test_second_lock_fails_naming_the_holder(path):
    with FileLock(path, command="dapctl apply"):
        holder = read_holder(path)

        with pytest.raises(LockError) as caught, FileLock(path):
            pass

    error = caught.value
    assert isinstance(error, StateError)
    assert error.message == (
        f"{path}: the state is locked by pid {os.getpid()} on host {socket.gethostname()} "
        f"since {holder['since']} (dapctl apply)"
    )
    assert "--lock-timeout" in (error.hint or "")


def test_failed_attempt_leaves_the_holders_record(path):
    with FileLock(path, command="first"):
        before = path.read_bytes()
        with pytest.raises(LockError), FileLock(path):
            pass

        assert path.read_bytes() == before


def test_timeout_zero_does_not_sleep(path):
    fake = FakeClock(100.0)
    with (
        FileLock(path),
        pytest.raises(LockError),
        FileLock(path, sleep=fake.sleep, clock=fake.clock),
    ):
        pass

    assert fake.sleeps == []


def test_timeout_waits_then_fails(path):
    fake = FakeClock(100.0)
    waiting = FileLock(path, timeout=0.5, sleep=fake.sleep, clock=fake.clock)

    with FileLock(path), pytest.raises(LockError, match="the state is locked by pid"), waiting:
        pass

    assert fake.sleeps == pytest.approx([0.2, 0.2, 0.1])
    assert fake.now == pytest.approx(100.5)


def test_timeout_waits_for_the_holder_to_release(path):
    holder = FileLock(path, command="first")
    holder.__enter__()

    def release_on_second_sleep(count: int) -> None:
        if count == 2:
            holder.__exit__(None, None, None)

    fake = FakeClock(100.0, on_sleep=release_on_second_sleep)

    with FileLock(path, timeout=30, command="second", sleep=fake.sleep, clock=fake.clock):
        assert read_holder(path)["command"] == "second"

    assert len(fake.sleeps) == 2
    assert not path.exists()


def test_lock_file_is_removed_on_release(path):
    with FileLock(path):
        assert path.exists()

    assert not path.exists()
    assert list(path.parent.iterdir()) == []


def test_lock_file_is_removed_when_the_body_raises(path):
    with pytest.raises(RuntimeError), FileLock(path):
        raise RuntimeError("boom")

    assert not path.exists()


def test_lock_can_be_taken_again_after_release(path):
    lock = FileLock(path)
    with lock:
        pass

    with lock:
        assert read_holder(path)["pid"] == os.getpid()


def test_lock_creates_its_folder(tmp_path):
    path = tmp_path / "new" / "state.json.lock"

    with FileLock(path):
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_left_record_without_holder_is_taken_over_with_a_warning(path, lock_log):
    path.write_text(
        json.dumps(
            {
                "pid": 4242,
                "host": "old-box",
                "since": "2026-01-01T00:00:00+00:00",
                "command": "dapctl apply",
            }
        )
    )

    with FileLock(path, command="new"):
        holder = read_holder(path)

    assert holder["pid"] == os.getpid()
    assert holder["command"] == "new"
    assert warnings_of(lock_log) == {
        f"{path}: taking over a lock left by pid 4242 on host old-box since "
        "2026-01-01T00:00:00+00:00 (dapctl apply), which is no longer running"
    }


def test_left_garbage_is_taken_over_too(path, lock_log):
    path.write_bytes(b"\x00garbage")

    with FileLock(path):
        assert read_holder(path)["pid"] == os.getpid()

    assert warnings_of(lock_log) == {
        f"{path}: taking over a lock left by another process (no details recorded), "
        "which is no longer running"
    }


def test_empty_left_file_is_taken_silently(path, lock_log):
    path.write_text("")

    with FileLock(path):
        pass

    assert warnings_of(lock_log) == set()


CHILD = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from dapctl.state.filelock import FileLock
    FileLock(Path(sys.argv[1]), command="dapctl apply").__enter__()
    print("locked", flush=True)
    sys.stdin.readline()
    os.kill(os.getpid(), 9)
    """
)


def test_lock_of_a_killed_process_is_free_afterwards(path, lock_log):
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline() == "locked\n"
        with pytest.raises(LockError, match=f"locked by pid {child.pid} on host"), FileLock(path):
            pass

        child.stdin.write("die\n")
        child.stdin.flush()
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for stream in (child.stdin, child.stdout):
            if stream:
                stream.close()

    with FileLock(path):
        assert read_holder(path)["pid"] == os.getpid()

    [warning] = warnings_of(lock_log)
    assert f"taking over a lock left by pid {child.pid}" in warning


def test_force_unlock_removes_the_file_and_says_who_held_it(path):
    path.write_text(json.dumps({"pid": 7, "host": "h", "since": "s", "command": "c"}))

    assert force_unlock(path) == {"pid": 7, "host": "h", "since": "s", "command": "c"}
    assert not path.exists()
    assert force_unlock(path) == {}


@pytest.mark.parametrize(
    ("holder", "text"),
    [
        ({}, "another process (no details recorded)"),
        ({"pid": 1}, "pid 1 on host ? since ? (dapctl)"),
        (
            {"pid": 1, "host": "h", "since": "t", "command": "dapctl apply"},
            "pid 1 on host h since t (dapctl apply)",
        ),
    ],
)
def test_describe_holder(holder, text):
    assert describe_holder(holder) == text

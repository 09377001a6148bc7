"""``atomic_writer``: a file is either absent or whole under its final name, and private."""

from __future__ import annotations

import functools
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from dapctl.files import (
    TEMP_SUFFIX,
    atomic_write_bytes,
    atomic_writer,
    ensure_private_dir,
    keep_copy,
    unwritable_folder,
)
from dapctl.template import literal_folder


def mode_of(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_success_writes_the_whole_file_privately(tmp_path):
    path = tmp_path / "out.bin"

    with atomic_writer(path) as handle:
        handle.write(b"first part, ")
        handle.write(b"second part")

    assert path.read_bytes() == b"first part, second part"
    assert mode_of(path) == 0o600
    assert list(tmp_path.iterdir()) == [path]


def test_bytes_go_to_a_hidden_temp_file_in_the_same_folder_until_the_end(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")

    with atomic_writer(path) as handle:
        handle.write(b"new")
        handle.flush()
        [temp] = [p for p in tmp_path.iterdir() if p != path]
        assert temp.name.startswith(".out.bin.")
        assert temp.name.endswith(TEMP_SUFFIX)
        assert temp.read_bytes() == b"new"
        assert mode_of(temp) == 0o600
        assert path.read_bytes() == b"old"

    assert path.read_bytes() == b"new"
    assert not temp.exists()


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt, OSError])
def test_failure_leaves_no_temp_file_and_the_target_untouched(tmp_path, error):
    path = tmp_path / "out.bin"
    path.write_bytes(b"previous version")
    path.chmod(0o644)

    with pytest.raises(error), atomic_writer(path) as handle:
        handle.write(b"half of the new")
        raise error("interrupted")

    assert list(tmp_path.iterdir()) == [path]
    assert path.read_bytes() == b"previous version"
    assert mode_of(path) == 0o644


def test_failure_before_any_target_leaves_nothing(tmp_path):
    path = tmp_path / "sub" / "out.bin"

    with pytest.raises(ValueError), atomic_writer(path):
        raise ValueError("no")

    assert list((tmp_path / "sub").iterdir()) == []


def test_replacing_a_world_readable_file_makes_it_private(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    path.chmod(0o644)

    atomic_write_bytes(path, b"new")

    assert path.read_bytes() == b"new"
    assert mode_of(path) == 0o600


def test_new_folder_is_private(tmp_path):
    path = tmp_path / "private" / "out.bin"

    atomic_write_bytes(path, b"x")

    assert mode_of(tmp_path / "private") == 0o700


def test_ensure_private_dir_leaves_an_existing_folder_alone(tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o755)

    ensure_private_dir(folder)

    assert mode_of(folder) == 0o755


def test_ensure_private_dir_makes_missing_parents_private(tmp_path):
    ensure_private_dir(tmp_path / "a" / "b" / "c")

    assert [mode_of(tmp_path / "a"), mode_of(tmp_path / "a" / "b")] == [0o700, 0o700]


def test_sweep_removes_only_what_dead_processes_of_this_host_left(tmp_path):
    import subprocess
    import sys

    from dapctl.files import _host_tag, sweep_stale_temp_files, temp_path_for

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    pid = int(dead.stdout)
    target = tmp_path / "out.jsonl.gz"
    ours = temp_path_for(target)
    theirs = tmp_path / f".out.jsonl.gz.{_host_tag()}-{pid}.0123abcd.dapctl-tmp"
    elsewhere = tmp_path / f".out.jsonl.gz.ffffffff-{pid}.0123abcd.dapctl-tmp"
    unowned = tmp_path / ".out.jsonl.gz.0123abcd.dapctl-tmp"
    keep = tmp_path / "out.jsonl.gz"
    for path in (ours, theirs, elsewhere, unowned, keep):
        path.write_bytes(b"x")
    removed = sweep_stale_temp_files(tmp_path)
    assert sorted(removed) == sorted([theirs, unowned])
    assert ours.exists() and elsewhere.exists() and keep.exists()


def test_keeping_a_copy_that_already_is_the_source_leaves_no_temporary_link(tmp_path):
    """A dapctl killed between keeping the state's backup and replacing the state leaves
    the two as links of one file; the next backup must not leave its temporary link."""
    state, backup = tmp_path / "dapctl.state.json", tmp_path / "dapctl.state.json.backup"
    state.write_text("{}")
    keep_copy(state, backup)
    keep_copy(state, backup)  # the kill's aftermath: backup and state are one file
    assert sorted(p.name for p in tmp_path.iterdir()) == [state.name, backup.name]
    assert backup.read_text() == "{}"


@pytest.mark.parametrize(
    ("output", "folder"),
    [
        ("out/{profile}/{table}/{kind}-{timestamp}.{format}.gz", "out"),
        ("out/x/data-{table}-{timestamp}.gz", "out/x"),
        ("{profile}/{table}.gz", ""),
        ("/srv/dap/{table}.gz", "/srv/dap"),
        ("out/{{literal}}/{table}.gz", "out/{literal}"),
    ],
)
def test_the_literal_folder_of_an_output_template(output, folder):
    assert literal_folder(output) == folder


def test_a_folder_is_writable_when_it_or_its_nearest_existing_parent_is(tmp_path):
    assert unwritable_folder(tmp_path) is None
    assert unwritable_folder(tmp_path / "not" / "yet") is None
    assert not (tmp_path / "not").exists(), "nothing is created to find out"
    (tmp_path / "file").write_text("x")
    assert (
        unwritable_folder(tmp_path / "file" / "out")
        == f"{tmp_path / 'file'} is a file, not a folder"
    )


def _as_nobody(probe: Callable[[], str | None]) -> str | None:
    """``probe()`` in a forked child running as uid/gid 65534 (root writes anywhere)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop privileges, probe, report, leave without cleanup
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.write(write_end, json.dumps(probe()).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        data = reader.read()
    os.waitpid(pid, 0)
    assert data, "the child running as nobody reported nothing"
    return json.loads(data)


def test_a_folder_this_user_may_not_write_in():
    root = Path(tempfile.mkdtemp(prefix="dapctl-ro-"))  # beyond tmp_path's 0700 parents
    try:
        read_only = root / "ro"
        read_only.mkdir()
        for folder in (root, read_only):
            folder.chmod(0o555)
        probe = functools.partial(unwritable_folder, read_only / "out")
        reason = _as_nobody(probe) if os.geteuid() == 0 else probe()
        assert reason == f"this user may not write in {read_only}"
    finally:
        root.chmod(0o700)
        read_only.chmod(0o700)
        shutil.rmtree(root)

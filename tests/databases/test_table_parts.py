"""A table-only target's parts (issue 20, items 6 and 11): they download into a private
folder in ``$TMPDIR`` that is gone when the step ends, succeeded or failed, and the step's
result shows the bytes its download took (there is no file to measure)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import cast

import pytest

from dapctl.config import Target
from dapctl.files import _host_tag, temp_path_for
from dapctl.outputs.tables import PARTS, Databases, TableDestination
from tests.apply_helpers import config_text, environ


@pytest.fixture
def empty_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$TMPDIR`` pointed at an empty folder, as a fresh process with that variable sees it."""
    folder = tmp_path / "tmpdir"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads $TMPDIR again
    assert tempfile.gettempdir() == str(folder)
    return folder


def _config(emu, url: str) -> str:
    text = config_text(emu, extra_target='database = "wh"')
    return f'[databases.wh]\nurl = "{url}"\n\n' + text.replace('output = "out/', '# output = "')


def test_an_apply_into_a_table_leaves_tmpdir_as_it_was(
    backend, make_emulator, write_config, run_cli, empty_tmpdir
):
    emu = make_emulator(part_size=7)  # several parts a table
    path = write_config(_config(emu, backend.url))

    result = run_cli("apply", str(path), environ=environ(emu))

    assert result.code == 0, result.stdout + result.stderr
    assert backend.query("SELECT count(*) FROM canvas.accounts")[0][0] > 7
    assert sorted(os.listdir(empty_tmpdir)) == []


def test_a_failed_load_leaves_tmpdir_as_it_was(
    backend, make_emulator, write_config, run_cli, empty_tmpdir
):
    emu = make_emulator(part_size=7, cut_every=3)  # every third download is cut off ...
    path = write_config(_config(emu, backend.url).replace("attempts = 5", "attempts = 1"))

    result = run_cli("apply", str(path), environ=environ(emu))  # ... and never retried

    assert result.code == 1, result.stdout + result.stderr
    assert "failed" in result.stdout
    assert emu.stats.downloads_cut > 0
    assert sorted(os.listdir(empty_tmpdir)) == []


def test_a_table_steps_result_shows_the_bytes_it_downloaded(
    backend, make_emulator, write_config, run_cli
):
    emu = make_emulator(part_size=7)
    path = write_config(_config(emu, backend.url))

    result = run_cli("apply", str(path), "--json", environ=environ(emu))

    assert result.code == 0, result.stdout + result.stderr
    results = json.loads(result.stdout)["results"]
    assert all(r["bytes"] > 0 for r in results), results
    assert sum(r["bytes"] for r in results) == emu.stats.bytes_served
    records = dict(backend.query("SELECT address, record FROM dapctl.table_steps"))
    for r in results:  # the step record committed with the table says the same
        assert json.loads(records[r["address"]])["bytes"] == r["bytes"]


def test_check_sweeps_the_part_folders_of_killed_processes(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    theirs = tmp_path / f".{PARTS}.{_host_tag()}-{int(dead.stdout)}.0badcafe.dapctl-tmp"
    theirs.mkdir()
    (theirs / "part00000").write_bytes(b"{}\n")
    ours = temp_path_for(tmp_path / PARTS)  # this process's, maybe loading now
    ours.mkdir()
    other = tmp_path / "someone-elses"
    other.mkdir()
    target = Target(name="core", tables=["accounts"], database="wh")
    destination = TableDestination(
        target, databases=cast(Databases, None), schema_of=lambda *_: {}, scratch=tmp_path
    )

    destination.check()

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([ours.name, other.name])

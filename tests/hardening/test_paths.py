"""Output paths are confined to what the template declares (issue 5).

A template or a name that would escape the config's folder (``..``, names carrying ``/``,
a table the server lists as ``../x``) is refused at validate time, or fails its step without
writing anywhere else. An output path that would land on dapctl's own files (the config, the
state, its backup or lock) or on a folder must be refused too: the cases below show where it
is not. Templates are the user's declaration, so an absolute template is honoured as written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dapctl.apply import ApplyOptions
from dapctl.errors import ConfigError
from dapctl.loading import load_config
from dapctl.outputs.files import FileDestination, FileLoad
from dapctl.wiring import run_apply
from tests.apply_helpers import FAST, SECRET_VAR, apply, config_text, environ
from tests.hardening.test_fuzz_server import CONNECTION, stub_config
from tests.stubs import Reply, StubServer


@pytest.mark.parametrize(
    "output",
    [
        "../x/{table}-{timestamp}.jsonl",
        "out/../../{table}-{timestamp}.jsonl",
        "out\\\\..\\\\..\\\\{table}-{timestamp}.jsonl",
        "{table}/../../../{timestamp}.jsonl",
        "out/{table}/..",
        "..",
    ],
)
def test_templates_with_dotdot_are_refused_at_validate(
    make_emulator, write_config, run_cli, output
):
    emu = make_emulator()
    path = write_config(config_text(emu, output=output))
    result = run_cli("validate", str(path), environ=environ(emu))
    assert result.code == 1, result
    assert "'..' is not allowed" in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('tables = ["accounts", "users"]', 'tables = ["../x"]'),
        ('tables = ["accounts", "users"]', 'tables = ["/etc/passwd"]'),
        ('tables = ["accounts", "users"]', 'tables = ["a/b"]'),
        ('tables = ["accounts", "users"]', 'tables = ["."]'),
        ('name = "core"', 'name = "../core"'),
        ('name = "core"', 'name = "/core"'),
        ('name = "core"', 'name = "core"\nnamespace = "../canvas"'),
        ('name = "core"', 'name = "core"\nnamespace = "/canvas"'),
        ("[profiles.univ_a]", '[profiles."../univ_a"]'),
        ("[profiles.univ_a]", '[profiles."/abs"]'),
    ],
)
def test_names_that_would_carry_a_separator_are_refused(
    make_emulator, write_config, run_cli, old, new
):
    emu = make_emulator()
    text = config_text(emu)
    assert old in text
    path = write_config(text.replace(old, new))
    result = run_cli("validate", str(path), environ=environ(emu))
    assert result.code == 1, result
    assert result.stderr.startswith("Error:"), result.stderr


def test_an_absolute_template_is_honoured_as_declared(make_emulator, write_config, tmp_path):
    emu = make_emulator()
    elsewhere = tmp_path / "declared"
    path = write_config(config_text(emu, output=f"{elsewhere}/{{table}}-{{timestamp}}.jsonl.gz"))
    results = apply(path, emu)
    assert [r.status for r in results] == ["ok", "ok"]
    assert all(Path(f).parent == elsewhere for r in results for f in r.files)


@pytest.mark.parametrize(
    "tables",
    [["../x"], ["/etc/passwd"], ["a/b"], [".."], ["ok_table", "../../escape"], ["x\x00y"]],
)
def test_unsafe_table_names_listed_by_the_server_write_nothing(tmp_path, tables):
    box = tmp_path / "box"
    root = box / "root"
    root.mkdir(parents=True)
    with StubServer(dap_defaults=True) as stub:
        stub.tables = tables
        path = root / "dapctl.toml"
        path.write_text(stub_config(stub, tables='"all"'))
        results = run_apply(
            load_config(path),
            environ={SECRET_VAR: "s"},
            options=ApplyOptions(job_timeout=1.0),
            connection=CONNECTION,
        )
        jobs = [s.path for s in stub.seen if s.path.endswith("/data")]
    # The listing step fails naming the unsafe names; the safe tables beside them go on.
    (failed,) = [r for r in results if r.status == "failed"]
    assert "unsafe names" in failed.error.message, failed
    safe = [t for t in tables if t == "ok_table"]
    assert [r.table for r in results if r.status != "failed"] == safe
    assert all("/table/ok_table/" in job for job in jobs), "no job for an unsafe name"
    assert [p.name for p in box.iterdir()] == ["root"]
    assert (root / "out").exists() == bool(safe)


class RecordingDestination(FileDestination):
    """The file destination, noting every path a load writes to (part files included)."""

    written: list[Path] = []

    def begin(self, step, job, *, kind, watermark) -> FileLoad:
        load = super().begin(step, job, kind=kind, watermark=watermark)
        self.written += [load.path, *(load.part_path(i) for i in range(len(job.objects)))]
        return load


def snapshot_config(emu, output: str) -> str:
    return config_text(emu, tables='["accounts"]', output=output, extra_target='sync = "snapshot"')


def run_recorded(path: Path, emu) -> tuple[list, list[Path]]:
    written: list[Path] = []
    loaded = load_config(path)

    def destination(target):
        recording = RecordingDestination(target, base_dir=loaded.base_dir)
        recording.written = written
        return recording

    results = run_apply(
        loaded,
        environ=environ(emu),
        options=ApplyOptions(),
        connection=FAST,
        destinations=destination,
    )
    return results, written


@pytest.mark.parametrize(
    "output",
    [
        "dapctl.toml",
        "state/dapctl.state.json",
        "state/dapctl.state.json.backup",
        "state/dapctl.state.json.lock",
    ],
)
def test_outputs_that_would_replace_dapctls_own_files_are_refused(
    make_emulator, write_config, run_cli, output
):
    emu = make_emulator()
    path = write_config(snapshot_config(emu, output))
    config = path.read_bytes()
    result = run_cli("validate", str(path), environ=environ(emu))
    if result.code == 1:
        return  # refused at validate: the fix the issue asks for
    results, _ = run_recorded(path, emu)
    assert path.read_bytes() == config, "the config file was replaced by the output"
    for r in results:
        assert r.status == "failed" and r.error.type != "InternalError", r
    state = json.loads((path.parent / "state" / "dapctl.state.json").read_text())
    assert state["version"] == 2


@pytest.mark.parametrize("case", [".", "existing folder", "absolute folder", "under a file"])
def test_outputs_that_are_folders_fail_cleanly_inside_the_folder(
    make_emulator, write_config, tmp_path, case
):
    emu = make_emulator()
    output = {
        ".": ".",
        "existing folder": "state",
        "absolute folder": str(tmp_path),
        "under a file": "blocker/{table}-{timestamp}.jsonl",
    }[case]
    (tmp_path / "state").mkdir()
    (tmp_path / "blocker").write_text("a file where a folder is wanted")
    path = write_config(snapshot_config(emu, output))
    try:
        load_config(path)
    except ConfigError as exc:  # refused at validate: the better outcome
        assert "must end in a file name" in str(exc)
        return
    results, paths = run_recorded(path, emu)
    for written in paths:
        assert written.is_relative_to(tmp_path), f"wrote outside the config folder: {written}"
    (result,) = results
    assert result.status == "failed", result
    assert result.error.type != "InternalError", result.error


def test_a_listed_table_with_a_safe_name_still_lands_under_the_template(tmp_path):
    """The control case for the unsafe names above: the same stub, a good name, one file."""
    root = tmp_path / "root"
    root.mkdir()
    with StubServer(dap_defaults=True) as stub:
        stub.tables = ["good_table"]
        stub.replies["job"] = Reply(json=stub.complete_job())
        path = root / "dapctl.toml"
        path.write_text(stub_config(stub, tables='"all"'))
        results = run_apply(
            load_config(path),
            environ={SECRET_VAR: "s"},
            options=ApplyOptions(job_timeout=1.0),
            connection=CONNECTION,
        )
    assert [r.status for r in results] == ["ok"], results
    (file,) = results[0].files
    assert root / file == root / "out" / "good_table" / "snapshot-20261102T120000Z.jsonl.gz"

"""format = "parquet": the parts of a job merge into one Parquet file (pyarrow, the
``parquet`` extra, is in the test extras so this always runs)."""

from __future__ import annotations

import gzip
import importlib
import io

import pyarrow.parquet as pq
import pytest

from dapctl.errors import ConfigError
from dapctl.loading import load_config, require_extras
from tests.apply_helpers import apply, config_text, environ


def _read(path: str):
    data = open(path, "rb").read()  # noqa: SIM115 (read whole, then decide)
    if path.endswith(".gz"):
        data = gzip.decompress(data)
    return pq.read_table(io.BytesIO(data))


def test_parquet_parts_merge_into_one_file(make_emulator, write_config):
    emu = make_emulator(part_size=7)  # 40 rows: six parts, each its own Parquet file
    path = write_config(
        config_text(
            emu, tables='["accounts"]', fmt="parquet", output="out/{table}-{timestamp}.parquet"
        )
    )
    (result,) = apply(path, emu)
    assert result.status == "ok", result.error
    table = _read(result.files[0])
    expected = emu.expected_snapshot("canvas", "accounts")
    assert table.num_rows == result.records == len(expected) == 40
    assert sorted(table.column("key.id").to_pylist()) == sorted(r["key"]["id"] for r in expected)


def test_parquet_into_gz_is_gzip_compressed_parquet(make_emulator, write_config):
    emu = make_emulator(part_size=15)
    path = write_config(config_text(emu, tables='["users"]', fmt="parquet"))
    (result,) = apply(path, emu)
    assert result.status == "ok", result.error
    assert result.files[0].endswith(".parquet.gz")
    assert _read(result.files[0]).num_rows == len(emu.expected_snapshot("canvas", "users"))


def _no_pyarrow(name: str) -> object:
    if name.split(".")[0] == "pyarrow":
        raise ModuleNotFoundError(f"No module named {name!r}")
    return importlib.import_module(name)


@pytest.mark.parametrize("command", ["validate", "plan", "apply"])
def test_parquet_without_pyarrow_is_refused_before_any_job(
    command, make_emulator, write_config, run_cli
):
    # Issue "Tried as a new user would": without pyarrow every job ran, then the merge failed.
    emu = make_emulator()
    path = write_config(config_text(emu, tables='["accounts"]', fmt="parquet"))

    result = run_cli(command, str(path), environ=environ(emu), importer=_no_pyarrow)

    assert result.code == 1
    assert f"{path}:" in result.stderr and "targets[0].format" in result.stderr
    assert "needs pyarrow" in result.stderr and "pip install 'dapctl[parquet]'" in result.stderr
    assert emu.stats.jobs_created == 0


def test_require_extras_passes_when_the_import_works_or_no_target_needs_it(
    make_emulator, write_config
):
    emu = make_emulator()
    parquet = load_config(write_config(config_text(emu, fmt="parquet"), name="p.toml"))
    jsonl = load_config(write_config(config_text(emu), name="j.toml"))
    require_extras(parquet)
    require_extras(jsonl, importer=_no_pyarrow)
    with pytest.raises(ConfigError, match="needs pyarrow"):
        require_extras(parquet, importer=_no_pyarrow)

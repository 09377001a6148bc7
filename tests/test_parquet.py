"""format = "parquet": the parts of a job merge into one Parquet file (pyarrow, the
``parquet`` extra, is in the test extras so this always runs)."""

from __future__ import annotations

import gzip
import io

import pyarrow.parquet as pq

from tests.apply_helpers import apply, config_text


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

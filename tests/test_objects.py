"""Outputs in object storage (issue 12), against moto's real S3 server on 127.0.0.1.

An ``s3://`` output template writes each job as one new object: whole or not at all, never
over an existing one (conditional create, 412), with sha256, bytes and records recorded as
for files. ``dapctl apply`` writes JSON Lines, CSV and Parquet objects and then an
incremental; a killed upload or apply leaves nothing visible, the next run aborts the
unfinished upload and sweeps the staging folder; an object uploaded but never recorded is
recognised by its sha256, and someone else's is never replaced. The config's refusals and a
bucket's faults are in ``test_objects_faults.py``.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError

from dapctl.apply import ApplyOptions
from dapctl.buckets import Bucket
from dapctl.config import Target
from dapctl.loading import load_config
from dapctl.outputs.objects import STAGE, ObjectDestination
from dapctl.text import compact_time
from dapctl.wiring import run_apply
from tests.apply_helpers import FAST, apply, config_text, environ, expected_rows, replay

TEMPLATE = "{profile}/{table}/{kind}-{timestamp}.{format}.gz"


def _target(name: str, fmt: str, output: str) -> str:
    fields = f'name = "{name}"\ntables = ["accounts"]\nformat = "{fmt}"\noutput = "{output}"'
    return f"\n[[targets]]\n{fields}\n"


def _rows(data: bytes, fmt: str) -> int:
    data = gzip.decompress(data)
    if fmt == "parquet":
        return int(pq.read_table(io.BytesIO(data)).num_rows)
    if fmt == "csv":
        return len(list(csv.reader(io.StringIO(data.decode())))) - 1  # the header
    return len(data.decode().splitlines())


def _records(data: bytes) -> list[dict]:
    return [json.loads(line) for line in gzip.decompress(data).decode().splitlines() if line]


def _stages() -> list[str]:
    mine = f"-{os.getpid()}."
    return [
        n for n in os.listdir(tempfile.gettempdir()) if n.startswith(f".{STAGE}.") and mine in n
    ]


def _check_landed(result, step: dict, s3) -> bytes:
    """The object is where the state and the result say, and is what they say it is."""
    (url,) = result.files
    assert url.startswith(s3.url()) and url.endswith(".gz") and step["files"] == [url]
    data = s3.read(url)
    assert step["sha256"] == hashlib.sha256(data).hexdigest()
    assert step["bytes"] == len(data) == result.bytes
    fmt = {"core": "jsonl", "flat": "csv", "columnar": "parquet"}[result.target]
    assert _rows(data, fmt) == result.records == step["records"]
    return data


def test_apply_writes_jsonl_csv_and_parquet_objects_then_an_incremental(
    s3, make_emulator, write_config
):
    emu = make_emulator(part_size=7)
    more = _target("flat", "csv", s3.url("csv/" + TEMPLATE)) + _target(
        "columnar", "parquet", s3.url("parquet/" + TEMPLATE)
    )
    path = write_config(config_text(emu, output=s3.url("jsonl/" + TEMPLATE), extra_target=more))
    state_path = path.parent / "state" / "dapctl.state.json"
    jsonl: dict[str, list[bytes]] = {"accounts": [], "users": []}
    for round_ in range(2):
        if round_:
            emu.advance(3600)
            emu.change("canvas", "accounts", inserts=3, updates=2, deletes=1)
            emu.change("canvas", "users", inserts=2, deletes=1)
        results = apply(path, emu)
        assert [r.status for r in results] == ["ok"] * 4, [r.error for r in results]
        steps = json.loads(state_path.read_text())["steps"]
        for result in results:
            data = _check_landed(result, steps[result.address], s3)
            if result.target == "core":
                jsonl[result.table].append(data)
    assert [len(s3.objects(p)) for p in ("jsonl/", "csv/", "parquet/")] == [4, 2, 2]
    for table, objects in jsonl.items():
        expected = expected_rows(emu.expected_snapshot("canvas", table))
        assert replay([_records(d) for d in objects]) == expected
    assert _stages() == [], "the staging folders are removed"


def test_a_conditional_create_refuses_to_replace_an_object(s3, tmp_path):
    # moto's own semantics first: the 412 dapctl relies on.
    s3.client.put_object(Bucket=s3.bucket, Key="k", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as refused:
        s3.client.put_object(Bucket=s3.bucket, Key="k", Body=b"second", IfNoneMatch="*")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412

    bucket = Bucket("s3", s3.bucket)
    local = tmp_path / "one"
    local.write_bytes(b"one")
    assert bucket.put_once(local, "obj", metadata={"dapctl-sha256": "x"}) is True
    local.write_bytes(b"two")
    assert bucket.put_once(local, "obj", metadata={"dapctl-sha256": "y"}) is False
    assert s3.read(s3.url("obj")) == b"one"
    assert bucket.metadata("obj") == {"dapctl-sha256": "x"}


def _multipart_bucket(name: str) -> Bucket:
    bucket = Bucket("s3", name)
    bucket.chunksize = 5 << 20  # S3's smallest part: a few MiB make a multipart upload
    return bucket


def test_a_large_object_is_one_multipart_upload_completed_only_at_the_end(s3, tmp_path):
    local = tmp_path / "big"
    local.write_bytes(os.urandom(11 << 20))
    bucket = _multipart_bucket(s3.bucket)
    assert bucket.put_once(local, "big", metadata={})
    assert s3.read(s3.url("big")) == local.read_bytes()
    etag = s3.client.head_object(Bucket=s3.bucket, Key="big")["ETag"]
    assert etag.endswith('-3"'), "three parts of one multipart upload"
    other = tmp_path / "other"
    other.write_bytes(os.urandom(11 << 20))
    assert bucket.put_once(other, "big", metadata={}) is False  # the completion is conditional
    assert s3.read(s3.url("big")) == local.read_bytes()
    assert s3.uploads() == [], "the refused upload was aborted"


UPLOAD = """
import sys
from pathlib import Path
from tests.test_objects import _multipart_bucket

_multipart_bucket(sys.argv[1]).put_once(Path(sys.argv[2]), sys.argv[3], metadata={})
"""


def _parts_uploaded(s3, key: str) -> int:
    uploads = s3.client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", [])
    for upload in uploads:
        if upload["Key"] == key:
            parts = s3.client.list_parts(Bucket=s3.bucket, Key=key, UploadId=upload["UploadId"])
            return len(parts.get("Parts", []))
    return 0


def test_a_killed_upload_leaves_no_object_and_the_next_writer_aborts_it(s3, tmp_path):
    local = tmp_path / "big.jsonl.gz"
    local.write_bytes(os.urandom(30 << 20))  # six parts
    key = "killed/big.jsonl.gz"
    child = subprocess.Popen(
        [sys.executable, "-c", UPLOAD, s3.bucket, str(local), key],
        env={**os.environ, **s3.server.environ},
        cwd=Path(__file__).resolve().parent.parent,
    )
    deadline = time.monotonic() + 60
    while _parts_uploaded(s3, key) < 1 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL, "the kill was meant to land mid-upload"
    assert s3.objects() == [], "nothing visible"
    assert s3.uploads() == [key], "an unfinished upload is left"

    # apply discards the unrecorded output of a job it forgets: the upload goes with it.
    target = Target.model_validate(
        {"name": "t", "tables": ["a"], "output": s3.url("killed/{table}-{timestamp}.jsonl.gz")}
    )
    ObjectDestination(target).discard(s3.url(key))
    assert s3.uploads() == [] and s3.objects() == []


def test_the_next_apply_aborts_an_unfinished_upload_of_the_object_it_writes(
    s3, make_emulator, write_config
):
    emu = make_emulator()
    path = write_config(
        config_text(emu, tables='["accounts"]', output=s3.url("t/{table}-{timestamp}.jsonl.gz"))
    )
    key = f"t/accounts-{compact_time(emu.now)}.jsonl.gz"  # the snapshot's object
    upload = s3.client.create_multipart_upload(Bucket=s3.bucket, Key=key)  # as a killed run
    s3.client.upload_part(
        Bucket=s3.bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=b"x" * 100
    )

    (result,) = apply(path, emu)

    assert result.status == "ok", result.error
    assert result.files == (s3.url(key),)
    assert s3.uploads() == []


# -- written once ---------------------------------------------------------------------------


class UploadThenDie(Bucket):
    """Uploads, then fails as if the process died before the state recorded the object."""

    def put_once(self, local, key, **kwargs):
        super().put_once(local, key, **kwargs)
        raise RuntimeError("killed after the upload")


def _apply_with(path, emu, bucket=None):
    loaded = load_config(path)
    return run_apply(
        loaded,
        environ=environ(emu),
        options=ApplyOptions(),
        connection=FAST,
        destinations=lambda target: ObjectDestination(target, bucket=bucket),
    )


def test_an_object_uploaded_but_never_recorded_is_recognised_not_replaced(
    s3, make_emulator, write_config
):
    emu = make_emulator()
    output = s3.url("{table}-{timestamp}.jsonl.gz")
    path = write_config(config_text(emu, tables='["accounts"]', output=output))
    (died,) = _apply_with(path, emu, UploadThenDie("s3", s3.bucket))
    assert died.status == "failed"
    (key,) = s3.objects()
    first = s3.client.head_object(Bucket=s3.bucket, Key=key)
    created = emu.stats.jobs_created

    (result,) = _apply_with(path, emu)

    assert result.status == "ok", result.error
    assert result.files == (s3.url(key),) and emu.stats.jobs_created == created
    assert any("found whole in the bucket already" in note for note in result.notes)
    again = s3.client.head_object(Bucket=s3.bucket, Key=key)
    assert again["ETag"] == first["ETag"] and again["LastModified"] == first["LastModified"]
    data = s3.read(s3.url(key))
    assert result.bytes == len(data)
    state = json.loads((path.parent / "state" / "dapctl.state.json").read_text())
    assert state["steps"][result.address]["sha256"] == hashlib.sha256(data).hexdigest()


def test_an_object_of_someone_else_at_the_same_key_is_never_replaced(
    s3, make_emulator, write_config
):
    emu = make_emulator()
    output = s3.url("{table}-{timestamp}.jsonl.gz")
    path = write_config(config_text(emu, tables='["accounts"]', output=output))
    key = f"accounts-{compact_time(emu.now)}.jsonl.gz"
    s3.client.put_object(Bucket=s3.bucket, Key=key, Body=b"not dapctl's")

    (result,) = _apply_with(path, emu)

    assert result.status == "failed"
    assert f"{s3.url(key)} exists already with other contents" in result.error.message
    assert s3.read(s3.url(key)) == b"not dapctl's"


def test_the_readmes_lifecycle_rule_is_one_s3_accepts(s3):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Outputs in object storage") :]
    (rule,) = re.findall(r"`(\{\"Rules\".+?\}\]\})`", section, re.S)
    configuration = json.loads(rule.replace("\n  ", " "))
    s3.client.put_bucket_lifecycle_configuration(
        Bucket=s3.bucket, LifecycleConfiguration=configuration
    )
    (stored,) = s3.client.get_bucket_lifecycle_configuration(Bucket=s3.bucket)["Rules"]
    assert stored["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}


def _stage_of(pid: int) -> list[str]:
    return [
        n
        for n in os.listdir(tempfile.gettempdir())
        if n.startswith(f".{STAGE}.") and f"-{pid}." in n
    ]


def test_an_apply_killed_mid_download_shows_nothing_and_the_next_one_finishes(
    s3, make_emulator, write_config
):
    emu = make_emulator(rows={"canvas.accounts": 20_000}, part_size=400)
    output = s3.url("k/{table}-{timestamp}.jsonl.gz")
    path = write_config(config_text(emu, tables='["accounts"]', output=output))
    child = subprocess.Popen(
        [sys.executable, "-m", "dapctl", "apply", str(path)],
        env={**os.environ, **s3.server.environ, **environ(emu)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while emu.stats.downloads < 8 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL, "the kill was meant to land mid-download"
    assert _stage_of(child.pid), "its parts were staged locally"
    assert s3.objects() == [] and s3.uploads() == [], "nothing in the bucket"

    (result,) = apply(path, emu)

    assert result.status == "ok" and emu.stats.jobs_created == 1, "the job was resumed"
    data = s3.read(result.files[0])
    assert _rows(data, "jsonl") == result.records == 20_000
    assert _stage_of(child.pid) == [], "the killed process's staging folder is swept"


def test_a_database_target_also_writes_its_objects(s3, make_emulator, write_config):
    import duckdb

    emu = make_emulator()
    text = config_text(
        emu,
        tables='["accounts"]',
        output=s3.url("db/{table}-{timestamp}.jsonl.gz"),
        extra_target='database = "wh"',
    )
    path = write_config(text + '\n[databases.wh]\nurl = "duckdb:///wh.duckdb"\n')

    (result,) = apply(path, emu)

    assert result.status == "ok", result.error
    url, _table = result.files
    assert url.startswith(s3.url("db/accounts-")) and _rows(s3.read(url), "jsonl") == 40
    with duckdb.connect(str(path.parent / "wh.duckdb"), read_only=True) as db:
        (count,) = db.execute("select count(*) from canvas.accounts").fetchone()
    assert count == result.records == 40

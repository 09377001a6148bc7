"""Outputs in object storage: the config's refusals and the faults of a bucket, against
moto's S3 server on 127.0.0.1 (issue 12).

A bucket URL with credentials, a query, no bucket, a templated bucket or no ``{timestamp}``
is refused at validate, naming the key and never echoing the URL; a missing extra is named
by ``validate``, ``plan`` and ``apply`` before any job. A missing bucket, missing or refused
credentials, an unreachable endpoint or a bucket that may not be written fail the step with
an error naming the bucket, never a secret, and write nothing; the first three before a job
is started.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import socket

import pytest
import requests

from dapctl.buckets import Bucket
from tests.apply_helpers import config_text, environ
from tests.s3_fixtures import SECRET_KEY


def _snapshot_config(emu, output: str) -> str:
    return config_text(emu, tables='["accounts"]', output=output)


def _apply_cli(run_cli, path, emu):
    result = run_cli("apply", str(path), environ=environ(emu))
    assert SECRET_KEY not in result.stdout + result.stderr
    return result


def test_a_missing_bucket_fails_the_step_naming_the_bucket(
    s3, make_emulator, write_config, run_cli
):
    emu = make_emulator()
    path = write_config(
        _snapshot_config(emu, "s3://no-such-bucket-here/{table}-{timestamp}.jsonl.gz")
    )
    result = _apply_cli(run_cli, path, emu)
    assert result.code == 1
    assert "OutputError: s3://no-such-bucket-here: no such bucket" in result.stdout
    assert emu.stats.jobs_created == 0  # checked before a job of the quota was spent


def test_missing_credentials_are_named_not_printed(
    s3, make_emulator, write_config, run_cli, monkeypatch, tmp_path
):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    emu = make_emulator()
    path = write_config(_snapshot_config(emu, s3.url("{table}-{timestamp}.jsonl.gz")))
    result = _apply_cli(run_cli, path, emu)
    assert result.code == 1
    assert f"{s3.url()[:-1]}: cannot use the bucket: no usable credentials were found" in (
        result.stdout
    )
    assert "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in result.stdout  # the remedy
    assert emu.stats.jobs_created == 0


def test_refused_credentials_are_named_not_printed(
    s3, make_emulator, write_config, run_cli, monkeypatch
):
    emu = make_emulator()
    path = write_config(_snapshot_config(emu, s3.url("{table}-{timestamp}.jsonl.gz")))
    with moto_auth(s3):
        result = _apply_cli(run_cli, path, emu)
    assert result.code == 1
    # A HEAD answer has no body to tell a refused key from a refused action.
    assert f"{s3.url()[:-1]}: cannot use the bucket: access denied" in result.stdout
    assert "the credentials in use were refused" in result.stdout


def test_an_unreachable_endpoint_is_named(s3, make_emulator, write_config, run_cli, monkeypatch):
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    emu = make_emulator()
    path = write_config(_snapshot_config(emu, s3.url("{table}-{timestamp}.jsonl.gz")))
    result = _apply_cli(run_cli, path, emu)
    assert result.code == 1
    assert (
        f"{s3.url()[:-1]}: cannot use the bucket: cannot reach the object store at "
        f"http://127.0.0.1:{port}"
    ) in result.stdout


def test_a_bucket_without_write_permission_fails_the_step_and_writes_nothing(
    s3, make_emulator, write_config, run_cli, monkeypatch
):
    reader = _read_only_user(s3)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", reader["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", reader["SecretAccessKey"])
    emu = make_emulator()
    path = write_config(_snapshot_config(emu, s3.url("{table}-{timestamp}.jsonl.gz")))
    with moto_auth(s3):
        result = _apply_cli(run_cli, path, emu)
    assert reader["SecretAccessKey"] not in result.stdout + result.stderr
    assert result.code == 1
    assert "cannot upload accounts-" in result.stdout and "access denied" in result.stdout
    assert s3.objects() == [] and s3.uploads() == []


def _read_only_user(s3) -> dict:
    iam = s3.server.client_for("iam")
    name = f"reader-{s3.bucket}"
    iam.create_user(UserName=name)
    arn = f"arn:aws:s3:::{s3.bucket}"
    actions = ["s3:ListBucket", "s3:HeadBucket", "s3:GetObject", "s3:ListBucketMultipartUploads"]
    policy = {"Effect": "Allow", "Action": actions, "Resource": [arn, f"{arn}/*"]}
    document = json.dumps({"Version": "2012-10-17", "Statement": [policy]})
    iam.put_user_policy(UserName=name, PolicyName="read-only", PolicyDocument=document)
    return dict(iam.create_access_key(UserName=name)["AccessKey"])


@contextlib.contextmanager
def moto_auth(s3):
    """moto checks credentials and IAM policies while this lasts (a setting of the server's
    process, which serves this test process only)."""
    requests.post(f"{s3.server.endpoint}/moto-api/reset-auth", data=b"0", timeout=10)
    try:
        yield
    finally:
        requests.post(f"{s3.server.endpoint}/moto-api/reset-auth", data=b"inf", timeout=10)


LEAKED = "hunter2-Secret-Key"


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (f"s3://AKIAEXAMPLE:{LEAKED}@bucket/{{table}}-{{timestamp}}.jsonl.gz", "holds credentials"),
        (f"s3://{LEAKED}@bucket/{{table}}-{{timestamp}}.jsonl.gz", "holds credentials"),
        (f"s3://bucket/{{table}}-{{timestamp}}.jsonl.gz?X-Amz-Signature={LEAKED}", "no ?query"),
        ("s3:///{table}-{timestamp}.jsonl.gz", "names no bucket"),
        ("s3://{profile}/{table}-{timestamp}.jsonl.gz", "write the bucket out"),
        ("s3://bucket", "no object path"),
        ("s3://bucket/", "no object path"),
        ("ftp://host/{table}-{timestamp}.jsonl.gz", "not ftp://"),
        ("s3://bucket/../{table}-{timestamp}.jsonl.gz", "'..' is not allowed"),
        ("s3://bucket/x/{table}.jsonl.gz", "written once and never replaced"),
    ],
)
def test_bad_bucket_urls_are_refused_at_validate_without_echoing_them(
    output, expected, make_emulator, write_config, run_cli
):
    emu = make_emulator()
    text = config_text(emu, tables='["accounts"]', output=output, extra_target='sync = "snapshot"')
    result = run_cli("validate", str(write_config(text)), environ=environ(emu))
    assert result.code == 1, result
    assert "targets[0].output" in result.stderr and expected in result.stderr, result.stderr
    assert LEAKED not in result.stdout + result.stderr


@pytest.mark.parametrize("scheme", ["s3", "gs", "gcs", "az", "abfs"])
def test_bucket_urls_validate_and_local_confinement_does_not_apply(
    scheme, make_emulator, write_config, run_cli
):
    emu = make_emulator()
    output = f"{scheme}://my-bucket/exports/{{profile}}/{{table}}/{{kind}}-{{timestamp}}.jsonl.gz"
    path = write_config(config_text(emu, output=output))
    result = run_cli("validate", str(path), environ=environ(emu), importer=lambda name: None)
    assert result.code == 0, result.stderr


def _without(module: str):
    def importer(name: str) -> object:
        if name.split(".")[0] == module:
            raise ModuleNotFoundError(f"No module named {name!r}")
        return importlib.import_module(name)

    return importer


@pytest.mark.parametrize("command", ["validate", "plan", "apply"])
@pytest.mark.parametrize(
    ("scheme", "module", "extra"),
    [("s3", "s3fs", "s3"), ("gs", "gcsfs", "gcs"), ("az", "adlfs", "azure")],
)
def test_a_missing_extra_is_named_before_any_job(
    command, scheme, module, extra, make_emulator, write_config, run_cli
):
    emu = make_emulator()
    output = f"{scheme}://my-bucket/{{table}}-{{timestamp}}.jsonl.gz"
    path = write_config(config_text(emu, output=output))

    result = run_cli(command, str(path), environ=environ(emu), importer=_without(module))

    assert result.code == 1
    assert f"{path}:" in result.stderr and "targets[0].output" in result.stderr
    assert f"{scheme}:// needs {module}" in result.stderr
    assert f"pip install 'dapctl[{extra}]'" in result.stderr
    assert emu.stats.jobs_created == 0


def test_the_s3_specific_endpoint_variable_wins(s3, monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing there
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3.server.endpoint)
    local = tmp_path / "x"
    local.write_bytes(b"x")
    bucket = Bucket("s3", s3.bucket)
    bucket.check()
    assert bucket.put_once(local, "x", metadata={})
    assert s3.read(s3.url("x")) == b"x"

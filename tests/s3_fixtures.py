"""S3 for tests: moto's real server on 127.0.0.1, reached the way a user reaches MinIO or R2.

``s3_server`` (one per test process) starts moto's ``ThreadedMotoServer`` on a free port,
answering with one ``Server`` header (as the aiohttp that s3fs uses here insists); ``s3``
points this process at it through the standard variables (``AWS_ENDPOINT_URL``, test
credentials) and makes a bucket of the test's own. ``environ`` gives the same variables for
a ``dapctl`` subprocess. Without moto the tests skip, except in CI (``CI=true``), where
they fail (``tests/needs.py``): nothing skips silently there.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.needs import unavailable

ACCESS_KEY, SECRET_KEY = "testing", "moto-test-secret-not-for-output"


@dataclass
class S3Server:
    endpoint: str

    @property
    def environ(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self) -> Any:
        return self.client_for("s3")

    def client_for(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )


@dataclass
class S3:
    server: S3Server
    bucket: str
    client: Any

    def url(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key}"

    def read(self, url: str) -> bytes:
        assert url.startswith(self.url()), url
        key = url.removeprefix(self.url())
        return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def objects(self, prefix: str = "") -> list[str]:
        listed = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def uploads(self) -> list[str]:
        listed = self.client.list_multipart_uploads(Bucket=self.bucket)
        return [upload["Key"] for upload in listed.get("Uploads", [])]


def _require_moto() -> Any:
    try:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from moto.server import ThreadedMotoServer
        from werkzeug.serving import make_server
    except ImportError:
        unavailable("moto[server]", "not installed; pip install -e '.[test]'")

    class OneServerHeader(ThreadedMotoServer):  # type: ignore[misc]
        """moto's server, answering with one ``Server`` header, not two.

        moto's answers carry ``Server: AmazonS3`` and Werkzeug adds its own; aiohttp 3.13
        (which instructure-dap-client pins, and s3fs talks through) refuses an answer with
        two. Real S3 sends one. The rest is moto 5's ``ThreadedMotoServer`` as it is.
        """

        def _server_entry(self) -> None:
            app = _without_server_header(DomainDispatcherApplication(create_backend_app))
            self._server = make_server(self._ip_address, self._port, app, True)
            self._server_ready_event.set()
            self._server.serve_forever()

    return OneServerHeader


def _without_server_header(app: Any) -> Any:
    def wrapped(environ: dict[str, Any], start_response: Any) -> Any:
        def start(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            kept = [(k, v) for k, v in headers if k.lower() != "server"]
            return start_response(status, kept, *exc_info)

        return app(environ, start)

    return wrapped


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server_class = _require_moto()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = server_class(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3:
    """This process pointed at the emulator by the standard variables; a new bucket."""
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_server.environ.items():
        monkeypatch.setenv(name, value)
    client = s3_server.client()
    bucket = f"dapctl-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return S3(s3_server, bucket, client)

"""TLS: verification is always on, ``ca_bundle`` trusts an inspecting proxy's CA, and no
environment variable can switch verification off. Served by a small HTTPS login stub on
127.0.0.1 with a self-signed certificate made by the openssl command line."""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")

SECRET = "tls-test-secret-5f1d"


def _jwt() -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256'})}.{part({'exp': int(time.time()) + 3600})}.c2ln"


class _Login(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"access_token": _jwt(), "expires_in": 3600, "token_type": "bearer"})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def https_url(certificate: tuple[Path, Path]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Login)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _config(url: str, extra: str = "") -> str:
    return f"""
[retry]
attempts = 2
initial_backoff = 0.01
max_backoff = 0.02

[profiles.univ_a]
base_url = "{url}"
client_id = "id"
client_secret_env = "SECRET"
{extra}

[[targets]]
name = "core"
tables = ["accounts"]
"""


def test_an_untrusted_certificate_fails_with_a_ca_bundle_hint(https_url, write_config, run_cli):
    path = write_config(_config(https_url))
    result = run_cli("token", str(path), "--profile", "univ_a", environ={"SECRET": SECRET})
    assert result.code == 1 and result.stdout == ""
    assert "the TLS handshake failed" in result.stderr and "ca_bundle" in result.stderr
    assert SECRET not in result.stderr


def test_ca_bundle_trusts_the_given_ca(https_url, certificate, write_config, run_cli):
    cert, _ = certificate
    path = write_config(_config(https_url, f'ca_bundle = "{cert}"'))
    result = run_cli("token", str(path), "--profile", "univ_a", environ={"SECRET": SECRET})
    assert result.code == 0, result.stderr
    assert result.stdout.count(".") == 2


@pytest.mark.parametrize("verify", [False, ""])
def test_no_request_can_switch_verification_off(https_url, verify):
    # An empty CURL_CA_BUNDLE has, in some requests versions, reached the adapter as
    # verify="" and disabled the checks; verify=False is what careless code passes.
    import requests

    from dapctl.api.session import _session

    with _session(2) as session, pytest.raises(requests.exceptions.SSLError):
        session.post(https_url + "/ids/auth/login", verify=verify, timeout=5)


def test_requests_ca_bundle_from_the_environment_is_honoured(
    https_url, certificate, write_config, run_cli, monkeypatch
):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate[0]))
    path = write_config(_config(https_url))
    result = run_cli("token", str(path), "--profile", "univ_a", environ={"SECRET": SECRET})
    assert result.code == 0, result.stderr


def test_a_missing_ca_bundle_is_a_config_error(write_config, run_cli):
    path = write_config(_config("https://example.invalid", 'ca_bundle = "nope.pem"'))
    result = run_cli("validate", str(path), environ={"SECRET": SECRET})
    assert result.code == 1
    assert "profiles.univ_a.ca_bundle" in result.stderr and "nope.pem" in result.stderr

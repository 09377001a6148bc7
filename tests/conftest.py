"""Shared fixtures. Every test runs with a private, empty $HOME and no DAP_* variables, so
nothing a test does can touch the developer's real files or credentials."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from dapctl.cli import main

pytest_plugins = [
    "tests.clock",
    "tests.emulator_fixtures",
    "tests.stubs",
    "tests.s3_fixtures",
    "tests.postgres_fixtures",
    "tests.mysql_fixtures",
    "tests.object_stores",
]


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    for var in ("DAP_CLIENT_ID", "DAP_CLIENT_SECRET", "DAP_API_URL", "NO_COLOR"):
        monkeypatch.delenv(var, raising=False)
    return home


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli() -> Callable[..., Result]:
    """Run ``dapctl`` in-process through ``main(argv)`` with its own streams and environment."""

    def run(
        *argv: str,
        environ: Mapping[str, str] | None = None,
        importer: Callable[[str], object] | None = None,
    ) -> Result:
        out, err = io.StringIO(), io.StringIO()
        code = main(
            list(argv), stdout=out, stderr=err, environ=dict(environ or {}), importer=importer
        )
        return Result(code, out.getvalue(), err.getvalue())

    return run


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write a config file into the test's folder and return its path."""

    def write(text: str, name: str = "dapctl.toml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write

"""The engine registry: schemes and aliases, drivers imported lazily and named by their
extra, capabilities, and the callers that plan by them instead of asking for a scheme."""

from __future__ import annotations

import importlib
import tomllib
import types
from pathlib import Path

import pytest

from dapctl.databases import registry
from dapctl.databases.columns import ColumnType
from dapctl.databases.registry import ENGINES, Capabilities, Engine, engine_of, open_database
from dapctl.errors import ConfigError
from dapctl.loading import load_config
from dapctl.outputs.tables import Databases

ROOT = Path(__file__).resolve().parents[2]
IDS = [e.scheme for e in ENGINES]


def test_an_unknown_scheme_lists_every_registered_one(tmp_path):
    with pytest.raises(ConfigError) as caught:
        open_database("mssql://u:hunter2@h/db", base_dir=tmp_path)
    text = str(caught.value)
    assert ", ".join(f"{e.scheme}://" for e in ENGINES) in text
    assert "hunter2" not in text


def test_the_list_is_the_registry_s_own():
    extra = Engine("mssql", "x.mssql", "pymssql", "mssql", Capabilities(("jsonl", None), False))
    assert engine_of("MSSQL://h/db", (*ENGINES, extra)) is extra
    with pytest.raises(ConfigError, match=r"one of mssql://\Z"):
        engine_of("duckdb:///x.duckdb", (extra,))


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("postgres://h/d", "postgresql"),
        ("POSTGRESQL+psycopg://h/d", "postgresql"),
        ("postgresql://h/d", "postgresql"),
        ("DuckDB:///x.duckdb", "duckdb"),
        ("mysql://h/d", "mysql"),
        ("MariaDB://h/d", "mysql"),
        ("mysql+pymysql://h/d", "mysql"),
    ],
)
def test_aliases_name_their_engine(url, scheme):
    assert engine_of(url).scheme == scheme


@pytest.mark.parametrize("engine", ENGINES, ids=IDS)
def test_a_missing_driver_names_the_extra_and_imports_no_backend(engine, tmp_path):
    asked: list[str] = []

    def importer(name):
        asked.append(name)
        raise ImportError(f"No module named {name!r}")

    with pytest.raises(ConfigError) as caught:
        open_database(f"{engine.scheme}:///x", base_dir=tmp_path, importer=importer)
    assert caught.value.hint == f"pip install 'dapctl[{engine.extra}]'"
    assert engine.driver in str(caught.value)
    assert asked == [engine.driver]


@pytest.mark.parametrize("engine", ENGINES, ids=IDS)
def test_a_url_opens_through_its_engine_s_module(engine, tmp_path):
    """The registry line is all that routes a URL: its module's ``open_url`` gets the URL,
    the base folder and the sleeper."""
    opened = object()
    calls = []
    fake = types.ModuleType(engine.module)
    fake.open_url = lambda url, **kwargs: calls.append((url, kwargs)) or opened  # type: ignore[attr-defined]

    def importer(name):
        return fake if name == engine.module else importlib.import_module(name)

    url = f"{engine.scheme}:///x"
    assert open_database(url, base_dir=tmp_path, importer=importer, sleep=print) is opened
    assert calls == [(url, {"base_dir": tmp_path, "sleep": print})]


@pytest.mark.parametrize("engine", ENGINES, ids=IDS)
def test_every_engine_is_wired_up(engine):
    """Its backend module has the opener and a type mapper spelling every neutral type, and
    pyproject declares its extra with its driver."""
    backend = importlib.import_module(engine.module)
    assert callable(backend.open_url)
    assert all(backend.TYPES.spell(kind) for kind in ColumnType)
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert any(r.lower().startswith(engine.driver) for r in extras[engine.extra])


def test_capabilities():
    assert registry.capabilities("postgres://h/d") == Capabilities(("tsv", "condensed"), False)
    assert registry.capabilities("duckdb:///x.duckdb") == Capabilities(("jsonl", None), True)
    assert registry.capabilities("mysql://h/d") == Capabilities(("jsonl", None), False)
    assert registry.wire_format("postgresql://h/d") == ("tsv", "condensed")
    with pytest.raises(ConfigError, match="unsupported database URL"):
        registry.capabilities("sqlite:///x.db")


def test_a_load_shares_the_connection_only_on_a_single_writer(backend, write_config):
    path = write_config(
        f'[databases.wh]\nurl = "{backend.url}"\n[profiles.p]\nemulator = true\n'
        '[[targets]]\nname = "t"\nnamespace = "canvas"\ntables = ["users"]\ndatabase = "wh"\n'
    )
    config = load_config(path).config
    single = registry.capabilities(backend.url).single_writer
    with Databases(config, base_dir=path.parent, environ={}) as databases:
        shared = databases.get("wh")
        with databases.for_load("wh") as first:
            assert (first is shared) is single
        with databases.for_load("wh") as second:
            assert (second is first) is single

"""One reading of a setting given as itself, as ``*_env`` or as ``*_file`` (``secret_sources``).

The same resolver reads a profile's secret, a database's URL and the state's location, so
they fail and warn alike: here through ``resolve_source`` itself, a database's ``url_file``
at plan and apply (not only at validate) and the state's ``state_env`` through
``open_store``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dapctl.errors import ConfigError
from dapctl.loading import load_config
from dapctl.outputs.tables import Databases
from dapctl.secret_sources import MissingCredentialError, resolve_source
from dapctl.state.local import LocalStateStore
from dapctl.state.store import open_store

EMULATED = "[profiles.univ_a]\nemulator = true\n"
TWO_TABLES = '\n[[targets]]\nname = "core"\ntables = ["accounts", "courses"]\ndatabase = "wh"\n'
posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


def resolve(tmp_path: Path, environ=None, **given):
    return resolve_source(
        "url",
        value=given.get("value"),
        env=given.get("env"),
        file=given.get("file"),
        where=lambda key: f"databases.wh.{key}",
        environ=environ or {},
        base_dir=tmp_path,
    )


@posix_only
def test_the_three_forms_and_the_warning_about_a_file_others_may_read(tmp_path):
    (tmp_path / "wh.url").write_text("duckdb:///from-file.duckdb\n")
    (tmp_path / "wh.url").chmod(0o600)

    assert resolve(tmp_path, value="duckdb:///as-is.duckdb") == ("duckdb:///as-is.duckdb", ())
    assert resolve(tmp_path, {"WH_URL": " duckdb:///env \n"}, env="WH_URL") == (
        "duckdb:///env",
        (),
    )
    assert resolve(tmp_path, file="wh.url") == ("duckdb:///from-file.duckdb", ())
    assert resolve(tmp_path) is None
    (tmp_path / "wh.url").chmod(0o640)
    _, warnings = resolve(tmp_path, file="wh.url")
    assert warnings == (
        f"databases.wh.url_file: secret file {tmp_path / 'wh.url'} is readable by others; "
        "chmod 600 it",
    )


def test_what_is_missing_is_named_never_shown(tmp_path):
    with pytest.raises(MissingCredentialError, match="url_env: environment variable WH_URL is"):
        resolve(tmp_path, env="WH_URL")
    with pytest.raises(MissingCredentialError, match=r"url_file: secret file .*wh\.url does not"):
        resolve(tmp_path, file="wh.url")
    (tmp_path / "wh.url").write_text("  \n")
    with pytest.raises(MissingCredentialError, match=r"wh\.url is empty"):
        resolve(tmp_path, file="wh.url")
    with pytest.raises(ConfigError, match="url: is empty"):
        resolve(tmp_path, value=" ")


@posix_only
@pytest.mark.parametrize("command", ["plan", "apply"])
def test_a_url_file_others_may_read_warns_at_plan_and_apply_once(command, write_config, run_cli):
    path = write_config('[databases.wh]\nurl_file = "wh.url"\n' + EMULATED + TWO_TABLES)
    url_file = path.parent / "wh.url"
    url_file.write_text("duckdb:///wh.duckdb\n")
    url_file.chmod(0o644)

    result = run_cli(command, str(path))

    assert result.code == 0, result
    warning = f"databases.wh.url_file: secret file {url_file} is readable by others; chmod 600"
    assert result.stderr.count(warning) == 1, result.stderr  # two tables, one warning


def test_a_database_url_env_fails_as_validate_says(write_config):
    path = write_config('[databases.wh]\nurl_env = "WH_URL"\n' + EMULATED + TWO_TABLES)
    databases = Databases(load_config(path).config, base_dir=path.parent, environ={})

    with pytest.raises(MissingCredentialError, match="environment variable WH_URL is not set"):
        databases.url("wh")


def test_the_state_env_is_read_by_the_same_resolver(write_config, tmp_path):
    target = '\n[[targets]]\nname = "core"\ntables = ["accounts"]\n'
    path = write_config('[settings]\nstate_env = "STATE_URL"\n' + EMULATED + target)
    loaded = load_config(path)

    with pytest.raises(MissingCredentialError) as caught:
        open_store(loaded, environ={})
    store = open_store(loaded, environ={"STATE_URL": " elsewhere.json\n"})

    assert "settings.state_env: environment variable STATE_URL is not set" in str(caught.value)
    assert isinstance(store, LocalStateStore)
    assert store.location == str(tmp_path / "elsewhere.json")

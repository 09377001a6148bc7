"""``plan --refresh`` shows each database table's pending schema changes; ``plan`` and the
``state`` commands read database targets' records from their databases."""

from __future__ import annotations

import json

import pytest

from tests.apply_helpers import config_text, environ


def _config(emu, url: str) -> str:
    text = config_text(emu, tables='["accounts"]', extra_target='database = "wh"')
    text = text.replace('output = "out/', '# output = "out/')
    return f'[databases.wh]\nurl = "{url}"\n\n{text}'


@pytest.mark.sql_only  # the lake's: tests/databases/test_lake.py
def test_refresh_shows_the_tables_schema_changes(backend, make_emulator, write_config, run_cli):
    emu = make_emulator()
    path = write_config(_config(emu, backend.url))
    path.parent.joinpath("data").mkdir(exist_ok=True)
    env = environ(emu)

    first = run_cli("plan", str(path), "--refresh", environ=env)
    assert first.code == 0, first.stderr
    assert "schema: create table canvas.accounts" in first.stdout
    assert "schema:" not in run_cli("plan", str(path), environ=env).stdout  # only on asking

    assert run_cli("apply", str(path), environ=env).code == 0
    backend.query("ALTER TABLE canvas.accounts DROP COLUMN name")
    backend.close()

    again = run_cli("plan", str(path), "--refresh", "--json", environ=env)
    assert again.code == 0, again.stderr
    (step,) = json.loads(again.stdout)["steps"]
    assert step["action"] == "incremental"
    assert [c for c in step["schema_changes"] if c.startswith("add column name")], step


def test_state_commands_read_and_forget_the_databases_record(
    backend, make_emulator, write_config, run_cli
):
    emu = make_emulator()
    path = write_config(_config(emu, backend.url))
    path.parent.joinpath("data").mkdir(exist_ok=True)
    env = environ(emu)
    assert run_cli("apply", str(path), environ=env).code == 0
    address = "univ_a/core/canvas.accounts"
    # The state file's copy is stale on purpose: the database's record is the one that counts.
    state_file = path.parent / "state" / "dapctl.state.json"
    data = json.loads(state_file.read_text())
    data["steps"][address]["records"] = -1
    state_file.write_text(json.dumps(data))

    shown = json.loads(run_cli("state", "show", str(path), address, "--json", environ=env).stdout)
    assert shown["records"] == len(emu.expected_snapshot("canvas", "accounts")) > 0
    assert shown["kind"] == "snapshot"

    assert run_cli("state", "rm", str(path), address, environ=env).code == 0
    plan = json.loads(run_cli("plan", str(path), "--json", environ=env).stdout)
    assert [s["action"] for s in plan["steps"]] == ["snapshot"]

"""``plan``/``apply --replace ADDRESS``: a fresh snapshot of one table although it has a
watermark, Terraform's ``-replace`` (issue "Tried as a new user would", item 8)."""

from __future__ import annotations

import json

from dapctl.loading import load_config
from dapctl.state import LocalStateStore
from tests.apply_helpers import config_text, environ

ACCOUNTS = "univ_a/core/canvas.accounts"
USERS = "univ_a/core/canvas.users"


def test_apply_replace_takes_a_fresh_snapshot_of_one_table(make_emulator, write_config, run_cli):
    emu = make_emulator()
    path = write_config(config_text(emu))
    assert run_cli("apply", str(path), environ=environ(emu)).code == 0
    store = LocalStateStore(load_config(path).state_path)
    first = store.read()
    emu.advance(300)

    planned = json.loads(
        run_cli("plan", str(path), "--replace", USERS, "--json", environ=environ(emu)).stdout
    )
    result = run_cli("apply", str(path), "--replace", "*.users", "--json", environ=environ(emu))

    assert {s["address"]: s["action"] for s in planned["steps"]} == {
        ACCOUNTS: "incremental",
        USERS: "snapshot",
    }
    assert "--replace" in {s["address"]: s["reason"] for s in planned["steps"]}[USERS]
    assert result.code == 0, result.stderr
    kinds = {r["address"]: r["kind"] for r in json.loads(result.stdout)["results"]}
    assert kinds == {ACCOUNTS: "incremental", USERS: "snapshot"}
    after = store.read()
    assert after.steps[USERS].watermark > first.steps[USERS].watermark
    assert after.steps[USERS].kind == "snapshot"
    snapshots = sorted((path.parent / "out/univ_a/users").glob("snapshot-*"))
    assert len(snapshots) == 2  # the first apply's and the replacement's


def test_replace_that_matches_nothing_is_refused(make_emulator, write_config, run_cli):
    emu = make_emulator()
    path = write_config(config_text(emu))

    result = run_cli(
        "apply", str(path), "--replace", "univ_a/core/canvas.nope", environ=environ(emu)
    )

    assert result.code == 1
    assert "--replace univ_a/core/canvas.nope: matches no step" in result.stderr
    assert not load_config(path).state_path.exists()

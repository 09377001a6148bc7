"""``dapctl state mv``, globs in ``state rm|show``, and ``plan`` warning about addresses no
target declares (issue "Tried as a new user would", item 7)."""

from __future__ import annotations

import json

from dapctl.loading import load_config
from dapctl.state import LocalStateStore
from tests.apply_helpers import config_text, environ

ACCOUNTS = "univ_a/core/canvas.accounts"
USERS = "univ_a/core/canvas.users"


def applied(make_emulator, write_config, run_cli):
    emu = make_emulator()
    path = write_config(config_text(emu))
    assert run_cli("apply", str(path), environ=environ(emu)).code == 0
    return emu, path


def rename_target(path, new="main"):
    text = path.read_text()
    path.write_text(text.replace('name = "core"', f'name = "{new}"', 1))


def actions(run_cli, path, emu):
    result = run_cli("plan", str(path), "--json", environ=environ(emu))
    assert result.code == 0, result.stderr
    document = json.loads(result.stdout)
    return {s["address"]: s["action"] for s in document["steps"]}, document, result


def test_plan_warns_about_addresses_no_target_declares(make_emulator, write_config, run_cli):
    emu, path = applied(make_emulator, write_config, run_cli)
    rename_target(path)

    steps, document, _ = actions(run_cli, path, emu)
    text = run_cli("plan", str(path), environ=environ(emu))

    assert steps == {
        "univ_a/main/canvas.accounts": "snapshot",
        "univ_a/main/canvas.users": "snapshot",
    }
    assert sorted(document["orphans"]) == [ACCOUNTS, USERS]
    assert f"{ACCOUNTS}: in the state, but no target declares it" in text.stderr
    assert "state mv" in text.stderr


def test_mv_with_a_glob_keeps_the_watermarks(make_emulator, write_config, run_cli):
    emu, path = applied(make_emulator, write_config, run_cli)
    store = LocalStateStore(load_config(path).state_path)
    before = store.read()
    rename_target(path)

    result = run_cli("state", "mv", str(path), "*/core/*", "*/main/*")

    assert result.code == 0, result.stderr
    assert f"Moved {ACCOUNTS} -> univ_a/main/canvas.accounts" in result.stdout
    after = store.read()
    assert after.serial == before.serial + 1 and after.lineage == before.lineage
    assert after.steps["univ_a/main/canvas.users"] == before.steps[USERS]
    assert set(after.steps) == {"univ_a/main/canvas.accounts", "univ_a/main/canvas.users"}
    steps, document, plan = actions(run_cli, path, emu)
    assert set(steps.values()) == {"incremental"} and document["orphans"] == []
    assert "no target declares" not in plan.stderr
    assert not store.lock_path.exists()


def test_mv_one_address_as_json(make_emulator, write_config, run_cli):
    _, path = applied(make_emulator, write_config, run_cli)

    result = run_cli("state", "mv", str(path), USERS, "univ_a/core/canvas.people", "--json")

    assert json.loads(result.stdout) == {
        "ok": True,
        "moved": [{"from": USERS, "to": "univ_a/core/canvas.people"}],
    }
    assert "no target declares" in result.stderr  # canvas.people is not in the config


def test_mv_refuses_and_changes_nothing(make_emulator, write_config, run_cli):
    _, path = applied(make_emulator, write_config, run_cli)
    store = LocalStateStore(load_config(path).state_path)
    before = store.read()
    refused = {
        (USERS, ACCOUNTS): f"{ACCOUNTS} is already in the state",
        ("univ_a/*/*", "univ_a/main/*"): "as many in the new address",
        ("univ_a/core/canvas.?sers", "x/y/z.*"): "use * only",
        (USERS, "univ_a/users"): "univ_a/users: not an address",
        ("univ_b/*/*", "univ_c/*/*"): "univ_b/*/*: matches no address",
        ("univ_a/core/canvas.usr", "univ_a/main/canvas.usr"): f"did you mean {USERS}",
    }
    for (old, new), message in refused.items():
        result = run_cli("state", "mv", str(path), old, new)
        assert result.code == 1 and message in result.stderr, (old, new, result.stderr)
    assert store.read() == before


def test_rm_and_show_take_globs(make_emulator, write_config, run_cli):
    _, path = applied(make_emulator, write_config, run_cli)
    store = LocalStateStore(load_config(path).state_path)

    shown = run_cli("state", "show", str(path), "univ_a/*")
    shown_json = json.loads(run_cli("state", "show", str(path), "*.users", "--json").stdout)
    nothing = run_cli("state", "rm", str(path), ACCOUNTS, "univ_b/*")
    assert nothing.code == 1 and "univ_b/*: matches no address" in nothing.stderr
    assert set(store.read().steps) == {ACCOUNTS, USERS}
    removed = json.loads(run_cli("state", "rm", str(path), "univ_a/*", "--json").stdout)

    assert shown.code == 0 and ACCOUNTS in shown.stdout and USERS in shown.stdout
    assert [s["address"] for s in shown_json["steps"]] == [USERS] and shown_json["ok"]
    assert sorted(removed["removed"]) == [ACCOUNTS, USERS]
    assert store.read().steps == {}

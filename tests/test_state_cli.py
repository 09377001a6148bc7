"""``dapctl state list|show|rm`` and ``dapctl force-unlock`` through ``main(argv)``."""

from __future__ import annotations

import json
import os
import threading

from dapctl.loading import load_config
from dapctl.state import LocalStateStore
from tests.apply_helpers import config_text, environ

ACCOUNTS = "univ_a/core/canvas.accounts"


def applied(make_emulator, write_config, run_cli):
    emu = make_emulator()
    path = write_config(config_text(emu))
    assert run_cli("apply", str(path), environ=environ(emu)).code == 0
    return emu, path


def test_list_before_any_apply(write_config, run_cli, make_emulator):
    path = write_config(config_text(make_emulator()))
    result = run_cli("state", "list", str(path))
    assert result.code == 0 and "no state yet" in result.stdout
    assert json.loads(run_cli("state", "list", str(path), "--json").stdout)["steps"] == {}


def test_list_and_show(make_emulator, write_config, run_cli):
    emu, path = applied(make_emulator, write_config, run_cli)

    listing = run_cli("state", "list", str(path))
    document = json.loads(run_cli("state", "list", str(path), "--json").stdout)
    show = run_cli("state", "show", str(path), ACCOUNTS)
    show_json = json.loads(run_cli("state", "show", str(path), ACCOUNTS, "--json").stdout)

    assert listing.code == 0 and "2 addresses (serial" in listing.stdout
    assert listing.stdout.splitlines()[2].split()[:3] == ["ADDRESS", "KIND", "WATERMARK"]
    assert ACCOUNTS in listing.stdout and "univ_a/core/canvas.users" in listing.stdout
    assert set(document["steps"]) == {ACCOUNTS, "univ_a/core/canvas.users"}
    assert document["serial"] > 0 and document["lineage"]
    assert show.code == 0 and "watermark" in show.stdout and "sha256" in show.stdout
    assert show_json["address"] == ACCOUNTS and show_json["records"] > 0 and show_json["files"]
    everything = listing.stdout + show.stdout + json.dumps(document) + json.dumps(show_json)
    assert emu.credentials[1] not in everything


def test_every_json_document_says_ok(make_emulator, write_config, run_cli):
    # Issue "Tried as a new user would": plan, state list and state show lacked "ok".
    emu, path = applied(make_emulator, write_config, run_cli)
    # (the words before the config, the words after it)
    commands = [
        (("validate",), ()),
        (("plan",), ()),
        (("apply",), ()),
        (("tables",), ()),
        (("describe",), ("canvas.accounts",)),
        (("state", "list"), ()),
        (("state", "show"), (ACCOUNTS,)),
        (("force-unlock",), ()),
    ]
    for before, after in commands:
        result = run_cli(*before, str(path), *after, "--json", environ=environ(emu))
        assert result.code == 0, (before, result.stderr)
        assert json.loads(result.stdout)["ok"] is True, before


def test_show_an_unknown_address_suggests(make_emulator, write_config, run_cli):
    _, path = applied(make_emulator, write_config, run_cli)
    result = run_cli("state", "show", str(path), "univ_a/core/canvas.acounts")
    assert result.code == 1 and f"did you mean {ACCOUNTS}" in result.stderr


def test_rm_forgets_so_the_next_plan_takes_a_snapshot(make_emulator, write_config, run_cli):
    emu, path = applied(make_emulator, write_config, run_cli)
    store = LocalStateStore(load_config(path).state_path)
    serial = store.read().serial

    result = run_cli("state", "rm", str(path), ACCOUNTS)

    assert result.code == 0 and f"Removed {ACCOUNTS}" in result.stdout
    state = store.read()
    assert ACCOUNTS not in state.steps and state.serial == serial + 1
    assert store.backup_path.exists()
    steps = json.loads(run_cli("plan", str(path), "--json", environ=environ(emu)).stdout)["steps"]
    assert {s["address"]: s["action"] for s in steps}[ACCOUNTS] == "snapshot"
    assert not store.lock_path.exists()


def test_rm_changes_nothing_unless_every_address_is_known(make_emulator, write_config, run_cli):
    _, path = applied(make_emulator, write_config, run_cli)
    store = LocalStateStore(load_config(path).state_path)
    before = store.read()
    result = run_cli("state", "rm", str(path), ACCOUNTS, "nope/x/y.z", "--json")
    assert result.code == 1 and json.loads(result.stdout)["ok"] is False
    assert store.read() == before


def test_rm_respects_the_lock(make_emulator, write_config, run_cli):
    _, path = applied(make_emulator, write_config, run_cli)
    store = LocalStateStore(load_config(path).state_path)
    with store.lock(timeout=0, command="dapctl apply"):
        result = run_cli("state", "rm", str(path), ACCOUNTS)
    assert result.code == 1 and "locked by pid" in result.stderr
    assert ACCOUNTS in store.read().steps


def test_force_unlock_without_a_lock(write_config, run_cli, make_emulator):
    path = write_config(config_text(make_emulator()))
    result = run_cli("force-unlock", str(path))
    assert result.code == 0 and "is not locked" in result.stdout


def test_force_unlock_removes_a_stale_lock_and_names_its_holder(
    write_config, run_cli, make_emulator
):
    path = write_config(config_text(make_emulator()))
    store = LocalStateStore(load_config(path).state_path)
    store.lock_path.parent.mkdir(parents=True, exist_ok=True)
    holder = {
        "pid": 4242,
        "host": "batch-7",
        "since": "2026-11-28T20:00:00+00:00",
        "command": "dapctl apply",
    }
    store.lock_path.write_text(json.dumps(holder))

    result = run_cli("force-unlock", str(path), "--json")

    assert result.code == 0
    assert json.loads(result.stdout) == {
        "ok": True,
        "state": str(store.path),
        "removed": True,
        "holder": holder,
    }
    assert not store.lock_path.exists()


def test_force_unlock_refuses_a_live_lock_unless_forced(write_config, run_cli, make_emulator):
    path = write_config(config_text(make_emulator()))
    store = LocalStateStore(load_config(path).state_path)
    with store.lock(timeout=0, command="dapctl apply"):
        refused = run_cli("force-unlock", str(path))
        assert (
            refused.code == 1
            and f"pid {os.getpid()}" in refused.stderr
            and "--force" in refused.stderr
        )
        assert store.lock_path.exists()
        forced = run_cli("force-unlock", str(path), "--force")
        assert forced.code == 0 and f"held by pid {os.getpid()}" in forced.stdout
        assert not store.lock_path.exists()
        # The old holder's lock is on a removed file: a new lock is possible at once.
        taken = threading.Event()

        def take() -> None:
            with store.lock(timeout=0, command="second"):
                taken.set()

        thread = threading.Thread(target=take)
        thread.start()
        thread.join()
        assert taken.is_set()

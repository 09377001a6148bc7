"""``dapctl state migrate``, and every state command and apply against the PostgreSQL backend,
through ``main(argv)`` and the emulator."""

from __future__ import annotations

import json

from dapctl.loading import load_config
from dapctl.state import LocalStateStore, State, StepState, open_store
from dapctl.state.postgres import PostgresStateStore
from tests.apply_helpers import apply, config_text, environ

# The PostgreSQL fixtures of tests/databases: a server, and a database made per test.

ACCOUNTS, USERS = "univ_a/core/canvas.accounts", "univ_a/core/canvas.users"
LOCAL_STATE = 'state = "state/dapctl.state.json"'


def in_postgres(text: str, url: str) -> str:
    return text.replace(LOCAL_STATE, f'state = "{url}"')


def run_json(run_cli, *argv, emu=None):
    result = run_cli(*argv, "--json", environ=environ(emu) if emu else None)
    assert result.code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["ok"] is True
    return document


def test_migrate_to_postgresql_then_every_command_works_there(
    make_emulator, write_config, run_cli, pg_url
):
    emu = make_emulator()
    path = write_config(config_text(emu))
    assert run_cli("apply", str(path), environ=environ(emu)).code == 0
    local = LocalStateStore(load_config(path).state_path).read()

    moved = run_json(run_cli, "state", "migrate", str(path), "--to", pg_url)
    path.write_text(in_postgres(path.read_text(), pg_url))

    assert moved["to"] == f"{pg_url}#dapctl" and moved["addresses"] == 2
    assert (moved["lineage"], moved["serial"]) == (local.lineage, local.serial)
    stored = open_store(load_config(path)).read()
    assert stored == local
    listing = run_json(run_cli, "state", "list", str(path))
    assert set(listing["steps"]) == {ACCOUNTS, USERS} and listing["path"] == moved["to"]
    assert run_json(run_cli, "state", "show", str(path), ACCOUNTS)["records"] > 0
    assert run_json(run_cli, "force-unlock", str(path))["removed"] is False
    assert run_json(run_cli, "state", "rm", str(path), ACCOUNTS)["removed"] == [ACCOUNTS]
    plan = run_json(run_cli, "plan", str(path), emu=emu)
    assert {s["address"]: s["action"] for s in plan["steps"]} == {
        ACCOUNTS: "snapshot",
        USERS: "incremental",
    }
    results = run_json(run_cli, "apply", str(path), emu=emu)["results"]
    assert {r["address"]: r["kind"] for r in results} == {
        ACCOUNTS: "snapshot",
        USERS: "incremental",
    }
    after = open_store(load_config(path)).read()
    assert after.lineage == local.lineage and after.serial > local.serial + 1


def test_the_text_output_says_what_to_change(make_emulator, write_config, run_cli, pg_url):
    emu = make_emulator()
    path = write_config(config_text(emu))
    assert run_cli("apply", str(path), environ=environ(emu)).code == 0

    result = run_cli("state", "migrate", str(path), "--to", pg_url)
    again = run_cli("state", "migrate", str(path), "--to", pg_url)

    assert result.code == 0, result.stderr
    assert f"to {pg_url}#dapctl" in result.stdout and "2 addresses, serial" in result.stdout
    assert f'Now set [settings] state to "{pg_url}"' in result.stdout
    assert again.code == 0 and "holds this state already" in again.stdout


def test_a_destination_holding_steps_is_kept_unless_forced(
    make_emulator, write_config, run_cli, pg_url
):
    emu = make_emulator()
    path = write_config(config_text(emu))
    assert run_cli("apply", str(path), environ=environ(emu)).code == 0
    other = PostgresStateStore(pg_url, namespace="dapctl")
    other.read()
    other.write(State().with_step("univ_z/x/canvas.y", StepState(records=5)))

    refused = run_cli("state", "migrate", str(path), "--to", pg_url)
    kept = PostgresStateStore(pg_url, namespace="dapctl").read()
    forced = run_json(run_cli, "state", "migrate", str(path), "--to", pg_url, "--force")
    replaced = PostgresStateStore(pg_url, namespace="dapctl").read()
    other.close()

    assert refused.code == 1 and "holds a state already (1 address, serial 1" in refused.stderr
    assert "--force" in refused.stderr and set(kept.steps) == {"univ_z/x/canvas.y"}
    assert forced["replaced"]["addresses"] == 1
    assert set(replaced.steps) == {ACCOUNTS, USERS}
    assert replaced == LocalStateStore(load_config(path).state_path).read()


def test_migrate_back_to_a_local_file(make_emulator, write_config, run_cli, pg_url, tmp_path):
    emu = make_emulator()
    path = write_config(in_postgres(config_text(emu), pg_url))
    assert run_cli("apply", str(path), environ=environ(emu)).code == 0
    target = tmp_path / "elsewhere" / "state.json"

    moved = run_json(run_cli, "state", "migrate", str(path), "--to", str(target))

    assert moved["to"] == str(target) and moved["addresses"] == 2
    assert LocalStateStore(target).read() == open_store(load_config(path)).read()


def test_both_locks_are_held_so_a_locked_destination_stops_it(
    make_emulator, write_config, run_cli, pg_url
):
    emu = make_emulator()
    path = write_config(config_text(emu))
    assert run_cli("apply", str(path), environ=environ(emu)).code == 0
    holder = PostgresStateStore(pg_url, namespace="dapctl")
    with holder.lock(timeout=0, command="dapctl apply"):
        result = run_cli("state", "migrate", str(path), "--to", pg_url)
        source_free = LocalStateStore(load_config(path).state_path).lock_info() is None
    assert result.code == 1 and "locked by pid" in result.stderr
    assert source_free  # the source's lock was let go when the destination's was refused
    assert holder.read() is None
    holder.close()


def test_bad_destinations_are_refused(make_emulator, write_config, run_cli, tmp_path):
    emu = make_emulator()
    path = write_config(config_text(emu))
    assert run_cli("apply", str(path), environ=environ(emu)).code == 0
    state = str(load_config(path).state_path)

    password = run_cli("state", "migrate", str(path), "--to", "postgresql://u:hunter2@h/db")
    itself = run_cli("state", "migrate", str(path), "--to", state)
    unknown = run_cli("state", "migrate", str(path), "--to", "ftp://h/x")
    fresh = write_config(config_text(emu).replace(LOCAL_STATE, 'state = "b.json"'), "b.toml")
    empty = run_cli("state", "migrate", str(fresh), "--to", str(tmp_path / "x.json"))

    assert password.code == 1 and "--to: the URL holds a password" in password.stderr
    assert "hunter2" not in password.stdout + password.stderr
    assert itself.code == 1 and "is where the state is already" in itself.stderr
    assert unknown.code == 1 and "no state backend for ftp:// URLs" in unknown.stderr
    assert empty.code == 1 and "no state yet" in empty.stderr
    assert not (tmp_path / "x.json").exists()


def test_an_apply_on_the_postgresql_state_is_resumed_by_the_next(
    make_emulator, write_config, pg_url
):
    emu = make_emulator()
    path = write_config(in_postgres(config_text(emu), pg_url))
    started = apply(path, emu, no_wait=True)
    pending = open_store(load_config(path)).read()
    jobs = emu.stats.jobs_created

    collected = apply(path, emu)
    after = apply(path, emu)

    assert {r.status for r in started} == {"started"}
    assert {a: s.pending.job_id for a, s in pending.steps.items()} == {
        r.address: r.job_id for r in started
    }
    assert [r.status for r in collected] == ["ok", "ok"]
    assert emu.stats.jobs_created == jobs + 2  # resumed both, then two incrementals
    assert {r.job_id for r in collected} == {r.job_id for r in started}
    assert all(any("resumed" in n for n in r.notes) for r in collected)
    assert {r.kind for r in after} == {"incremental"}
    final = open_store(load_config(path)).read()
    assert final.lineage == pending.lineage and all(s.pending is None for s in final.steps.values())

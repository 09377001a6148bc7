"""The S3 state backend beyond the shared contract (``test_state_contract.py``), against
moto's server: a whole cloud config (state and outputs in S3) through ``dapctl apply`` and
``plan``; the lock object's holder record, its takeover when its holder died or stopped
renewing, fencing by ``force-unlock``; and the errors (a missing package, credentials in
the URL, a scheme with no state backend)."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from dapctl.errors import ConfigError, LockError
from dapctl.loading import load_config
from dapctl.state import State, StepState, open_store
from dapctl.state.objects import ObjectStateStore
from tests.apply_helpers import config_text, environ

A = "univ_a/core/canvas.accounts"


def _cloud_config(emu, s3) -> str:
    output = s3.url("out/{table}/{kind}-{timestamp}.{format}.gz")
    text = config_text(emu, output=output)
    return text.replace('state = "state/dapctl.state.json"', f'state = "{s3.url("states/")}"')


def test_the_lock_names_its_holder_and_is_renewed_while_held(s3):
    store = ObjectStateStore(s3.url("states/"), namespace="x", ttl=0.8)
    with store.lock(timeout=0, command="dapctl apply"):
        before = s3.client.head_object(Bucket=s3.bucket, Key="states/x/dapctl.state.lock")
        time.sleep(1.5)  # several renewals
        after = s3.client.head_object(Bucket=s3.bucket, Key="states/x/dapctl.state.lock")
        holder = ObjectStateStore(s3.url("states/"), namespace="x").lock_info()
    assert after["ETag"] != before["ETag"] or after["LastModified"] > before["LastModified"]
    assert holder["pid"] == os.getpid() and holder["command"] == "dapctl apply"
    assert holder["host"] and holder["since"]


KILLED_HOLDER = """
import os, signal, sys
from dapctl.state.objects import ObjectStateStore
store = ObjectStateStore(sys.argv[1], namespace="x")
with store.lock(timeout=0, command="dapctl apply"):
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_holders_lock_is_taken_over_with_a_warning(s3, caplog):
    env = {**os.environ, **s3.server.environ}
    done = subprocess.run(
        [sys.executable, "-c", KILLED_HOLDER, s3.url("states/")],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    store = ObjectStateStore(s3.url("states/"), namespace="x", ttl=1.0)
    assert store.lock_info()["command"] == "dapctl apply"

    with store.lock(timeout=10, command="dapctl plan"):  # waits for the lock to go stale
        assert store.lock_info()["command"] == "dapctl plan"

    assert "took over the state lock of pid" in caplog.text


def test_a_lock_not_renewed_for_its_ttl_is_taken_over(s3):
    store = ObjectStateStore(s3.url("states/"), namespace="x", ttl=1.0)
    assert store.lock_info() is None  # s3fs loaded and connected: the next calls are quick
    record = {"pid": 1, "host": "another-machine", "since": "then", "command": "dapctl apply"}
    key = "states/x/dapctl.state.lock"
    s3.client.put_object(Bucket=s3.bucket, Key=key, Body=json.dumps(record).encode())

    with pytest.raises(LockError, match="pid 1 on host another-machine"):
        store.lock(timeout=0, command="dapctl plan").__enter__()
    with pytest.raises(LockError, match="still running"):
        store.force_unlock(force=False)
    time.sleep(2.5)  # the server's clock counts whole seconds
    with store.lock(timeout=0, command="dapctl plan"):
        assert store.lock_info()["host"] != "another-machine"


def test_a_holder_whose_lock_was_forced_away_writes_nothing_more(s3):
    holder = ObjectStateStore(s3.url("states/"), namespace="x", ttl=0.4)
    holder.read()
    with holder.lock(timeout=0, command="dapctl apply"):
        holder.write(State())
        forced = ObjectStateStore(s3.url("states/"), namespace="x").force_unlock(force=True)
        assert forced["command"] == "dapctl apply"
        time.sleep(0.5)  # past a renewal, which finds the lock gone
        with pytest.raises(LockError, match="lock was taken over"):
            holder.write(holder.read().with_step(A, StepState(records=1)))
    assert ObjectStateStore(s3.url("states/"), namespace="x").read().serial == 0


def _without_s3fs(name: str) -> object:
    if name.split(".")[0] == "s3fs":
        raise ModuleNotFoundError(f"No module named {name!r}")
    return importlib.import_module(name)


@pytest.mark.parametrize("command", ["validate", "plan", "apply"])
def test_an_s3_state_without_s3fs_names_the_extra(
    command, s3, make_emulator, write_config, run_cli
):
    emu = make_emulator()
    text = config_text(emu).replace(
        'state = "state/dapctl.state.json"', f'state = "{s3.url("states/")}"'
    )
    path = write_config(text)
    argv = [*command.split(), str(path)]
    result = run_cli(*argv, environ=environ(emu), importer=_without_s3fs)
    assert result.code == 1
    assert "pip install 'dapctl[s3]'" in result.stderr, result.stderr
    assert emu.stats.jobs_created == 0
    with pytest.raises(ConfigError, match=r"pip install 'dapctl\[s3\]'"):
        open_store(load_config(path), importer=_without_s3fs)  # as every command opens it


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://AKIAEXAMPLE@bucket/states/", "holds credentials"),
        ("s3://AKIAEXAMPLE:hunter2@bucket/states/", "must not sit in a config file"),
        ("ftp://bucket/states/", "no state backend for ftp:// URLs"),
        ("s3:///states/", "names no bucket"),
    ],
)
def test_bad_state_urls_are_refused_without_echoing_them(url, expected, write_config):
    path = write_config(
        f'[settings]\nstate = "{url}"\n[profiles.p]\nemulator = true\n'
        '[[targets]]\nname = "t"\ntables = ["a"]\n'
    )
    with pytest.raises(ConfigError) as refused:
        open_store(load_config(path))
    assert expected in str(refused.value) and "settings.state" in str(refused.value)
    assert "AKIAEXAMPLE" not in str(refused.value) and "hunter2" not in str(refused.value)


def test_a_local_state_migrates_to_s3_and_every_command_works_there(
    s3, make_emulator, write_config, run_cli
):
    emu = make_emulator()
    path = write_config(config_text(emu))
    assert run_cli("apply", str(path), environ=environ(emu)).code == 0
    local = open_store(load_config(path)).read()
    url = s3.url("states/")

    moved = run_cli("state", "migrate", str(path), "--to", url)
    path.write_text(path.read_text().replace('"state/dapctl.state.json"', f'"{url}"'))

    assert moved.code == 0, moved.stderr
    assert open_store(load_config(path)).read() == local
    listed = run_cli("state", "list", str(path))
    removed = run_cli("state", "rm", str(path), A)
    unlocked = run_cli("force-unlock", str(path))
    plan = run_cli("plan", str(path), "--json", environ=environ(emu))
    assert listed.code == removed.code == unlocked.code == plan.code == 0
    assert A in listed.stdout
    actions = {s["address"]: s["action"] for s in json.loads(plan.stdout)["steps"]}
    assert actions[A] == "snapshot" and set(actions.values()) == {"snapshot", "incremental"}


def test_a_state_in_a_bucket_that_does_not_exist_is_named_not_taken_for_a_first_run(
    s3, make_emulator, write_config, run_cli
):
    emu = make_emulator()
    missing = f"{s3.bucket}-missing"
    path = write_config(
        _cloud_config(emu, s3).replace(f"s3://{s3.bucket}/states/", f"s3://{missing}/states/")
    )

    for command in ("plan", "apply"):
        result = run_cli(command, str(path), environ=environ(emu))

        assert result.code == 1, (command, result)
        assert f"s3://{missing}: " in result.stderr, (command, result.stderr)
        assert "no such bucket" in result.stderr and "or no such object" not in result.stderr
        assert "first run" not in result.stdout, command
    assert emu.stats.jobs_created == 0

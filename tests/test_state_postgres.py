"""The PostgreSQL state backend beyond the shared contract (``test_state_contract.py``): its
rows, namespaces, the first-writer race, the lock's holder record, fencing by force-unlock,
a crashed holder, and the errors (newer dapctl, unreachable server, missing variable or
package, a password in the config)."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from freezegun import freeze_time

from dapctl.databases.postgres import PostgresDatabase
from dapctl.errors import ConfigError, StateConflictError, StateError
from dapctl.loading import load_config
from dapctl.state import State, StepState, open_store
from dapctl.state.postgres import PostgresStateStore

# The PostgreSQL fixtures of tests/databases: a server, and a database made per test.

A, B, C = "univ_a/core/canvas.accounts", "univ_a/core/canvas.users", "univ_a/core/canvas.courses"


@pytest.fixture
def stores(pg_url) -> Iterator:
    """``stores(namespace="dapctl")`` opens a store on the test's database; all closed after."""
    opened: list[PostgresStateStore] = []

    def make(namespace: str = "dapctl") -> PostgresStateStore:
        opened.append(PostgresStateStore(pg_url, namespace=namespace))
        return opened[-1]

    yield make
    for store in opened:
        store.close()


def query(url: str, sql: str, *params) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def test_one_row_per_namespace_and_per_address_and_only_changes_are_written(stores, pg_url):
    store = stores()
    store.read()
    state = State()
    for address in (A, B, C):
        state = state.with_step(address, StepState(records=1))
    store.write(state)
    later = state.with_step(A, StepState(records=2)).with_step(C, None)
    store.write(later)

    namespaces = query(
        pg_url, "SELECT namespace, lineage, serial, version FROM dapctl.state_namespaces"
    )
    steps = dict(query(pg_url, "SELECT address, serial FROM dapctl.state_steps ORDER BY address"))
    records = query(
        pg_url, "SELECT record->>'records' FROM dapctl.state_steps WHERE address = %s", A
    )
    assert namespaces == [("dapctl", state.lineage, later.serial, 2)]
    assert steps == {A: later.serial, B: state.serial}  # B untouched, C deleted
    assert records == [("2",)]


def test_namespaces_share_a_database_beside_a_targets_step_table(stores, pg_url):
    database = PostgresDatabase.connect(pg_url, sleep=time.sleep)  # creates dapctl.table_steps
    try:
        database.write_step(("canvas", "users"), address=A, record="{}")
        prod, test = stores("prod"), stores("test")
        prod.read(), test.read()
        prod.write(State().with_step(A, StepState(records=1)))
        test.write(State().with_step(B, StepState(records=2)))
        with prod.lock(timeout=0, command="dapctl apply"), test.lock(timeout=0, command="x"):
            pass  # one namespace's lock does not hold the other's
        assert database.sweep_staging() == []
        assert database.read_steps() == {("canvas", "users"): (A, "{}")}
    finally:
        database.close()
    assert list(stores("prod").read().steps) == [A]
    assert list(stores("test").read().steps) == [B]
    assert stores("prod").location.endswith("#prod")


def test_a_first_writer_that_loses_the_insert_gets_a_conflict(stores, pg_url):
    with stores().lock(timeout=0, command="setup"):
        pass  # creates the tables
    loser = stores()
    assert loser.read() is None
    outcome: list[BaseException | None] = []
    with psycopg.connect(pg_url) as rival:  # one transaction, committed below
        rival.execute(
            "INSERT INTO dapctl.state_namespaces (namespace, lineage, serial, version, written_by)"
            " VALUES ('dapctl', 'rival', 1, 2, 'test')"
        )

        def write() -> None:
            try:
                loser.write(State().with_step(A, StepState()))
                outcome.append(None)
            except StateConflictError as exc:
                outcome.append(exc)

        writer = threading.Thread(target=write)
        writer.start()
        time.sleep(0.3)
        assert writer.is_alive()  # waiting on the rival's uncommitted row
        rival.commit()
        writer.join(timeout=10)
    assert outcome and isinstance(outcome[0], StateConflictError)
    assert "no state was read, serial 1 is there now" in outcome[0].message
    assert query(pg_url, "SELECT count(*) FROM dapctl.state_steps") == [(0,)]


def test_a_state_written_by_a_newer_dapctl_is_refused(stores, pg_url):
    old = stores()
    old.read()
    state = State()
    old.write(state)
    query(pg_url, "UPDATE dapctl.state_namespaces SET version = 99 RETURNING 1")

    with pytest.raises(StateError, match=r"written by a newer dapctl \(state format version 99"):
        stores().read()
    with pytest.raises(StateError, match="written by a newer dapctl") as caught:
        old.write(state.with_step(A, StepState()))
    assert "upgrade dapctl" in str(caught.value)
    assert query(pg_url, "SELECT serial FROM dapctl.state_namespaces") == [(0,)]


def test_force_unlock_ends_a_hung_holders_session_and_fences_it(stores, pg_url):
    hung, operator = stores(), stores()
    hung.read()
    with hung.lock(timeout=0, command="dapctl apply"):
        holder = operator.force_unlock(force=True)
        assert holder["command"] == "dapctl apply" and holder["pid"] == os.getpid()
        with pytest.raises(StateError, match="lost the database session that held the state's"):
            hung.write(State())
        with stores().lock(timeout=0, command="dapctl apply"):
            assert operator.lock_info()["command"] == "dapctl apply"
    assert stores().read() is None  # the fenced write never landed


def _hold_and_die(url: str, ready) -> None:
    store = PostgresStateStore(url, namespace="dapctl")
    with store.lock(timeout=0, command="dapctl apply"):
        ready.set()
        time.sleep(60)


def test_a_killed_holders_lock_is_free_and_its_record_taken_over(stores, pg_url, caplog):
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    child = context.Process(target=_hold_and_die, args=(pg_url, ready))
    child.start()
    assert ready.wait(30)
    store = stores()
    assert store.lock_info()["pid"] == child.pid
    os.kill(child.pid, signal.SIGKILL)
    child.join(timeout=30)

    with caplog.at_level(logging.WARNING), store.lock(timeout=10, command="dapctl apply"):
        assert store.lock_info()["pid"] == os.getpid()
    assert f"taking over a lock left by pid {child.pid}" in caplog.text


def test_the_lock_and_the_rows_take_the_databases_clock(stores, pg_url):
    store = stores()
    store.read()
    with freeze_time("2001-02-03T04:05:06Z"), store.lock(timeout=0, command="dapctl apply"):
        store.write(State().with_step(A, StepState()))
        since = store.lock_info()["since"]
    ((written, updated),) = query(
        pg_url,
        "SELECT n.written_at, s.updated_at FROM dapctl.state_namespaces n JOIN "
        "dapctl.state_steps s USING (namespace)",
    )
    assert not since.startswith("2001") and since[:4] == str(written.year)
    assert written.year != 2001 and updated == written  # one transaction, one time


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(write_config, settings: str, name: str = "dapctl.toml"):
    return write_config(
        f"[settings]\n{settings}\n\n[profiles.univ_a]\nemulator = true\n\n"
        '[[targets]]\nname = "core"\ntables = ["accounts"]\n',
        name,
    )


def test_an_unreachable_server_names_host_and_port_but_never_the_password(
    write_config, run_cli, monkeypatch
):
    port = _closed_port()
    url = f"postgresql://alice:s3cr%40t-pw@127.0.0.1:{port}/db"
    from_env = _config(write_config, 'state_env = "DAPCTL_STATE_URL"')
    store = open_store(load_config(from_env), environ={"DAPCTL_STATE_URL": url})
    monkeypatch.setenv("PGPASSWORD", "pg-s3cr3t")  # libpq's own variable, read by the process
    in_config = _config(write_config, f'state = "postgresql://alice@127.0.0.1:{port}/db"', "b.toml")

    with pytest.raises(StateError) as caught:
        store.read()
    result = run_cli("state", "list", str(in_config))

    text = str(caught.value)
    assert f'"127.0.0.1", port {port} failed' in text and "PGPASSWORD" in text
    assert "alice:***@127.0.0.1" in text
    assert result.code == 1 and f'"127.0.0.1", port {port} failed' in result.stderr
    for shown in (text, repr(store), store.location, result.stdout + result.stderr):
        assert "s3cr" not in shown


def test_a_missing_state_variable_is_named(write_config):
    path = _config(write_config, 'state_env = "DAPCTL_STATE_URL"')
    with pytest.raises(
        ConfigError, match=r"settings\.state_env: environment variable DAPCTL_STATE_URL is"
    ):
        open_store(load_config(path), environ={})


def test_a_missing_psycopg_names_the_extra(write_config):
    path = _config(write_config, 'state = "postgresql://127.0.0.1/db"')

    def importer(name: str) -> object:
        raise ImportError(f"No module named {name!r}")

    with pytest.raises(ConfigError) as caught:
        open_store(load_config(path), importer=importer)
    assert "a PostgreSQL state needs the psycopg package" in str(caught.value)
    assert "pip install 'dapctl[postgresql]'" in str(caught.value)


def test_a_password_in_the_config_is_refused_and_never_shown(write_config, run_cli):
    path = _config(write_config, 'state = "postgres://alice:hunter2@127.0.0.1/db"')
    result = run_cli("validate", str(path))
    assert result.code == 1 and "settings.state: the URL holds a password" in result.stderr
    assert "hunter2" not in result.stdout + result.stderr


def test_state_and_state_env_are_exclusive(write_config, run_cli):
    path = _config(write_config, 'state = "s.json"\nstate_env = "URL"')
    result = run_cli("validate", str(path))
    assert result.code == 1 and "set only one of state and state_env" in result.stderr


def test_the_namespace_is_the_config_files_name_unless_set(write_config):
    url = 'state = "postgresql://127.0.0.1/db"'
    default = open_store(load_config(_config(write_config, url, "prod.toml")))
    named = open_store(load_config(_config(write_config, url + '\nstate_namespace = "x.1"')))
    assert default.location == "postgresql://127.0.0.1/db#prod"
    assert named.location == "postgresql://127.0.0.1/db#x.1"


def test_validate_names_a_url_or_variable_state_not_a_local_path(write_config, run_cli):
    base = '[profiles.univ_a]\nemulator = true\n[[targets]]\nname = "core"\ntables = ["a"]\n'
    by_url = write_config('[settings]\nstate = "postgresql://127.0.0.1/x"\n' + base, "u.toml")
    by_env = write_config('[settings]\nstate_env = "DAPCTL_STATE"\n' + base, "e.toml")

    url = json.loads(run_cli("validate", str(by_url), "--json").stdout)
    env = json.loads(run_cli("validate", str(by_env), "--json").stdout)

    assert url["state"] == "postgresql://127.0.0.1/x"
    assert env["state"] == "$DAPCTL_STATE"

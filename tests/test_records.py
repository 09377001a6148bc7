"""Which record of a table target's step counts (``dapctl.outputs.records``), without a
database server: an in-memory stand-in holds the rows and tables."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

from dapctl.config import Config
from dapctl.databases import StepRow
from dapctl.outputs.records import Overlay, overlay_steps, table_of
from dapctl.plan import plan
from dapctl.state import State, StepState
from dapctl.state.model import PendingJob

T0 = datetime(2026, 11, 1, tzinfo=UTC)
A = "univ_a/core/canvas.users"


def _config(**target: object) -> Config:
    return Config.model_validate(
        {
            "databases": {"wh": {"url": "postgresql://u@127.0.0.1/db"}},
            "profiles": {"univ_a": {"emulator": True}},
            "targets": [{"name": "core", "tables": ["users"], "database": "wh", **target}],
        }
    )


class FakeDatabase:
    def __init__(self, rows=None, present=()):
        self.rows = dict(rows or {})
        self.present = set(present)

    def read_steps(self):
        return self.rows

    def tables(self):
        return self.present


def _overlay(config, state, db) -> Overlay:
    return overlay_steps(config, state, lambda name: contextlib.nullcontext(db))


def _record(**fields: object) -> str:
    return StepState(watermark=T0, kind="snapshot", **fields).model_dump_json()


def test_the_table_names_come_from_the_templates():
    where = table_of(_config(db_schema="{profile}_x", db_table="t_{table}"), A)
    assert where is not None and where.database == "wh"
    assert where.table == ("univ_a_x", "t_users")
    assert table_of(_config(), "univ_a/other/canvas.users") is None


def test_the_state_files_watermark_never_stands_in_for_the_database():
    state = State().with_step(A, StepState(watermark=T0, kind="snapshot"))
    overlay = _overlay(_config(), state, FakeDatabase())
    step = plan(_config(), overlay.state).steps[0]
    assert (step.action, step.reason) == ("snapshot", "canvas.users is not in the database")
    assert overlay.recorded.steps == {}  # nothing left for the state file to cache


def test_a_row_whose_table_is_gone_is_not_trusted():
    db = FakeDatabase({("canvas", "users"): StepRow(A, _record())})
    step = plan(_config(), _overlay(_config(), State(), db).state).steps[0]
    assert (step.action, step.reason) == ("snapshot", "canvas.users is not in the database")


def test_a_table_without_a_row_says_so():
    db = FakeDatabase(present={("canvas", "users")})
    step = plan(_config(), _overlay(_config(), State(), db).state).steps[0]
    assert step.reason == "canvas.users has no dapctl record in the database"


def test_the_row_committed_with_the_table_counts_whatever_address_wrote_it():
    db = FakeDatabase(
        {("canvas", "users"): StepRow("old/core/canvas.users", _record())},
        present={("canvas", "users")},
    )
    step = plan(_config(), _overlay(_config(), State(), db).state).steps[0]
    assert (step.action, step.since) == ("incremental", T0)


def test_another_schemas_row_is_not_ours():
    db = FakeDatabase(
        {("sch_b", "users"): StepRow(A, _record())},
        present={("sch_b", "users")},
    )
    overlay = _overlay(_config(db_schema="sch_a"), State(), db)
    assert plan(_config(db_schema="sch_a"), overlay.state).steps[0].action == "snapshot"


def test_a_pending_snapshot_for_a_table_not_yet_created_is_resumed_an_incremental_is_not():
    def pending(kind):
        job = PendingJob(job_id="j1", kind=kind, started_at=T0, since=None)
        return StepState(pending=job).model_dump_json()

    for kind, action in (("snapshot", "resume"), ("incremental", "snapshot")):
        db = FakeDatabase({("canvas", "users"): StepRow(A, pending(kind))})
        assert plan(_config(), _overlay(_config(), State(), db).state).steps[0].action == action


def test_a_first_run_with_since_keeps_the_configs_window_and_says_why():
    config = _config(since="2026-10-01T00:00:00Z")
    step = plan(config, _overlay(config, State(), FakeDatabase()).state).steps[0]
    assert step.action == "incremental"
    assert step.reason == "canvas.users is not in the database: since from the config"


def test_an_unreadable_database_is_reported_and_its_steps_carry_the_error():
    from dapctl.databases import DatabaseError

    @contextlib.contextmanager
    def broken(name):
        raise DatabaseError("cannot connect to postgresql://u@127.0.0.1/db: refused")
        yield

    state = State().with_step(A, StepState(watermark=T0, kind="snapshot"))
    overlay = overlay_steps(_config(), state, broken)
    assert overlay.unreachable == {"wh": "cannot connect to postgresql://u@127.0.0.1/db: refused"}
    assert overlay.state.steps[A].watermark == T0  # the cached copy stays, unused
    (step,) = plan(_config(), overlay.state, unreachable=overlay.unreachable).steps
    assert step.error is not None and step.error.startswith("database wh could not be read")
    assert step.describe() == "cannot run"

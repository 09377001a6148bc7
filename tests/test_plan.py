"""The planner: pure ``plan(config, state)``, its selection and renderings, and ``dapctl plan``.

Profiles here are emulator profiles unless a test is about credentials, so the CLI tests need
no environment.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from dapctl.cli.render import render_plan
from dapctl.config import Config
from dapctl.errors import ConfigError
from dapctl.plan import Plan, Step, expand, matches, orphans, plan, plan_table, stale_fallback
from dapctl.state import PendingJob, State, StepState
from dapctl.text import format_time

T1 = datetime(2026, 11, 2, 3, 4, 5, tzinfo=UTC)
T2 = datetime(2026, 11, 1, tzinfo=UTC)


def make_config(*targets: dict[str, Any], profiles: tuple[str, ...] = ("univ_a",)) -> Config:
    return Config.model_validate(
        {
            "profiles": {name: {"emulator": True} for name in profiles},
            "targets": list(targets) or [{"name": "core", "tables": ["accounts"]}],
        }
    )


def state_with(**steps: StepState) -> State:
    """State keyed by address; callers pass ``**{"univ_a/core/canvas.accounts": ...}``."""
    return State(steps=steps)


def pending(kind: str = "incremental", since: datetime | None = T2) -> PendingJob:
    return PendingJob(job_id="job-7", kind=kind, since=since, started_at=T1)  # type: ignore[arg-type]


def one(config: Config, state: State | None = None) -> Step:
    [step] = plan(config, state or State()).steps
    return step


# --------------------------------------------------------------------------- one table


def test_first_run_is_a_snapshot():
    step = one(make_config())

    assert (step.action, step.since, step.reason) == (
        "snapshot",
        None,
        "first run: no watermark in state",
    )
    assert step.address == "univ_a/core/canvas.accounts"


def test_watermark_gives_an_incremental_since_it():
    state = state_with(**{"univ_a/core/canvas.accounts": StepState(watermark=T1)})

    step = one(make_config(), state)

    assert (step.action, step.since, step.reason) == (
        "incremental",
        T1,
        "continues from the last run",
    )


def test_snapshot_sync_is_a_snapshot_every_run():
    config = make_config({"name": "core", "tables": ["accounts"], "sync": "snapshot"})
    state = state_with(**{"univ_a/core/canvas.accounts": StepState(watermark=T1)})

    step = one(config, state)

    assert (step.action, step.since) == ("snapshot", None)
    assert step.reason == 'sync = "snapshot": a full snapshot every run'


def test_since_on_a_first_run_gives_an_incremental_since_it():
    config = make_config({"name": "core", "tables": ["accounts"], "since": "2026-10-01T00:00:00Z"})

    step = one(config)

    assert (step.action, step.since) == ("incremental", datetime(2026, 10, 1, tzinfo=UTC))
    assert step.reason == "first run; since from the config"


def test_watermark_wins_over_since_after_the_first_run():
    config = make_config({"name": "core", "tables": ["accounts"], "since": "2026-10-01T00:00:00Z"})
    state = state_with(**{"univ_a/core/canvas.accounts": StepState(watermark=T1)})

    assert one(config, state).since == T1


@pytest.mark.parametrize("sync", ["incremental", "snapshot"])
@pytest.mark.parametrize("kind", ["snapshot", "incremental"])
def test_pending_job_is_resumed_whatever_else_state_says(sync, kind):
    config = make_config({"name": "core", "tables": ["accounts"], "sync": sync})
    since = None if kind == "snapshot" else T2
    step_state = StepState(watermark=T1, pending=pending(kind, since))
    state = state_with(**{"univ_a/core/canvas.accounts": step_state})

    step = one(config, state)

    assert (step.action, step.job_id, step.resume_kind, step.since) == (
        "resume",
        "job-7",
        kind,
        since,
    )
    assert step.describe() == f"resume {kind} job job-7"


def test_a_fallback_snapshot_must_be_later_than_the_watermark_it_replaces():
    assert stale_fallback(None, T2) is None  # no fallback: nothing to compare
    assert stale_fallback(T2, T1) is None  # T1 is later than T2
    for at in (T2, T2 - timedelta(seconds=1)):
        reason = stale_fallback(T2, at)
        assert reason is not None and "not later than" in reason and format_time(T2) in reason


def test_tables_all_is_one_list_step():
    config = make_config({"name": "logs", "namespace": "canvas_logs", "tables": "all"})

    step = one(config)

    assert (step.action, step.table, step.address) == ("list", "*", "univ_a/logs/canvas_logs.*")
    assert step.describe() == "list canvas_logs tables at apply"


def test_plan_table_is_what_apply_uses_after_listing():
    config = make_config({"name": "logs", "tables": "all"})
    target = config.targets[0]

    first = plan_table("univ_a", target, "users", StepState())
    later = plan_table("univ_a", target, "users", StepState(watermark=T1))

    assert (first.address, first.action) == ("univ_a/logs/canvas.users", "snapshot")
    assert (later.action, later.since) == ("incremental", T1)


def test_state_of_another_address_is_not_used():
    state = state_with(**{"univ_a/other/canvas.accounts": StepState(watermark=T1)})

    assert one(make_config(), state).action == "snapshot"


# --------------------------------------------------------------------------- many tables

ORDERED = (
    {"name": "core", "tables": ["users", "accounts"]},
    {"name": "logs", "namespace": "canvas_logs", "tables": "all", "profiles": ["univ_b"]},
    {"name": "snap", "tables": ["courses"], "sync": "snapshot", "profiles": ["univ_b", "univ_a"]},
)
PROFILES = ("univ_b", "univ_a")


def addresses(result: Plan) -> list[str]:
    return [step.address for step in result.steps]


def test_order_follows_the_config():
    result = plan(make_config(*ORDERED, profiles=PROFILES), State())

    assert addresses(result) == [
        "univ_b/core/canvas.users",
        "univ_b/core/canvas.accounts",
        "univ_a/core/canvas.users",
        "univ_a/core/canvas.accounts",
        "univ_b/logs/canvas_logs.*",
        "univ_b/snap/canvas.courses",
        "univ_a/snap/canvas.courses",
    ]


def test_plan_is_pure():
    config = make_config(*ORDERED, profiles=PROFILES)
    state = state_with(**{"univ_a/core/canvas.users": StepState(watermark=T1)})
    before = state.model_dump()

    assert plan(config, state) == plan(config, state)
    assert state.model_dump() == before


def test_profile_selection():
    config = make_config(*ORDERED, profiles=PROFILES)

    result = plan(config, State(), profiles=["univ_a"])

    assert addresses(result) == [
        "univ_a/core/canvas.users",
        "univ_a/core/canvas.accounts",
        "univ_a/snap/canvas.courses",
    ]


def test_unknown_profile_is_refused_with_the_known_ones():
    config = make_config(*ORDERED, profiles=PROFILES)

    with pytest.raises(ConfigError) as caught:
        plan(config, State(), profiles=["univ_a", "univ_c"])

    assert str(caught.value) == "--profile univ_c: no such profile; profiles are: univ_b, univ_a"


@pytest.mark.parametrize(
    ("selectors", "expected"),
    [
        (["univ_a/core/canvas.accounts"], ["univ_a/core/canvas.accounts"]),
        (
            ["univ_a/*"],
            [
                "univ_a/core/canvas.users",
                "univ_a/core/canvas.accounts",
                "univ_a/snap/canvas.courses",
            ],
        ),
        (["*/core/canvas.u*"], ["univ_b/core/canvas.users", "univ_a/core/canvas.users"]),
        (["univ_b/snap"], ["univ_b/snap/canvas.courses"]),
        (["snap"], ["univ_b/snap/canvas.courses", "univ_a/snap/canvas.courses"]),
        (["s*"], ["univ_b/snap/canvas.courses", "univ_a/snap/canvas.courses"]),
        (["logs"], ["univ_b/logs/canvas_logs.*"]),
        (["univ_b/logs/canvas_logs.users"], ["univ_b/logs/canvas_logs.*"]),
        (["univ_b/logs/canvas_logs.*"], ["univ_b/logs/canvas_logs.*"]),
        (
            ["*.users"],
            ["univ_b/core/canvas.users", "univ_a/core/canvas.users", "univ_b/logs/canvas_logs.*"],
        ),
        (["*/canvas_logs.web_*"], ["univ_b/logs/canvas_logs.*"]),
        (
            ["snap", "univ_a/core/canvas.users"],
            [
                "univ_a/core/canvas.users",
                "univ_b/snap/canvas.courses",
                "univ_a/snap/canvas.courses",
            ],
        ),
    ],
    ids=[
        "exact-address",
        "profile-glob",
        "address-glob",
        "profile/target",
        "target-name",
        "target-glob",
        "list-target-name",
        "list-by-table-address",
        "list-by-own-address",
        "list-by-table-glob",
        "list-by-namespace-and-table-glob",
        "union-in-config-order",
    ],
)
def test_target_selection(selectors, expected):
    config = make_config(*ORDERED, profiles=PROFILES)

    assert addresses(plan(config, State(), targets=selectors)) == expected


@pytest.mark.parametrize(
    "selector",
    [
        "univ_a/core/canvas.courses",
        "univ_a/logs/canvas_logs.users",
        "univ_b/logs/canvas.users",
        "nothing",
        "CORE",
    ],
)
def test_target_matching_nothing_is_refused(selector):
    config = make_config(*ORDERED, profiles=PROFILES)

    with pytest.raises(ConfigError) as caught:
        plan(config, State(), targets=["core", selector])

    assert caught.value.message == f"--target {selector}: matches no step"
    assert "profile/target/namespace.table" in (caught.value.hint or "")


def test_target_must_match_within_the_selected_profiles():
    config = make_config(*ORDERED, profiles=PROFILES)

    with pytest.raises(ConfigError, match="--target univ_b/core: matches no step"):
        plan(config, State(), profiles=["univ_a"], targets=["univ_b/core"])


def test_profile_without_targets_gives_an_empty_plan():
    config = make_config(
        {"name": "core", "profiles": ["univ_a"], "tables": ["a"]}, profiles=("univ_a", "univ_c")
    )

    result = plan(config, State(), profiles=["univ_c"])

    assert result.steps == ()
    assert not result.has_changes
    assert render_plan(result) == "Nothing to do: no step matches."
    assert result.to_json() == {"steps": [], "summary": {}}


def test_matches_checks_address_profile_target_and_target_name():
    step = Step("univ_a", "core", "canvas", "accounts", "snapshot", "r")

    assert matches(step, ["univ_a/core/canvas.accounts"])
    assert matches(step, ["univ_a/core"])
    assert matches(step, ["core"])
    assert not matches(step, ["univ_a"])
    assert not matches(step, ["canvas.accounts"])


# --------------------------------------------------------------------------- rendering


def mixed_plan() -> Plan:
    config = make_config(
        {"name": "core", "tables": ["accounts", "courses", "users"]},
        {"name": "logs", "namespace": "canvas_logs", "tables": "all"},
    )
    state = state_with(
        **{
            "univ_a/core/canvas.courses": StepState(watermark=T1),
            "univ_a/core/canvas.users": StepState(pending=pending()),
        }
    )
    return plan(config, state)


def test_text_rendering():
    text = render_plan(mixed_plan())

    assert text == (
        "Plan: 4 steps (1 incremental, 1 list, 1 resume, 1 snapshot)\n"
        "\n"
        "  + univ_a/core/canvas.accounts  snapshot                                "
        "(first run: no watermark in state)\n"
        "  ~ univ_a/core/canvas.courses   incremental since 2026-11-02T03:04:05Z  "
        "(continues from the last run)\n"
        "  > univ_a/core/canvas.users     resume incremental job job-7            "
        "(a job an earlier apply started is still to be collected)\n"
        "  ? univ_a/logs/canvas_logs.*    list canvas_logs tables at apply        "
        '(tables = "all")\n'
        "\n"
        "Legend: + snapshot  ~ incremental  > resume a started job  ? list tables, then plan each"
    )


def test_text_rendering_singular():
    text = render_plan(plan(make_config(), State()))

    assert text.startswith(
        "Plan: 1 step (1 snapshot)\n\n  + univ_a/core/canvas.accounts  snapshot  ("
    )


def test_json_rendering():
    data = mixed_plan().to_json()

    assert data["summary"] == {"incremental": 1, "list": 1, "resume": 1, "snapshot": 1}
    assert [s["action"] for s in data["steps"]] == ["snapshot", "incremental", "resume", "list"]
    assert data["steps"][2] == {
        "address": "univ_a/core/canvas.users",
        "profile": "univ_a",
        "target": "core",
        "namespace": "canvas",
        "table": "users",
        "action": "resume",
        "since": "2026-11-01T00:00:00Z",
        "job_id": "job-7",
        "resume_kind": "incremental",
        "reason": "a job an earlier apply started is still to be collected",
        "error": None,
    }
    assert data["steps"][1]["since"] == "2026-11-02T03:04:05Z"
    assert data["steps"][3]["table"] is None
    assert data["steps"][3]["address"] == "univ_a/logs/canvas_logs.*"
    assert json.loads(json.dumps(data)) == data


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "-"),
        (T1, "2026-11-02T03:04:05Z"),
        (
            datetime(2026, 11, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))),
            "2026-11-02T03:04:05Z",
        ),
        (datetime(2026, 11, 2, 3, 4, 5, 250000, tzinfo=UTC), "2026-11-02T03:04:05.250000Z"),
    ],
)
def test_format_time_is_utc_with_z(value, text):
    assert format_time(value) == text


def test_since_from_config_in_another_zone_renders_in_utc():
    config = make_config({"name": "core", "tables": ["a"], "since": "2026-11-01T02:00:00+02:00"})

    assert one(config).describe() == "incremental since 2026-11-01T00:00:00Z"


# --------------------------------------------------------------------------- dapctl plan

CLI_CONFIG = """
[profiles.univ_a]
emulator = true

[profiles.univ_b]
client_id = "b"
client_secret_env = "UNIV_B_SECRET"

[[targets]]
name = "core"
profiles = ["univ_a"]
tables = ["accounts", "courses"]
"""


def test_cli_plan_text(write_config, run_cli):
    path = write_config(CLI_CONFIG)

    result = run_cli("plan", str(path))

    assert result.code == 0, result.stderr
    assert result.stdout.startswith("Plan: 2 steps (2 snapshot)\n")
    assert "  + univ_a/core/canvas.accounts  snapshot" in result.stdout
    assert "  + univ_a/core/canvas.courses   snapshot" in result.stdout
    assert result.stderr == ""


def test_cli_plan_json_equals_the_plan(write_config, run_cli):
    path = write_config(CLI_CONFIG)

    result = run_cli("plan", str(path), "--json", "--target", "univ_a/core/canvas.courses")

    assert result.code == 0
    assert json.loads(result.stdout) == {
        "ok": True,
        "steps": [
            {
                "address": "univ_a/core/canvas.courses",
                "profile": "univ_a",
                "target": "core",
                "namespace": "canvas",
                "table": "courses",
                "action": "snapshot",
                "since": None,
                "job_id": None,
                "resume_kind": None,
                "reason": "first run: no watermark in state",
                "error": None,
            }
        ],
        "summary": {"snapshot": 1},
        "orphans": [],
    }


def test_cli_detailed_exitcode_is_2_with_pending_steps(write_config, run_cli):
    path = write_config(CLI_CONFIG)

    assert run_cli("plan", str(path), "--detailed-exitcode").code == 2
    assert run_cli("plan", str(path), "--detailed-exitcode", "--json").code == 2


def test_cli_detailed_exitcode_is_0_only_for_an_empty_selection(write_config, run_cli):
    # Every selected table always has a step, so the plan is empty only when --profile picks
    # a profile that no target runs for.
    path = write_config(CLI_CONFIG)

    result = run_cli("plan", str(path), "--profile", "univ_b", "--detailed-exitcode")

    assert result.code == 0, result.stderr
    assert result.stdout == "Nothing to do: no step matches.\n"


def test_cli_plan_checks_credentials_of_planned_profiles_only(write_config, run_cli):
    path = write_config(
        CLI_CONFIG + '\n[[targets]]\nname = "b_only"\nprofiles = ["univ_b"]\ntables = ["users"]\n'
    )

    only_a = run_cli("plan", str(path), "--profile", "univ_a", "--require-credentials")
    every = run_cli("plan", str(path), "--require-credentials")

    assert only_a.code == 0, only_a.stderr
    assert every.code == 1
    assert "profiles.univ_b.client_secret_env: environment variable UNIV_B_SECRET is not set" in (
        every.stderr
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ("--target", "nothing"),
            "Error: --target nothing: matches no step\n  hint: addresses look like",
        ),
        (
            ("--profile", "univ_z"),
            "Error: --profile univ_z: no such profile; profiles are: univ_a, univ_b",
        ),
    ],
)
def test_cli_bad_selection_exits_1(argv, message, write_config, run_cli, tmp_path):
    path = write_config(CLI_CONFIG)

    result = run_cli("plan", str(path), *argv, "--detailed-exitcode")

    assert result.code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(message)
    assert list(tmp_path.iterdir()) == [path]


def test_cli_plan_writes_nothing(write_config, run_cli, tmp_path):
    path = write_config(CLI_CONFIG)

    run_cli("plan", str(path))

    assert list(tmp_path.iterdir()) == [path]


def test_orphans_are_the_addresses_no_target_declares():
    config = make_config(*ORDERED, profiles=PROFILES)
    kept = ["univ_a/core/canvas.users", "univ_b/logs/canvas_logs.web_logs"]
    lost = [
        "univ_a/logs/canvas_logs.web_logs",
        "univ_a/old/canvas.users",
        "univ_c/core/canvas.users",
    ]
    state = state_with(**{a: StepState(watermark=T1) for a in [*kept, *lost]})

    assert orphans(config, state) == lost


def test_expand_refuses_names_unfit_for_a_path_segment():
    # A fuzzed server listed a 10,000-character table name: its file name was too long for
    # the file system, and the step failed as a bug (OSError) instead of a refusal.
    config = make_config({"name": "logs", "namespace": "canvas_logs", "tables": "all"})
    target = config.targets[0]
    longest, too_long = "t" * 128, "t" * 129
    listed = ["web_logs", longest, too_long, "a/b", "..", "ok"]

    steps, unsafe = expand("univ_a", target, listed, State(), [])

    assert [s.table for s in steps] == ["ok", longest, "web_logs"]
    assert unsafe == [too_long, "a/b", ".."]


def test_in_turns_lets_every_profile_start_its_first_steps_at_once():
    from dapctl.plan import in_turns

    steps = [
        Step(p, "t", "canvas", t, "snapshot", "no watermark yet")
        for p, t in [("a", "x"), ("a", "y"), ("a", "z"), ("b", "x"), ("c", "x"), ("c", "y")]
    ]
    order = [s.address for s in in_turns(steps)]
    assert order == [
        "a/t/canvas.x", "b/t/canvas.x", "c/t/canvas.x", "a/t/canvas.y", "c/t/canvas.y",
        "a/t/canvas.z",
    ]  # fmt: skip

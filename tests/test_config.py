"""The config models on their own: defaults, cross-field rules, and secrets kept out of repr.

File-level behaviour (line numbers, "did you mean", the CLI's exit status) is in
``test_loading.py``; these tests feed plain dicts to ``Config.model_validate``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from dapctl.config import (
    DEFAULT_OUTPUT,
    PLACEHOLDERS,
    Config,
    PathError,
    Profile,
    template_fields,
)

SECRET = "inline-Secret-VALUE-9f8e7d"


def config(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "profiles": {"univ_a": {"client_id": "id", "client_secret_env": "S"}},
        "targets": [{"name": "core", "tables": ["accounts"]}],
    }
    raw.update(overrides)
    return raw


def errors_of(raw: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    """(loc, message) per error, with a PathError's own loc appended as the loader does."""
    with pytest.raises(ValidationError) as caught:
        Config.model_validate(raw)
    found = []
    for error in caught.value.errors():
        cause = error.get("ctx", {}).get("error")
        loc = (*error["loc"], *cause.loc) if isinstance(cause, PathError) else error["loc"]
        found.append((tuple(loc), error["msg"]))
    return found


def test_defaults():
    parsed = Config.model_validate(config())

    assert parsed.settings.state == "dapctl.state.json"
    assert (parsed.settings.concurrency, parsed.settings.refresh_margin) == (4, 300.0)
    assert parsed.settings.on_snapshot_required == "snapshot"
    assert (parsed.retry.attempts, parsed.retry.initial_backoff, parsed.retry.max_backoff) == (
        5,
        1.0,
        60.0,
    )
    profile = parsed.profiles["univ_a"]
    assert (profile.base_url, profile.emulator) == (None, False)
    limits = profile.rate_limits
    assert (
        limits.jobs_per_minute,
        limits.job_status_per_minute,
        limits.tables_per_minute,
        limits.schema_per_minute,
        limits.urls_per_minute,
    ) == (5, 500, 5, 500, 200)
    target = parsed.targets[0]
    assert target.output == DEFAULT_OUTPUT
    assert (target.namespace, target.format, target.sync, target.since) == (
        "canvas",
        "jsonl",
        "incremental",
        None,
    )


def test_models_are_frozen():
    parsed = Config.model_validate(config())

    with pytest.raises(ValidationError):
        parsed.targets[0].format = "csv"  # type: ignore[misc]


def test_catch_up_after_defaults_to_an_hour():
    assert Config.model_validate(config()).settings.catch_up_after == 3600.0


@pytest.mark.parametrize(("given", "kept"), [(0, 0.0), (90.5, 90.5), ("never", "never")])
def test_catch_up_after_takes_seconds_or_never(given, kept):
    parsed = Config.model_validate(config(settings={"catch_up_after": given}))

    assert parsed.settings.catch_up_after == kept


@pytest.mark.parametrize("given", [-1, "1h", "Never", True, float("nan"), [60]])
def test_catch_up_after_refuses_what_is_no_duration(given):
    [(loc, message)] = errors_of(config(settings={"catch_up_after": given}))

    assert loc == ("settings", "catch_up_after")
    assert 'expected seconds, 0 or more, or "never"' in message


def test_since_keeps_its_zone():
    raw = config(targets=[{"name": "core", "tables": ["a"], "since": "2026-11-01T02:00:00+02:00"}])

    since = Config.model_validate(raw).targets[0].since

    assert since == datetime(2026, 11, 1, tzinfo=UTC)
    assert since.utcoffset() == timedelta(hours=2)


def test_since_without_zone_is_refused():
    raw = config(targets=[{"name": "core", "tables": ["a"], "since": datetime(2026, 11, 1)}])

    [(loc, _)] = errors_of(raw)

    assert loc == ("targets", 0, "since")


def test_tables_all():
    raw = config(targets=[{"name": "core", "tables": "all"}])

    assert Config.model_validate(raw).targets[0].tables == "all"


def test_duplicate_target_names_point_at_the_second():
    raw = config(
        targets=[
            {"name": "core", "tables": ["a"]},
            {"name": "other", "tables": ["b"]},
            {"name": "core", "tables": ["c"]},
        ]
    )

    [(loc, message)] = errors_of(raw)

    assert loc == ("targets", 2, "name")
    assert "two targets are named 'core'" in message


def test_unknown_profile_lists_the_known_ones():
    raw = config(
        profiles={"b": {"emulator": True}, "a": {"emulator": True}},
        targets=[{"name": "core", "profiles": ["a", "c"], "tables": ["x"]}],
    )

    [(loc, message)] = errors_of(raw)

    assert loc == ("targets", 0, "profiles")
    assert "unknown profile 'c'; profiles are: a, b" in message


def test_target_profiles_follow_declaration_order_not_the_targets_list():
    parsed = Config.model_validate(
        config(
            profiles={"z": {"emulator": True}, "a": {"emulator": True}, "m": {"emulator": True}},
            targets=[
                {"name": "some", "profiles": ["m", "z"], "tables": ["x"]},
                {"name": "every", "tables": ["y"]},
            ],
        )
    )

    assert parsed.target_profiles(parsed.targets[0]) == ["z", "m"]
    assert parsed.target_profiles(parsed.targets[1]) == ["z", "a", "m"]


@pytest.mark.parametrize(
    "outputs",
    [
        ["d/{table}-{timestamp}", "d/./{table}-{timestamp}"],
        ["d/{table}-{timestamp}", "d//{table}-{timestamp}"],
    ],
    ids=["dot-segment", "double-slash"],
)
def test_output_collision_is_found_after_normalising_paths(outputs):
    raw = config(
        targets=[
            {"name": "one", "tables": ["a"], "output": outputs[0]},
            {"name": "two", "tables": ["a"], "output": outputs[1]},
        ]
    )

    [(loc, message)] = errors_of(raw)

    assert loc == ("targets", 1, "output")
    assert "univ_a/one/canvas.a and univ_a/two/canvas.a" in message


def test_outputs_distinct_by_namespace_format_or_target_are_accepted():
    raw = config(
        targets=[
            {"name": "one", "tables": ["a"], "output": "{namespace}/{table}-{timestamp}"},
            {
                "name": "two",
                "namespace": "canvas_logs",
                "tables": ["a"],
                "output": "{namespace}/{table}-{timestamp}",
            },
            {
                "name": "three",
                "tables": ["a"],
                "format": "csv",
                "output": "{table}-{timestamp}.{format}",
            },
            {"name": "four", "tables": ["a"], "output": "{target}/{table}-{timestamp}"},
        ]
    )

    assert len(Config.model_validate(raw).targets) == 4


def test_kind_does_not_separate_outputs():
    # {kind} differs between runs, not between the steps of one run.
    raw = config(
        targets=[
            {"name": "one", "tables": ["a"], "output": "{kind}/{table}-{timestamp}"},
            {
                "name": "two",
                "tables": ["a"],
                "sync": "snapshot",
                "output": "{kind}/{table}-{timestamp}",
            },
        ]
    )

    [(loc, message)] = errors_of(raw)

    assert loc == ("targets", 1, "output")
    assert "same output path '{kind}/a-{timestamp}'" in message


def test_snapshot_sync_needs_no_timestamp():
    raw = config(
        targets=[{"name": "core", "tables": ["a"], "sync": "snapshot", "output": "{table}.gz"}]
    )

    assert Config.model_validate(raw).targets[0].output == "{table}.gz"


def test_all_tables_target_collides_with_an_explicit_table_of_the_same_namespace():
    raw = config(
        targets=[
            {"name": "everything", "tables": "all"},
            {"name": "core", "tables": ["accounts"]},
        ]
    )

    [(loc, message)] = errors_of(raw)

    assert loc == ("targets", 1, "output")
    assert "univ_a/everything/canvas.*" in message


@pytest.mark.parametrize(
    ("template", "fields"),
    [
        (DEFAULT_OUTPUT, ["profile", "namespace", "table", "kind", "timestamp", "format"]),
        ("plain/path.gz", []),
        ("{{literal}}/{table}", ["table"]),
        ("{table!r}-{timestamp:>5}", ["table", "timestamp"]),
    ],
)
def test_template_fields(template, fields):
    assert template_fields(template) == fields


@pytest.mark.parametrize("template", ["{table", "table}", "{a{b}"])
def test_template_fields_malformed(template):
    with pytest.raises(ValueError, match="malformed output template"):
        template_fields(template)


def test_every_placeholder_is_accepted():
    output = "/".join("{" + p + "}" for p in PLACEHOLDERS)

    parsed = Config.model_validate(
        config(targets=[{"name": "core", "tables": ["a"], "output": output}])
    )

    assert parsed.targets[0].output == output


def test_secret_is_not_in_any_repr():
    parsed = Config.model_validate(
        config(profiles={"univ_a": {"client_id": "id", "client_secret": SECRET}})
    )
    profile = parsed.profiles["univ_a"]

    assert profile.client_secret is not None
    assert profile.client_secret.get_secret_value() == SECRET
    for text in (repr(parsed), str(parsed), repr(profile), str(profile), repr(parsed.model_dump())):
        assert SECRET not in text


def test_profile_with_only_an_emulator_flag():
    assert Profile(emulator=True).emulator is True


def test_since_is_checked_against_the_clock_the_loader_passes():
    target = {"name": "core", "tables": ["accounts"], "since": "2026-11-01T00:00:00Z"}
    raw = {"profiles": {"a": {"emulator": True}}, "targets": [target]}
    before = datetime(2026, 10, 1, tzinfo=UTC)
    with pytest.raises(ValidationError, match="since is in the future"):
        Config.model_validate(raw, context={"now": before})
    Config.model_validate(raw, context={"now": before + timedelta(days=31)})


def database_target(**keys: Any) -> dict[str, Any]:
    target = {"name": "core", "tables": ["accounts"], "database": "wh", **keys}
    return config(databases={"wh": {"url": "duckdb:///x.duckdb"}}, targets=[target])


@pytest.mark.parametrize(
    ("keys", "key", "shown"),
    [
        ({"db_schema": 'x"; drop table y; --'}, "db_schema", 'x"; drop table y; --'),
        ({"db_table": "a'b"}, "db_table", "a'b"),
        ({"db_schema": "Weird Schema ü {profile}"}, "db_schema", "Weird Schema ü univ_a"),
        ({"name": "core-2", "db_table": "{target}_{table}"}, "db_table", "core-2_accounts"),
        ({"db_table": "{table}_" + "x" * 60}, "db_table", "accounts_" + "x" * 60),
        ({"tables": "all", "db_table": "t {table}"}, "db_table", "t *"),
        ({"tables": ["2fa"]}, "db_table", "2fa"),
    ],
)
def test_a_database_name_that_is_no_identifier_is_refused_as_rendered(keys, key, shown):
    ((loc, message),) = errors_of(database_target(**keys))

    assert loc == ("targets", 0, key)
    assert f"{shown!r}, the {key} of step univ_a/" in message
    assert "use letters, digits and underscores" in message


@pytest.mark.parametrize(
    "keys",
    [
        {},
        {"db_schema": "{profile}_{namespace}", "db_table": "{target}_{table}"},
        {"db_schema": "Canvas_Data", "db_table": "_t$1"},
        {"tables": "all", "db_table": "{profile}_{table}"},
        {"db_table": "{table}_" + "x" * 54},  # 63 bytes
    ],
)
def test_identifiers_the_databases_take_stay_legal(keys):
    Config.model_validate(database_target(**keys))

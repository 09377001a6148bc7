"""One table of rate-limit budgets (``dapctl.budgets``) drives every place that names them.

The config keys, the JSON Schema, the starter config, the README's row, the client's
limiters and the emulator's endpoint classes, routes and flags all list the same budgets,
by the same names; a new endpoint class is one row of ``BUDGETS``.
"""

from __future__ import annotations

import argparse
import json
import re
import tomllib
from pathlib import Path

import pytest

from dapctl.api.ratelimit import RateLimits
from dapctl.budgets import BUDGETS, OLD_KEYS, RateLimitSettings
from dapctl.cli.starter import STARTER
from dapctl.emulator import cli as emulator_cli
from dapctl.emulator.api import ROUTES
from dapctl.emulator.settings import EmulatorSettings
from dapctl.emulator.settings import RateLimits as ServerLimits

ROOT = Path(__file__).resolve().parent.parent
NAMES = [budget.name for budget in BUDGETS]
KEYS = {budget.key: budget.per_minute for budget in BUDGETS}


def _emulator_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dapctl emulator")
    emulator_cli.configure_parser(parser)
    return parser.parse_args(argv)


def _starter_rate_limits() -> dict[str, float]:
    block = re.search(r"^# rate_limits = \{.*?\}$", STARTER, re.M | re.S)
    assert block is not None, "the starter config has no rate_limits line"
    text = re.sub(r"^#", "", block.group(0), flags=re.M).replace("\n", " ")
    return tomllib.loads(text)["rate_limits"]  # type: ignore[no-any-return]


def _schema_keys() -> dict[str, float]:
    schema = json.loads((ROOT / "schemas" / "dapctl.schema.json").read_text(encoding="utf-8"))
    properties = schema["$defs"]["RateLimitSettings"]["properties"]
    return {key: spec["default"] for key, spec in properties.items() if key not in OLD_KEYS}


def _readme_keys() -> dict[str, float]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    row = re.search(r"^\| `rate_limits` \| `(\{[^`]*\})`", readme, re.M)
    assert row is not None, "the README's config table has no rate_limits row"
    return tomllib.loads(f"rate_limits = {row.group(1)}")["rate_limits"]  # type: ignore[no-any-return]


def _client_uses() -> set[str]:
    source = (ROOT / "dapctl" / "api" / "client.py").read_text(encoding="utf-8")
    return set(re.findall(r"self\._limits\.(\w+)", source))


def test_every_place_that_names_the_budgets_lists_the_table():
    settings = RateLimitSettings()
    config_keys = {b.key: settings.per_minute(b) for b in BUDGETS}
    client = RateLimits.from_settings(settings)
    server = ServerLimits()
    flags = _emulator_args()

    assert list(config_keys) == [k for k in RateLimitSettings.model_fields if k not in OLD_KEYS]
    assert config_keys == KEYS
    assert _schema_keys() == KEYS
    assert _starter_rate_limits() == KEYS
    assert _readme_keys() == KEYS
    assert list(client.by_name()) == NAMES
    assert {n: client[n].capacity for n in NAMES} == {b.name: b.per_minute for b in BUDGETS}
    assert _client_uses() == set(NAMES), "the client uses a budget the table lacks, or not one"
    assert [name for name, _ in server.per_window] == NAMES
    assert {server.limit(b.name) for b in BUDGETS} == {b.per_minute for b in BUDGETS}
    assert sorted({route[2] for route in ROUTES}) == sorted(NAMES)
    assert {n: getattr(flags, f"rate_limit_{n}") for n in NAMES} == {
        b.name: b.per_minute for b in BUDGETS
    }


def test_a_wait_names_the_key_that_sets_its_budget():
    settings = RateLimitSettings(job_status_per_minute=7)
    limits = RateLimits.from_settings(settings)

    assert limits.job_status.purpose == "a job status slot: job_status_per_minute = 7"
    assert limits["job_status"] is limits.job_status
    with pytest.raises(AttributeError, match="no rate-limit budget named 'status'"):
        limits.status  # noqa: B018


def test_the_emulator_knows_its_endpoint_classes_by_the_clients_names():
    assert ServerLimits(job_status=3).limit("job_status") == 3
    with pytest.raises(ValueError, match="no endpoint class"):
        ServerLimits(status=3)
    old = _emulator_args("--rate-limit-status", "7")
    new = _emulator_args("--rate-limit-job-status", "7")
    for args in (old, new):
        settings, _ = emulator_cli.settings_from_args(args)
        assert isinstance(settings, EmulatorSettings) and settings.limits is not None
        assert settings.limits.limit("job_status") == 7

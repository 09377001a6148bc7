"""Saved plans (issue 23, item 5): ``plan -out FILE``, ``show FILE``, ``apply FILE``.

A saved plan is carried out exactly: the steps it names and no others. It is refused, with
nothing run, when the state changed since (serial), the config file changed (hash), or it is
older than ``plan_max_age``; and a plan file holds no secret.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from freezegun import freeze_time

from tests.apply_helpers import apply, config_text, environ


def _setup(make_emulator, write_config, *, settings: str = ""):
    emu = make_emulator()
    path = write_config(config_text(emu, tables='["accounts", "users"]', settings=settings))
    return emu, path


def _plan(run_cli, path: Path, out: Path, *flags: str):
    result = run_cli("plan", str(path), "-out", str(out), *flags)
    assert result.code == 0, result.stderr
    return result


def test_apply_carries_out_exactly_the_saved_steps(make_emulator, write_config, run_cli, tmp_path):
    emu, path = _setup(make_emulator, write_config)
    out = tmp_path / "reviewed.plan"
    _plan(run_cli, path, out, "--target", "univ_a/core/canvas.accounts")

    result = run_cli("apply", str(out), "--json", environ=environ(emu))

    assert result.code == 0, result.stderr
    done = {r["address"]: r["kind"] for r in json.loads(result.stdout)["results"]}
    assert done == {"univ_a/core/canvas.accounts": "snapshot"}  # users was not in the plan
    assert emu.stats.jobs_created == 1


def test_show_prints_the_saved_plan(make_emulator, write_config, run_cli, tmp_path):
    emu, path = _setup(make_emulator, write_config)
    out = tmp_path / "reviewed.plan"
    printed = _plan(run_cli, path, out)

    shown = run_cli("show", str(out))
    document = json.loads(run_cli("show", str(out), "--json").stdout)

    assert shown.code == 0
    assert "univ_a/core/canvas.accounts" in shown.stdout and "snapshot" in shown.stdout
    assert shown.stdout.split("\n\n", 1)[1].strip() in printed.stdout
    assert [s["address"] for s in document["steps"]] == [
        "univ_a/core/canvas.accounts",
        "univ_a/core/canvas.users",
    ]
    assert emu.credentials[1] not in out.read_text()


def test_a_plan_is_refused_once_the_state_changed(make_emulator, write_config, run_cli, tmp_path):
    emu, path = _setup(make_emulator, write_config)
    out = tmp_path / "reviewed.plan"
    _plan(run_cli, path, out)
    apply(path, emu)  # another apply moved the state on
    jobs = emu.stats.jobs_created

    result = run_cli("apply", str(out), environ=environ(emu))

    assert result.code == 1
    assert "the state changed since the plan was made" in result.stderr
    assert emu.stats.jobs_created == jobs  # nothing ran


def test_a_plan_is_refused_once_the_config_changed(make_emulator, write_config, run_cli, tmp_path):
    emu, path = _setup(make_emulator, write_config)
    out = tmp_path / "reviewed.plan"
    _plan(run_cli, path, out)
    path.write_text(path.read_text() + "\n# reviewed? not this\n")

    result = run_cli("apply", str(out), environ=environ(emu))

    assert result.code == 1 and "the config file changed" in result.stderr
    assert emu.stats.jobs_created == 0


def test_a_stale_plan_is_refused(make_emulator, write_config, run_cli, tmp_path):
    emu, path = _setup(make_emulator, write_config, settings='plan_max_age = "1h"')
    out = tmp_path / "reviewed.plan"
    with freeze_time(datetime.now(UTC) - timedelta(hours=2)):
        _plan(run_cli, path, out)

    result = run_cli("apply", str(out), environ=environ(emu))

    assert result.code == 1
    assert "older than [settings] plan_max_age (1 h)" in result.stderr
    assert emu.stats.jobs_created == 0


def test_a_saved_plan_takes_no_selection_flags(make_emulator, write_config, run_cli, tmp_path):
    emu, path = _setup(make_emulator, write_config)
    out = tmp_path / "reviewed.plan"
    _plan(run_cli, path, out)

    result = run_cli("apply", str(out), "--target", "x", environ=environ(emu))

    assert result.code == 1 and "carries its own selection" in result.stderr


def test_show_refuses_a_file_that_is_no_plan(write_config, run_cli, make_emulator):
    _, path = _setup(make_emulator, write_config)

    result = run_cli("show", str(path))

    assert result.code == 1 and "not a saved plan" in result.stderr

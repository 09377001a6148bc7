"""Operating scheduled runs (issue 23): freshness and ``dapctl status``, the run history and
``dapctl runs``, and the Prometheus metrics file.

Applies run against the emulator; ``status`` is read at later moments with freezegun, so a
table goes from fresh to warn to error without waiting. A SIGKILLed apply (a process of its
own) leaves its run readable, and the next apply marks it interrupted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time
from prometheus_client.parser import text_string_to_metric_families

from dapctl.config import parse_duration
from dapctl.errors import ExitStatus
from dapctl.loading import load_config
from tests.apply_helpers import apply, config_text, environ

FRESH = 'freshness = { warn_after = "6h", error_after = "1d" }'


def _config(emu, *, settings: str = "", extra_target: str = FRESH, tables='["accounts"]') -> str:
    return config_text(emu, tables=tables, settings=settings, extra_target=extra_target)


def _mark(path: Path, table: str = "accounts") -> datetime:
    """The table's watermark (the emulator's data clock is not the wall clock)."""
    steps = json.loads((path.parent / "state" / "dapctl.state.json").read_text())["steps"]
    return datetime.fromisoformat(steps[f"univ_a/core/canvas.{table}"]["watermark"])


def _status(run_cli, path: Path, *flags: str):
    result = run_cli("status", str(path), "--json", *flags)
    return result, json.loads(result.stdout)


def test_status_turns_from_fresh_to_warn_to_error_as_the_data_ages(
    make_emulator, write_config, run_cli
):
    emu = make_emulator()
    path = write_config(_config(emu))
    apply(path, emu)
    mark = _mark(path)

    verdicts = {}
    for hours, code in ((1, 0), (7, 4), (25, 5)):
        with freeze_time(mark + timedelta(hours=hours)):
            result, document = _status(run_cli, path)
        verdicts[hours] = document["tables"][0]["verdict"]
        assert result.code == code, (hours, result.stderr)
        assert document["tables"][0]["age_seconds"] == pytest.approx(hours * 3600)

    assert verdicts == {1: "fresh", 7: "warn", 25: "error"}
    assert document["exit"] == ExitStatus.STALE_ERROR
    assert document["tables"][0]["last_status"] == "ok"
    assert document["tables"][0]["last_run"] is not None


def test_a_table_never_applied_counts_as_beyond_error(make_emulator, write_config, run_cli):
    emu = make_emulator()
    path = write_config(_config(emu, tables='["accounts", "users"]'))
    apply(path, emu, targets=["univ_a/core/canvas.accounts"])

    with freeze_time(_mark(path) + timedelta(hours=1)):
        result, document = _status(run_cli, path)
        text = run_cli("status", str(path))

    assert result.code == ExitStatus.STALE_ERROR == 5
    found = {t["table"]: t["verdict"] for t in document["tables"]}
    assert found == {"accounts": "fresh", "users": "never"}
    assert "never" in text.stdout and text.code == 5


def test_status_needs_no_credentials_and_shows_no_secret(make_emulator, write_config, run_cli):
    emu = make_emulator()
    path = write_config(_config(emu))
    apply(path, emu)

    with freeze_time(_mark(path) + timedelta(hours=1)):
        result = run_cli("status", str(path), environ={})  # no secret variable at all

    assert result.code == 0, result.stderr
    assert emu.credentials[1] not in result.stdout + result.stderr


def test_a_state_that_cannot_be_read_is_an_error(make_emulator, write_config, run_cli):
    emu = make_emulator()
    path = write_config(_config(emu))
    (path.parent / "state").mkdir()
    (path.parent / "state" / "dapctl.state.json").write_text("{not json")

    result = run_cli("status", str(path))

    assert result.code == ExitStatus.ERROR
    assert "not valid JSON" in result.stderr


@pytest.mark.parametrize(
    ("text", "seconds"), [("90m", 5400), ("6h", 21600), ("2d", 172800), ("30s", 30), (45, 45)]
)
def test_durations_read_as_the_config_writes_them(text, seconds):
    assert parse_duration(text) == seconds


def test_a_bad_duration_is_refused_naming_the_field(make_emulator, write_config, run_cli):
    emu = make_emulator()
    path = write_config(_config(emu, extra_target='freshness = { warn_after = "6x" }'))

    result = run_cli("validate", str(path))

    assert result.code == 1
    assert "targets[0].freshness.warn_after" in result.stderr
    assert '"90m", "6h" or "2d"' in result.stderr


def test_error_after_shorter_than_warn_after_is_refused(make_emulator, write_config, run_cli):
    emu = make_emulator()
    bad = 'freshness = { warn_after = "1d", error_after = "6h" }'
    path = write_config(_config(emu, extra_target=bad))

    result = run_cli("validate", str(path))

    assert result.code == 1 and "error_after must not be shorter" in result.stderr


def test_catch_up_after_defaults_to_the_targets_warn_after(make_emulator, write_config):
    emu = make_emulator()
    config = load_config(write_config(_config(emu))).config
    explicit = load_config(
        write_config(_config(emu, settings="catch_up_after = 60"), name="explicit.toml")
    ).config
    plain = load_config(write_config(_config(emu, extra_target=""), name="plain.toml")).config

    assert config.catch_up_after(config.targets[0]) == 6 * 3600
    assert explicit.catch_up_after(explicit.targets[0]) == 60  # the file's own word wins
    assert plain.catch_up_after(plain.targets[0]) == 3600  # the setting's default


def _runs(run_cli, path: Path) -> list[dict]:
    result = run_cli("runs", str(path), "--json")
    assert result.code == 0, result.stderr
    return json.loads(result.stdout)["runs"]


def test_every_apply_is_recorded_and_the_history_is_trimmed_to_keep_runs(
    make_emulator, write_config, run_cli
):
    emu = make_emulator()
    path = write_config(_config(emu, settings="keep_runs = 2", tables='["accounts", "users"]'))
    first = apply(path, emu)
    for _ in range(2):
        emu.advance(600)
        emu.change("canvas", "accounts", inserts=2, updates=1, deletes=1)
        apply(path, emu)

    runs = _runs(run_cli, path)

    assert len(runs) == 2  # the first of three was trimmed
    assert all(r["outcome"] == "succeeded" for r in runs)
    assert runs[0]["run_id"] > runs[1]["run_id"]  # newest first
    shown = run_cli("runs", "show", str(path), runs[0]["run_id"], "--json")
    steps = {s["address"]: s for s in json.loads(shown.stdout)["steps"]}
    assert steps["univ_a/core/canvas.accounts"]["kind"] == "incremental"
    assert steps["univ_a/core/canvas.accounts"]["records"] > 0
    assert steps["univ_a/core/canvas.accounts"]["job_id"]
    assert first[0].job_id not in shown.stdout
    text = run_cli("runs", str(path))
    assert runs[0]["run_id"] in text.stdout and "succeeded" in text.stdout


def test_a_failed_step_is_recorded_with_its_error(make_emulator, write_config, run_cli):
    emu = make_emulator(failing_tables=["canvas.accounts"])
    path = write_config(_config(emu))

    run_cli("apply", str(path), environ=environ(emu))
    [run] = _runs(run_cli, path)
    shown = json.loads(run_cli("runs", "show", str(path), run["run_id"], "--json").stdout)
    kept = path.parent / "state" / "dapctl.state.json.d" / "runs"
    written = "".join(p.read_text() for p in kept.glob("*.json"))

    assert emu.credentials[1] not in written and run["run_id"] in written  # no secret kept
    assert run["outcome"] == "failed"
    assert shown["steps"][0]["status"] == "failed"
    assert shown["steps"][0]["error"]["message"]
    status = run_cli("status", str(path), "--json")
    assert json.loads(status.stdout)["tables"][0]["last_status"] == "failed"


def test_runs_show_names_a_run_it_does_not_have(make_emulator, write_config, run_cli):
    emu = make_emulator()
    path = write_config(_config(emu))

    result = run_cli("runs", "show", str(path), "20990101T000000.000000Z-0000")

    assert result.code == 1 and "no run '20990101T000000.000000Z-0000'" in result.stderr


def test_a_killed_apply_leaves_its_run_readable_and_the_next_marks_it_interrupted(
    make_emulator, write_config, run_cli, tmp_path
):
    emu = make_emulator(job_delay=5.0)  # its job is still running when it is killed
    path = write_config(_config(emu))
    folder = path.parent / "state" / "dapctl.state.json.d" / "runs"
    env = {**os.environ, **environ(emu), "PYTHONPATH": str(Path(__file__).parents[1])}
    child = subprocess.Popen(
        [sys.executable, "-m", "dapctl", "apply", str(path)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not (folder.is_dir() and list(folder.glob("*.json"))):
        assert time.monotonic() < deadline, "the apply recorded no run"
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    [killed] = _runs(run_cli, path)
    assert killed["outcome"] == "running" and killed["ended"] is None

    emu.advance(120)
    apply(path, emu)

    runs = _runs(run_cli, path)
    assert [r["outcome"] for r in runs] == ["succeeded", "interrupted"]
    assert runs[1]["run_id"] == killed["run_id"] and runs[1]["ended"] is not None


def test_the_run_history_is_kept_in_a_postgresql_state(
    make_emulator, write_config, run_cli, pg_url
):
    emu = make_emulator()
    path = write_config(
        _config(emu).replace('state = "state/dapctl.state.json"', f'state = "{pg_url}"')
    )
    apply(path, emu)

    [run] = _runs(run_cli, path)

    assert run["outcome"] == "succeeded" and run["steps"] == {"ok": 1}


def _metrics(path: Path) -> dict[str, list]:
    families = text_string_to_metric_families(path.read_text())
    return {f.name: f.samples for f in families}


def test_metrics_parse_and_carry_the_right_values_after_a_chain_of_applies(
    make_emulator, write_config, run_cli, tmp_path
):
    emu = make_emulator()
    metrics = tmp_path / "textfile" / "dapctl.prom"
    path = write_config(_config(emu, tables='["accounts", "users"]'))
    apply(path, emu)
    emu.advance(600)
    emu.change("canvas", "accounts", inserts=3, updates=2, deletes=1)

    result = run_cli("apply", str(path), "--metrics-file", str(metrics), environ=environ(emu))

    assert result.code == 0, result.stderr
    state = json.loads((path.parent / "state" / "dapctl.state.json").read_text())["steps"]
    found = _metrics(metrics)
    marks = {s.labels["table"]: s.value for s in found["dapctl_table_watermark_timestamp_seconds"]}
    for table in ("accounts", "users"):
        want = datetime.fromisoformat(state[f"univ_a/core/canvas.{table}"]["watermark"])
        assert marks[table] == pytest.approx(want.timestamp())
    records = {s.labels["table"]: s.value for s in found["dapctl_table_last_records"]}
    assert records["accounts"] == state["univ_a/core/canvas.accounts"]["records"] > 0
    verdicts = {
        (s.labels["table"], s.labels["verdict"]): s.value for s in found["dapctl_table_freshness"]
    }
    # The emulator's data is a month behind the wall clock: beyond error_after.
    assert verdicts[("accounts", "error")] == 1 and verdicts[("accounts", "fresh")] == 0
    steps = {s.labels["status"]: s.value for s in found["dapctl_last_run_steps"]}
    assert steps["ok"] == 2 and steps["failed"] == 0
    assert found["dapctl_last_run_success"][0].value == 1
    assert found["dapctl_last_run_jobs_created"][0].value == 2
    assert oct(metrics.stat().st_mode & 0o777) == "0o644"  # node_exporter runs as another user
    assert emu.credentials[1] not in metrics.read_text()


def test_status_prints_prometheus_for_a_scraper_and_writes_the_settings_file(
    make_emulator, write_config, run_cli
):
    emu = make_emulator()
    path = write_config(_config(emu, settings='metrics_file = "metrics/dapctl.prom"'))
    apply(path, emu)

    result = run_cli("status", str(path), "--format", "prometheus")

    assert result.code == ExitStatus.STALE_ERROR  # the emulator's data is a month old
    printed = {f.name for f in text_string_to_metric_families(result.stdout)}
    assert "dapctl_table_age_seconds" in printed
    assert (path.parent / "metrics" / "dapctl.prom").is_file()


def test_429s_ridden_out_are_counted_in_the_run_and_the_metrics(
    make_emulator, write_config, run_cli, tmp_path
):
    emu = make_emulator(error_every=2, error_status=429, error_retry_after=0)
    metrics = tmp_path / "dapctl.prom"
    path = write_config(_config(emu))

    result = run_cli("apply", str(path), "--metrics-file", str(metrics), environ=environ(emu))

    assert result.code == 0, result.stderr
    [run] = _runs(run_cli, path)
    shown = json.loads(run_cli("runs", "show", str(path), run["run_id"], "--json").stdout)
    [step] = shown["steps"]
    assert step["throttled"] > 0 and step["transient_errors"] >= step["throttled"]
    assert _metrics(metrics)["dapctl_last_run_throttled"][0].value == step["throttled"]

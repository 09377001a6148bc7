"""Transient errors on a run that succeeds (issue 14 #17, #18): retried 5xx, 429s and cut
downloads are info, counted once at the end, and reach the progress display as what they
are; only retries that run out warn. End to end against the emulator's fault knobs."""

from __future__ import annotations

import json

from dapctl.apply import ApplyOptions
from dapctl.events import StepEvent
from dapctl.loading import load_config
from dapctl.wiring import run_apply
from tests.apply_helpers import FAST, config_text, environ


def test_a_run_that_rides_out_errors_warns_of_none_and_counts_them_once(
    make_emulator, write_config, run_cli
):
    emu = make_emulator(error_every=3, error_status=503, error_html=True, cut_every=2, part_size=10)
    # Faults this dense can hit one call five times running under concurrency: give the
    # retries room, so that the run rides them out (what this test is about).
    path = write_config(config_text(emu).replace("attempts = 5", "attempts = 20"))

    result = run_cli("apply", str(path), environ=environ(emu))

    assert result.code == 0, result.stderr
    ridden = emu.stats.injected_errors + emu.stats.downloads_cut
    assert emu.stats.injected_errors and emu.stats.downloads_cut
    assert "WARNING" not in result.stderr and "<html" not in result.stderr + result.stdout
    assert result.stdout.rstrip().endswith(f"Rode out {ridden} transient errors by retrying.")
    assert result.stdout.count("Rode out") == 1


def test_each_ridden_out_error_is_logged_at_info_and_counted_per_step(
    make_emulator, write_config, run_cli
):
    emu = make_emulator(error_every=4, error_status=502, error_html=True, cut_every=3)
    path = write_config(config_text(emu))

    result = run_cli("apply", str(path), "--json", "--log-level", "info", environ=environ(emu))

    assert result.code == 0, result.stderr
    retries = [line for line in result.stderr.splitlines() if "retrying in" in line]
    assert retries and all(line.startswith("INFO: ") for line in retries)
    assert any("HTTP 502: an HTML error page: '502 Bad Gateway'" in line for line in retries)
    steps = json.loads(result.stdout)["results"]
    ridden = emu.stats.injected_errors + emu.stats.downloads_cut
    assert sum(step["transient_errors"] for step in steps) == ridden == len(retries)


def test_retries_that_run_out_warn_and_fail_the_step(make_emulator, write_config, run_cli):
    emu = make_emulator(error_every=1, error_status=503)
    path = write_config(config_text(emu, tables='["accounts"]'))

    result = run_cli("apply", str(path), environ=environ(emu))

    assert result.code == 1
    [warning] = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
    assert "giving up after 5 attempts (HTTP 503" in warning
    assert "Rode out" not in result.stdout


def apply_events(emu, path) -> list[StepEvent]:
    events: list[StepEvent] = []
    results = run_apply(
        load_config(path),
        environ=environ(emu),
        options=ApplyOptions(),
        connection=FAST,
        on_event=events.append,
    )
    assert {r.status for r in results} == {"ok"}, results
    return events


def test_downloads_report_parts_done_of_the_jobs_parts(make_emulator, write_config):
    emu = make_emulator(part_size=10)  # 40 rows: four parts
    events = apply_events(emu, write_config(config_text(emu, tables='["accounts"]')))

    downloads = [e for e in events if e.phase == "downloading"]
    assert {e.part_count for e in downloads} == {4}
    assert downloads[0].parts == 0 and downloads[-1].parts == 4
    assert sorted({e.parts for e in downloads}) == [0, 1, 2, 3, 4]


def test_a_servers_429_reaches_the_step_as_a_retry_with_its_wait(make_emulator, write_config):
    emu = make_emulator(error_every=2, error_status=429, error_retry_after=0)
    events = apply_events(emu, write_config(config_text(emu, tables='["accounts"]')))

    retries = [e for e in events if e.phase == "retrying"]
    assert retries and all(e.address == "univ_a/core/canvas.accounts" for e in retries)
    assert {e.detail for e in retries} == {"HTTP 429: the server asked to slow down"}
    assert {e.seconds for e in retries} == {0.0}  # the server's Retry-After, not a backoff

"""Date placeholders in output templates (issue 24, item 3): ``{date}``, ``{year}``,
``{month}``, ``{day}`` of the job's time in UTC, for Hive-style partition layouts
(``dt={date}/``) that engines reading an archive of per-run files understand."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from dapctl.config import Target
from dapctl.template import output_pattern, render
from tests.apply_helpers import apply, config_text

LAYOUT = "out/{table}/year={year}/month={month}/day={day}/{kind}-{timestamp}.{format}.gz"


def test_dates_render_in_utc():
    target = Target(name="logs", tables=["web_logs"], output=LAYOUT)
    at = datetime(2026, 12, 6, 23, 30, tzinfo=timezone(timedelta(hours=-5)))  # 04:30Z next day

    path = render(target, profile="p", table="web_logs", kind="incremental", timestamp=at)

    assert path == ("out/web_logs/year=2026/month=12/day=07/incremental-20261207T043000Z.jsonl.gz")
    assert output_pattern(target, "p").fullmatch(path)


def test_an_apply_writes_into_the_dated_folder_of_its_data(make_emulator, write_config):
    emu = make_emulator()
    path = write_config(
        config_text(
            emu,
            tables='["accounts"]',
            output="out/{table}/dt={date}/{kind}-{timestamp}.{format}.gz",
        )
    )

    [result] = apply(path, emu)

    state = json.loads((path.parent / "state" / "dapctl.state.json").read_text())
    mark = datetime.fromisoformat(state["steps"]["univ_a/core/canvas.accounts"]["watermark"])
    [written] = result.files
    assert f"/dt={mark:%Y-%m-%d}/snapshot-" in written
    assert (path.parent / "out" / "accounts" / f"dt={mark:%Y-%m-%d}").is_dir()

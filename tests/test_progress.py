"""Live progress: the renderer on a fake terminal, apply's event stream, colour, and a real
pseudo-terminal end to end (escape codes on a TTY, none on a pipe or with --no-progress)."""

from __future__ import annotations

import io
import logging
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from dapctl.api.ratelimit import RateLimiter
from dapctl.apply import ApplyOptions
from dapctl.cli import main
from dapctl.cli.progress import HIDE_CURSOR, SHOW_CURSOR, Progress
from dapctl.cli.style import ANSI, Style
from dapctl.events import StepContext, StepEvent
from dapctl.loading import load_config
from dapctl.wiring import run_apply
from tests.apply_helpers import FAST, config_text, environ
from tests.clock import FakeClock


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def progress(clock: FakeClock, **kw) -> tuple[Progress, FakeTTY]:
    stream = FakeTTY()
    return Progress(stream, clock=clock, ticker=False, width=lambda: 120, **kw), stream


def test_rows_and_bar_show_each_phase():
    clock = FakeClock(100.0)
    shown, _ = progress(clock)
    for table in ("accounts", "users", "courses", "terms"):
        shown.handle(StepEvent(f"a/core/canvas.{table}", "queued"))
    shown.handle(StepEvent("a/core/canvas.accounts", "waiting", seconds=12.0))
    shown.handle(StepEvent("a/core/canvas.users", "running", status="running", job_id="j1"))
    shown.handle(StepEvent("a/core/canvas.courses", "downloading", bytes=0, part_count=4))
    clock.now += 2
    shown.handle(
        StepEvent("a/core/canvas.courses", "downloading", bytes=2_000_000, parts=1, part_count=4)
    )
    shown.handle(StepEvent("a/core/canvas.terms", "finished", status="ok"))

    lines = [ANSI.sub("", line) for line in shown.render()]

    assert lines == [
        "  a/core/canvas.accounts  00:02  waiting for a client-side rate-limit slot, 10 s left",
        "  a/core/canvas.users     00:02  job running",
        "  a/core/canvas.courses   00:02  downloading 1 of 4 parts  2.0 MB  1.0 MB/s",
        "[=====>--------------] 1/4 done, 3 active, 0 queued, 2.0 MB, 1.0 MB/s, 00:02",
    ]


def screen(shown: Progress) -> list[str]:
    return [ANSI.sub("", line) for line in shown.render()]


def test_a_steps_timer_runs_from_its_start_through_every_phase():
    # Issue 14 #18: the timer restarted at every phase, so no row said how long a step took.
    clock = FakeClock(100.0)
    shown, _ = progress(clock)
    step = "a/core/canvas.users"
    shown.handle(StepEvent(step, "queued"))
    clock.now += 30  # queued time is not the step's
    shown.handle(StepEvent(step, "starting"))
    clock.now += 5
    shown.handle(StepEvent(step, "running", status="waiting"))
    clock.now += 20
    shown.handle(StepEvent(step, "running", status="running"))
    clock.now += 40

    assert screen(shown)[0] == f"  {step}  01:05  job running"


def test_a_rate_limit_wait_counts_down_then_the_row_shows_its_phase_again():
    # Issue 14 #18: a person waited 60 s for a slot not knowing why or for how long.
    clock = FakeClock(100.0)
    shown, _ = progress(clock)
    step = "a/core/canvas.users"
    shown.handle(StepEvent(step, "starting"))
    shown.handle(StepEvent(step, "waiting", seconds=60.0))

    slot = "waiting for a client-side rate-limit slot"
    assert screen(shown)[0] == f"  {step}  00:00  {slot}, 1:00 left"
    clock.now += 59.5
    assert screen(shown)[0] == f"  {step}  00:59  {slot}, 1 s left"
    clock.now += 1
    assert screen(shown)[0] == f"  {step}  01:00  starting the query job"
    shown.handle(StepEvent(step, "waiting", seconds=125.0))
    assert screen(shown)[0].endswith("slot, 2:05 left")


def test_a_backoff_after_a_429_is_shown_as_a_retry_not_as_starting_the_job():
    clock = FakeClock(100.0)
    shown, _ = progress(clock)
    step = "a/core/canvas.users"
    shown.handle(StepEvent(step, "starting"))
    clock.now += 1
    reason = "HTTP 429: the server asked to slow down"
    shown.handle(StepEvent(step, "retrying", seconds=30.0, detail=reason))
    clock.now += 10

    assert screen(shown)[0] == f"  {step}  00:11  {reason}; retrying in 20 s"
    shown.handle(StepEvent(step, "running", status="running"))  # the retry got its answer
    assert screen(shown)[0] == f"  {step}  00:11  job running"


def test_a_download_shows_its_parts_and_a_part_retried_meanwhile():
    clock = FakeClock(100.0)
    shown, _ = progress(clock)
    step = "a/core/canvas.users"
    shown.handle(StepEvent(step, "downloading", part_count=12))
    clock.now += 4
    shown.handle(StepEvent(step, "downloading", bytes=8_000_000, parts=3, part_count=12))
    cut = "the answer was cut off (ChunkedEncodingError)"
    shown.handle(StepEvent(step, "retrying", seconds=2.0, detail=cut))
    shown.handle(StepEvent(step, "downloading", bytes=8_100_000, parts=3, part_count=12))

    assert screen(shown)[0] == (
        f"  {step}  00:04  downloading 3 of 12 parts  8.1 MB  2.0 MB/s; a part retries in 2 s: "
        "the answer was cut of"  # cut at the terminal's width
    )
    shown.handle(StepEvent(step, "downloading", bytes=30_000_000, parts=12, part_count=12))
    assert screen(shown)[0] == f"  {step}  00:04  all 12 parts in (30.0 MB), writing"


def test_the_overall_rate_leaves_out_time_spent_waiting():
    clock = FakeClock(100.0)
    shown, _ = progress(clock)
    shown.handle(StepEvent("a/t/ns.x", "starting"))
    shown.handle(StepEvent("a/t/ns.x", "waiting", seconds=60.0))
    clock.now += 60  # a minute waiting for a slot, then the job
    shown.handle(StepEvent("a/t/ns.x", "downloading", part_count=1))
    clock.now += 2
    shown.handle(StepEvent("a/t/ns.x", "downloading", bytes=4_000_000, parts=1, part_count=1))
    shown.handle(StepEvent("a/t/ns.x", "finished", status="ok"))
    clock.now += 30  # finished: no more download time

    assert screen(shown)[-1].endswith("4.0 MB, 2.0 MB/s, 01:32")


def test_complete_jobs_wait_for_a_download_slot_and_listed_steps_leave():
    clock = FakeClock(100.0)
    shown, _ = progress(clock)
    shown.handle(StepEvent("a/all/canvas.*", "queued"))
    shown.handle(StepEvent("a/all/canvas.x", "queued"))
    shown.handle(StepEvent("a/all/canvas.*", "listed"))
    shown.handle(StepEvent("a/all/canvas.x", "running", status="complete"))

    lines = shown.render()

    assert "job complete, waiting for a download slot" in lines[0]
    assert "0/1 done" in lines[-1] and "canvas.*" not in "".join(lines)


def test_many_rows_are_capped():
    shown, _ = progress(FakeClock(100.0), max_rows=2)
    for i in range(5):
        shown.handle(StepEvent(f"a/t/ns.t{i}", "starting"))

    lines = shown.render()

    assert len(lines) == 4 and lines[2] == "  ... and 3 more"


def test_redraws_in_place_are_throttled_and_cleared_at_the_end():
    clock = FakeClock(100.0)
    shown, stream = progress(clock, interval=0.1)
    shown.handle(StepEvent("a/t/ns.x", "queued"))  # first event: drawn at once
    first = stream.getvalue()
    shown.handle(StepEvent("a/t/ns.x", "starting"))  # within the interval: not drawn
    assert stream.getvalue() == first
    clock.now += 0.2
    shown.handle(StepEvent("a/t/ns.x", "running", status="waiting"))
    shown.close()

    out = stream.getvalue()
    assert out.startswith(HIDE_CURSOR)
    assert "\x1b[1A\r\x1b[J" in out  # moved up over the bar and erased it
    assert out.endswith("\x1b[J" + SHOW_CURSOR)
    assert out.count(HIDE_CURSOR) == 1


def test_write_above_erases_writes_and_redraws():
    clock = FakeClock(100.0)
    shown, stream = progress(clock)
    shown.handle(StepEvent("a/t/ns.x", "starting"))
    other = io.StringIO()

    shown.write_above(other, "ok  a/t/ns.x\n")

    assert other.getvalue() == "ok  a/t/ns.x\n"
    assert stream.getvalue().count("a/t/ns.x") == 2  # drawn, erased, drawn again


def test_nothing_drawn_means_nothing_written():
    shown, stream = progress(FakeClock(100.0))
    shown.close()
    assert stream.getvalue() == ""


def test_colour_follows_the_style():
    shown, _ = progress(FakeClock(100.0), style=Style(True))
    shown.handle(StepEvent("a/t/ns.x", "waiting", seconds=5.0))
    assert "\x1b[33m" in shown.render()[0]


# ---- apply's event stream -----------------------------------------------------------------


def test_apply_emits_each_phase_in_order(make_emulator, write_config):
    emu = make_emulator()
    path = write_config(config_text(emu))
    events: list[StepEvent] = []

    run_apply(
        load_config(path),
        environ=environ(emu),
        options=ApplyOptions(),
        connection=FAST,
        on_event=events.append,
    )

    phases = [e.phase for e in events if e.address == "univ_a/core/canvas.accounts"]
    assert phases[:3] == ["queued", "starting", "running"]
    assert phases[-1] == "finished"
    downloads = [e.bytes for e in events if e.phase == "downloading" and e.address.endswith("s")]
    assert max(downloads) > 0
    finished = [e for e in events if e.phase == "finished"]
    assert {e.status for e in finished} == {"ok"} and all(e.job_id for e in finished)


def test_rate_limit_waits_become_events_for_the_waiting_step(caplog):
    caplog.set_level(logging.INFO, logger="dapctl.ratelimit")
    slept: list[float] = []
    events: list[StepEvent] = []
    context = StepContext(events.append)
    limiter = RateLimiter(
        1, clock=lambda: 0.0, sleep=slept.append, window=60.0, name="jobs", on_wait=context.waited
    )
    limiter.acquire()  # no step: nothing to report
    with context.serving("a/t/ns.x"):
        limiter.acquire()  # the second in a minute waits

    assert slept and events == [StepEvent("a/t/ns.x", "waiting", seconds=slept[0])]
    [record] = [r for r in caplog.records if "waiting 60 s for a jobs slot" in r.getMessage()]
    assert record.address == "a/t/ns.x" and record.event == "rate_limit_wait"


# ---- colour -------------------------------------------------------------------------------


def test_plan_is_coloured_on_a_terminal_unless_no_color(write_config):
    path = write_config(
        '[profiles.demo]\nemulator = true\n\n[[targets]]\nname = "core"\ntables = ["accounts"]\n'
    )

    def plan_output(*flags: str, env: dict[str, str] | None = None, tty: bool = True) -> str:
        out = FakeTTY() if tty else io.StringIO()
        assert (
            main(["plan", str(path), *flags], stdout=out, stderr=io.StringIO(), environ=env or {})
            == 0
        )
        return out.getvalue()

    assert "\x1b[32;1m+\x1b[0m" in plan_output()
    assert "\x1b[" not in plan_output(env={"NO_COLOR": "1"})
    assert "\x1b[" not in plan_output("--no-color")
    assert "\x1b[" not in plan_output(tty=False)
    assert "\x1b[" not in plan_output(env={"TERM": "dumb"})
    assert "\x1b[32;1m+" in plan_output(env={"FORCE_COLOR": "1"}, tty=False)


# ---- a real pseudo-terminal ---------------------------------------------------------------


def run_with_stderr(argv: list[str], env: dict[str, str], *, tty: bool) -> tuple[int, str, str]:
    """Run ``python -m dapctl`` with stderr on a pseudo-terminal (or a pipe)."""
    full_env = {**os.environ, **env, "TERM": "xterm"}
    full_env.pop("NO_COLOR", None)
    if not tty:
        done = subprocess.run(
            [sys.executable, "-m", "dapctl", *argv],
            capture_output=True,
            text=True,
            env=full_env,
            timeout=60,
        )
        return done.returncode, done.stdout, done.stderr
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dapctl", *argv],
        stdout=subprocess.PIPE,
        stderr=slave,
        env=full_env,
    )
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the slave side closed
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    stdout = proc.stdout.read().decode() if proc.stdout else ""
    return proc.wait(timeout=30), stdout, seen.decode(errors="replace")


def _pty_config(make_emulator, write_config) -> tuple[Path, dict[str, str]]:
    emu = make_emulator(job_delay=0.3)
    return write_config(config_text(emu, tables='["accounts", "users", "courses"]')), environ(emu)


def test_progress_is_drawn_on_a_terminal(make_emulator, write_config):
    path, env = _pty_config(make_emulator, write_config)

    code, stdout, stderr = run_with_stderr(["apply", str(path)], env, tty=True)

    assert code == 0, stderr
    assert HIDE_CURSOR in stderr and SHOW_CURSOR in stderr
    assert "\x1b[J" in stderr and "done" in stderr
    assert "univ_a/core/canvas.users" in stderr  # a step's row
    assert "\x1b[" not in stdout  # stdout is a pipe: results plain
    assert "Apply complete: 3 ok" in stdout


def test_no_progress_on_a_pipe_or_with_no_progress(make_emulator, write_config):
    path, env = _pty_config(make_emulator, write_config)

    code, stdout, stderr = run_with_stderr(["apply", str(path)], env, tty=False)
    assert code == 0 and "\x1b[" not in stderr + stdout

    code, _, stderr = run_with_stderr(["apply", str(path), "--no-progress"], env, tty=True)
    assert code == 0 and "\x1b[" not in stderr

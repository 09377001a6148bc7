"""Run history: what every apply did, kept beside the state.

- `model`: a `Run` (id, config, host, pid, started, ended, outcome) and its steps (a
  `StepResult`'s fields: kind, job, window, records, bytes, where it landed, duration,
  retries, error).
- `log`: `RunLog`, the runs of one state over its `Documents` (one document per run, the
  last ``keep_runs`` kept), and `Recorder`, which writes one run as its steps finish, so a
  kill leaves what finished readable and the next run marks it interrupted.
"""

from __future__ import annotations

from dapctl.runs.log import Recorder, RunLog, last_results, run_log
from dapctl.runs.model import Outcome, Run, StepRun

__all__ = ["Outcome", "Recorder", "Run", "RunLog", "StepRun", "last_results", "run_log"]

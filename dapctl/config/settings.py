"""``[settings]`` and ``[retry]``: how dapctl runs, and how patiently it tries again.

Every key is optional and has its default here. ``Settings`` also refuses a state URL that
holds a password and a state given twice (``state`` and ``state_env``); the loader resolves
``state_env`` later, these models keep the file's own words.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from dapctl.config.durations import Duration, Freshness
from dapctl.config.fields import EnvName, FileMode, FrozenModel, PathError, PathText, StateNamespace
from dapctl.redaction import holds_password


class Settings(FrozenModel):
    """``[settings]``: how dapctl runs. Every key is optional."""

    state: PathText = Field(
        "dapctl.state.json",
        description="State file (a relative path resolves against the config file's folder), "
        "or postgresql://host/db; no password in it.",
    )
    concurrency: int = Field(4, ge=1, le=64, description="Tables collected at once.")
    refresh_margin: float = Field(
        300.0, ge=0, le=3000, description="Renew a token when fewer seconds remain than this."
    )
    on_snapshot_required: Literal["snapshot", "fail"] = Field(
        "snapshot",
        description="When an incremental window is gone: take a fresh snapshot, or fail.",
    )
    state_env: EnvName | None = Field(
        None, description="Variable holding the state's whole URL (instead of state)."
    )
    state_namespace: StateNamespace | None = Field(
        None,
        description="This config's name among the states a shared backend (a database, a "
        "bucket) holds; default: the config file's name without its extension.",
    )
    lease_seconds: float = Field(
        60.0,
        ge=1,
        le=3600,
        description="Workers sharing a PostgreSQL state: how long a claimed step stays one "
        "worker's without a heartbeat (sent every third of it); a worker frozen longer "
        "loses its steps to others.",
    )
    file_mode: FileMode = Field(
        "0600",
        description='Permissions of the output files dapctl writes, in octal: "0640" lets the '
        'group read them (folders it creates for them get the matching "0750"). Private by '
        "default; state, lock and log files stay private whatever this says.",
    )
    catch_up_after: Annotated[float, Field(ge=0)] | Literal["never"] = Field(
        3600.0,
        description="Seconds: after collecting a job an earlier apply started (with --no-wait, "
        "or by a run that was stopped), start an incremental that brings the table current "
        "in the same run only when that job's data is older than this at this apply's start "
        "(by the server's clock). Each one spends one of DAP's 5 job creations a minute, and "
        'DAP refreshes its data every few hours. 0: whenever the job ended before; "never": '
        "leave it to the next run.",
    )

    freshness: Freshness | None = Field(
        None,
        description='Default freshness of every target: { warn_after = "6h", error_after = '
        '"1d" }; `dapctl status` compares each table\'s age (now minus its watermark) with it.',
    )
    metrics_file: PathText | None = Field(
        None,
        description="Write Prometheus metrics here (text format, atomically) after every apply "
        "and status, for node_exporter's textfile collector; relative to the config's folder.",
    )
    plan_max_age: Duration = Field(
        86400.0,
        description='How old a saved plan (`dapctl plan -out FILE`) may be when applied: "24h".',
    )
    keep_runs: int = Field(
        100,
        ge=1,
        le=100_000,
        description="Runs kept in the run history beside the state (`dapctl runs`); older "
        "ones are removed as new ones begin.",
    )

    @property
    def file_mode_bits(self) -> int:
        return int(self.file_mode, 8)

    @field_validator("catch_up_after", mode="before")
    @classmethod
    def _catch_up_after(cls, value: object) -> object:
        # Checked before the union, whose per-branch errors would say nothing useful.
        if value == "never":
            return value
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return value
        shown = f" (got {value!r})" if isinstance(value, str | int | float) else ""
        raise ValueError(f'expected seconds, 0 or more, or "never"{shown}')

    @model_validator(mode="after")
    def _one_state(self) -> Settings:
        if self.state_env is not None and "state" in self.model_fields_set:
            raise PathError(("state_env",), "set only one of state and state_env")
        if holds_password(self.state):
            raise PathError(
                ("state",),
                "the URL holds a password, which must not sit in a config file; take it "
                "out and use PGPASSWORD, ~/.pgpass or state_env",
            )
        return self


class RetrySettings(FrozenModel):
    """``[retry]``: how often and how patiently a failed call is tried again."""

    attempts: int = Field(5, ge=1, le=100, description="Tries per call, the first included.")
    initial_backoff: float = Field(1.0, gt=0, le=3600, description="First wait, in seconds.")
    max_backoff: float = Field(60.0, gt=0, le=3600, description="Longest wait, in seconds.")

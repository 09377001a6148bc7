"""The state's data: what dapctl has exported so far, per step address.

State is versioned JSON: ``version`` (the format), ``serial`` (bumped on every write),
``lineage`` (a UUID fixed when the state is created, so two unrelated states are never
confused) and ``steps``, keyed by address ``profile/target/namespace.table``. Each step keeps
its watermark (the ``at`` of a snapshot or the ``until`` of an incremental, the next
incremental's ``since``), the last completed job and where its output went, and a ``pending``
job started but not yet collected, so an interrupted apply resumes it instead of starting
another. A step changes only through ``StepState``'s lifecycle methods.

Output locations are strings the destination understands: a path relative to the config's
folder for a local file, a full URL for a remote object. Version 1 states stored absolute
local paths; ``parse_state`` migrates them on read (relative where they lie under the
config's folder) and refuses a version newer than this dapctl knows.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from dapctl.errors import StateError

STATE_VERSION = 2
Kind = Literal["snapshot", "incremental"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PendingJob(_Model):
    """A job started and recorded before polling, so a killed apply can collect it later."""

    job_id: str
    kind: Kind
    since: AwareDatetime | None = None
    started_at: AwareDatetime
    fallback: bool = Field(False, description="A snapshot taken because the window was gone.")
    output: str | None = Field(
        None, description="Where its output is being written: a file there is not recorded yet."
    )
    format: str | None = Field(
        None, description="The query format it was asked for (None: recorded before 0.1)."
    )
    mode: str | None = None


class Completed(_Model):
    """What a collected job left behind, as the step records it."""

    watermark: datetime
    kind: Kind
    schema_version: int | None
    job_id: str
    files: tuple[str, ...]
    bytes: int
    records: int
    sha256: str | None
    completed_at: datetime


class StepState(_Model):
    """Everything dapctl remembers about one step address, and how that changes."""

    watermark: AwareDatetime | None = None
    kind: Kind | None = Field(None, description="The last completed job's kind.")
    schema_version: int | None = None
    job_id: str | None = None
    files: tuple[str, ...] = ()
    bytes: int = 0
    records: int = 0
    sha256: str | None = None
    completed_at: AwareDatetime | None = None
    pending: PendingJob | None = None
    reload: str | None = Field(
        None,
        description="Why the next run must take a snapshot although the table is there "
        "(a table `dapctl import` adopted at a schema version behind the server's).",
    )
    absent: str | None = Field(
        None,
        exclude=True,
        description="Why a table target's database holds no record of this step (never "
        "stored): the plan takes it as a first run and says why.",
    )

    def started(self, pending: PendingJob) -> StepState:
        """A job was created for this step: remember it before anything waits on it."""
        return self.model_copy(update={"pending": pending})

    def writing(self, output: str) -> StepState:
        """The pending job's output is being written to ``output`` (not yet recorded)."""
        if self.pending is None:
            return self
        return self.model_copy(
            update={"pending": self.pending.model_copy(update={"output": output})}
        )

    def forgotten(self) -> StepState:
        """The pending job will never be collected: plan the table afresh next time."""
        return self.model_copy(update={"pending": None})

    def completed(self, done: Completed) -> StepState:
        """The pending job is collected and its output in place: move the watermark."""
        return StepState(**done.model_dump(), pending=None)

    @property
    def unrecorded_output(self) -> str | None:
        """An output the pending job may have published but the state never recorded."""
        output = self.pending.output if self.pending else None
        return output if output is not None and output not in self.files else None


class State(_Model):
    version: int = STATE_VERSION
    serial: int = 0
    lineage: str = Field(default_factory=lambda: str(uuid.uuid4()))
    steps: dict[str, StepState] = Field(default_factory=dict)

    def step(self, address: str) -> StepState:
        return self.steps.get(address, StepState())

    def with_step(self, address: str, step: StepState | None) -> State:
        """A new state with one step replaced (or forgotten, with None) and serial bumped."""
        steps = dict(self.steps)
        if step is None:
            steps.pop(address, None)
        else:
            steps[address] = step
        return self.model_copy(update={"steps": steps, "serial": self.serial + 1})

    def to_bytes(self) -> bytes:
        return self.model_dump_json(indent=2).encode() + b"\n"


def parse_state(data: bytes, *, source: str, base_dir: Path | None = None) -> State:
    """Parse state bytes; ``StateError`` names the source and what is wrong with it.

    ``base_dir`` is the config's folder, against which version 1's absolute paths are made
    relative.
    """
    try:
        raw = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        # json recurses per level: thousands of nested brackets are no state dapctl wrote.
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise StateError(
            f"{source}: not valid JSON ({reason})",
            hint=f"restore {source}.backup, the previous state dapctl keeps beside it",
        ) from None
    if not isinstance(raw, dict):
        raise StateError(
            f"{source}: not a dapctl state (a JSON object with a version is expected, "
            f"found a JSON {type(raw).__name__})",
            hint=f"restore {source}.backup, the previous state dapctl keeps beside it",
        )
    version = raw.get("version")
    if version == 1:
        raw = _migrate_v1(raw, base_dir)
    elif isinstance(version, int) and version > STATE_VERSION:
        raise StateError(
            f"{source}: written by a newer dapctl (state format version {version}; this "
            f"dapctl reads up to {STATE_VERSION})",
            hint="upgrade dapctl; an older one must not rewrite a newer state",
        )
    elif version != STATE_VERSION:
        raise StateError(
            f"{source}: state format version {version!r} is not one this dapctl reads "
            f"(it reads versions 1 to {STATE_VERSION})",
            hint="use the dapctl version that wrote it",
        )
    try:
        return State.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise StateError(f"{source}: invalid state at {where}: {first['msg']}") from None


def _migrate_v1(raw: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    """Version 1 kept absolute local paths: store them relative to the config's folder."""

    def relative(location: Any) -> Any:
        if base_dir is None or not isinstance(location, str) or not os.path.isabs(location):
            return location
        path = Path(location)
        return path.relative_to(base_dir).as_posix() if path.is_relative_to(base_dir) else location

    steps = raw.get("steps")
    if isinstance(steps, dict):
        for step in steps.values():
            if not isinstance(step, dict):
                continue
            if isinstance(step.get("files"), list):
                step["files"] = [relative(f) for f in step["files"]]
            pending = step.get("pending")
            if isinstance(pending, dict) and "output" in pending:
                pending["output"] = relative(pending["output"])
    return {**raw, "version": STATE_VERSION}

"""Saved plans (Terraform's ``plan -out`` / ``apply PLANFILE``): a reviewed plan, carried
out exactly or not at all.

`SavedPlan` is the file: a format tag, when it was made, the config file's path and SHA-256,
the state's lineage and serial as read, the selection (profiles, ``--target``,
``--replace``) and the steps (`Step.to_json`). It holds no secret: steps name addresses,
jobs and times only. `saved_plan_at` tells a plan file from a config by its content (a JSON
object tagged ``dapctl-plan``). `check` refuses, with what to do, a plan whose config file
changed, whose state changed (another lineage, or any write since: the serial), or that is
older than ``max_age``; `same_steps` is the last guard, run on the plan apply makes from the
same config and state before any job starts: it must be step for step the saved one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from dapctl.errors import DapctlError
from dapctl.plan import Plan, Step

FORMAT = "dapctl-plan"
_COMPARED = ("address", "action", "since", "job_id", "resume_kind")


class SavedPlan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: str = FORMAT
    version: int = 1
    created: AwareDatetime
    config: str
    config_sha256: str
    lineage: str | None
    serial: int
    profiles: list[str]
    targets: list[str]
    replace: list[str]
    steps: list[dict[str, Any]]

    @classmethod
    def of(
        cls,
        plan: Plan,
        *,
        config: Path,
        lineage: str | None,
        serial: int,
        profiles: Sequence[str] = (),
        targets: Sequence[str] = (),
        replace: Sequence[str] = (),
    ) -> SavedPlan:
        return cls(
            created=datetime.now(UTC),
            config=str(config.resolve()),
            config_sha256=file_sha256(config),
            lineage=lineage,
            serial=serial,
            profiles=list(profiles),
            targets=list(targets),
            replace=list(replace),
            steps=[s.to_json() for s in plan.steps],
        )

    def to_bytes(self) -> bytes:
        return self.model_dump_json(indent=2).encode() + b"\n"

    def plan(self) -> Plan:
        """The saved steps as a `Plan`, for ``show``."""
        return Plan(tuple(_step(s) for s in self.steps))

    def check(self, *, lineage: str | None, serial: int, max_age: float, where: str) -> None:
        """Refuse a plan that no longer describes what apply would do (see the module doc)."""
        redo = f"run `dapctl plan {self.config} -out {where}` again, and review it"
        if file_sha256(Path(self.config)) != self.config_sha256:
            raise DapctlError(
                f"{where}: the config file changed since the plan was made", hint=redo
            )
        if lineage != self.lineage or serial != self.serial:
            raise DapctlError(
                f"{where}: the state changed since the plan was made (serial {self.serial} "
                f"then, {serial} now{'' if lineage == self.lineage else ', another lineage'})",
                hint=redo,
            )
        age = datetime.now(UTC) - self.created
        if age > timedelta(seconds=max_age):
            raise DapctlError(
                f"{where}: the plan is {age.total_seconds() / 3600:.1f} h old, older than "
                f"[settings] plan_max_age ({max_age / 3600:g} h)",
                hint=redo,
            )

    def same_steps(self, plan: Plan, *, where: str) -> None:
        wanted = [{k: s[k] for k in _COMPARED} for s in self.steps]
        found = [{k: s.to_json()[k] for k in _COMPARED} for s in plan.steps]
        if wanted != found:
            raise DapctlError(
                f"{where}: apply would now run other steps than the saved plan; nothing was run",
                hint=f"run `dapctl plan {self.config} -out {where}` again, and review it",
            )


def file_sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise DapctlError(f"{path}: cannot read: {exc.strerror}") from None


def saved_plan_at(path: Path) -> SavedPlan | None:
    """The saved plan in ``path``, or None when it holds something else (a config)."""
    try:
        data = path.read_bytes()
        raw = json.loads(data)
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        return None
    try:
        return SavedPlan.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DapctlError(
            f"{path}: not a plan this dapctl reads ({where}: {first['msg']})"
        ) from None


def _step(raw: dict[str, Any]) -> Step:
    since = raw.get("since")
    return Step(
        profile=raw["profile"],
        target=raw["target"],
        namespace=raw["namespace"],
        table=raw["table"] or "*",
        action=raw["action"],
        reason=raw.get("reason") or "",
        since=datetime.fromisoformat(since.replace("Z", "+00:00")) if since else None,
        job_id=raw.get("job_id"),
        resume_kind=raw.get("resume_kind"),
        error=raw.get("error"),
    )

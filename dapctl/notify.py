"""Alerts: one message per apply to each ``[[notify]]`` webhook that wants what happened.

`alert_for` decides what to tell (pure): the steps that failed, with why; the tables beyond
their freshness after the apply (``stale``); the addresses whose previous recorded run
failed and that succeeded now (``recovered``, once: the run after that sees them succeed
twice). `body` spells it as Slack's incoming-webhook ``{"text": ...}`` or as JSON facts,
each with the run id. `send` POSTs it with requests, tried `ATTEMPTS` times (tenacity) with a
short timeout each, so a failing or hanging webhook costs the apply at most about
`BOUND` seconds; a failure is logged, never raised. A webhook URL is a secret: it is
resolved from ``url_env`` / ``url_file`` only when sending, and no message, log record or
body holds it (an error is logged by its type and HTTP status, not requests' text, which
quotes the URL).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import tenacity

from dapctl.config import Config, Notify
from dapctl.errors import DapctlError
from dapctl.results import StepResult
from dapctl.runs import Run, StepRun
from dapctl.secret_sources import resolve_source
from dapctl.status import AddressStatus

log = logging.getLogger("dapctl.notify")
ATTEMPTS = 3
TIMEOUT = (3.0, 4.0)  # connect, read: seconds per attempt
BOUND = 15.0  # seconds all attempts of one webhook may take


@dataclass(frozen=True)
class Alert:
    run_id: str
    config: str
    outcome: str
    failed: list[tuple[str, str]] = field(default_factory=list)  # (address, why)
    stale: list[tuple[str, str]] = field(default_factory=list)  # (address, verdict and age)
    recovered: list[str] = field(default_factory=list)

    def wanted(self, on: Sequence[str]) -> bool:
        kinds = {"failure": self.failed, "stale": self.stale, "recovered": self.recovered}
        return any(kinds[kind] for kind in on)

    def only(self, on: Sequence[str]) -> Alert:
        return Alert(
            self.run_id,
            self.config,
            self.outcome,
            self.failed if "failure" in on else [],
            self.stale if "stale" in on else [],
            self.recovered if "recovered" in on else [],
        )


def alert_for(
    run: Run,
    results: Sequence[StepResult],
    found: Sequence[AddressStatus],
    previous: Mapping[str, tuple[Run, StepRun]],
) -> Alert:
    """What this apply has to tell; ``previous``: each address's step in earlier runs."""
    failed = [
        (r.address, f"{r.error.type}: {r.error.message}" if r.error else r.status)
        for r in results
        if r.status in ("failed", "skipped")
    ]
    stale = [
        (s.address, f"{s.verdict}: data {round((s.age or 0) / 3600, 1)} h old")
        for s in found
        if s.verdict in ("warn", "error")
    ]
    recovered = [
        r.address
        for r in results
        if r.status == "ok" and r.address in previous and not previous[r.address][1].ok
    ]
    return Alert(run.run_id, run.config, run.outcome, failed, stale, recovered)


def body(alert: Alert, form: str) -> dict[str, Any]:
    if form == "json":
        return {
            "source": "dapctl",
            "run_id": alert.run_id,
            "config": alert.config,
            "outcome": alert.outcome,
            "failed": [{"address": a, "error": why} for a, why in alert.failed],
            "stale": [{"address": a, "freshness": why} for a, why in alert.stale],
            "recovered": alert.recovered,
        }
    lines = [f"dapctl {alert.config}: run {alert.run_id} {alert.outcome}"]
    lines += [f"• failed {a}: {why}" for a, why in alert.failed]
    lines += [f"• stale {a}: {why}" for a, why in alert.stale]
    lines += [f"• recovered {a}" for a in alert.recovered]
    return {"text": "\n".join(lines)}


def notify_all(config: Config, alert: Alert, *, environ: Mapping[str, str], base_dir: Path) -> int:
    """Send ``alert`` to every webhook that wants it; how many took it."""
    sent = 0
    for index, hook in enumerate(config.notify):
        if not alert.wanted(hook.on):
            continue
        name = f"notify[{index}]"
        try:
            url = _url(hook, name, environ, base_dir)
        except DapctlError as exc:
            log.error("%s: %s", name, exc.message)
            continue
        sent += send(url, body(alert.only(hook.on), hook.format), name=name)
    return sent


def send(url: str, payload: Mapping[str, Any], *, name: str, bound: float = BOUND) -> bool:
    """POST ``payload``; True when the webhook took it (see the module doc)."""
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(ATTEMPTS) | tenacity.stop_after_delay(bound),
        wait=tenacity.wait_exponential(multiplier=0.5, max=2.0),
        retry=tenacity.retry_if_exception_type(_Failed),
        reraise=True,
    )
    try:
        for attempt in retrying:
            with attempt:
                _post(url, payload)
    except _Failed as exc:
        log.error("%s: the webhook did not take the alert: %s", name, exc)
        return False
    return True


class _Failed(Exception):
    """A webhook that failed, in words that hold no part of its URL."""


def _post(url: str, payload: Mapping[str, Any]) -> None:
    try:
        response = requests.post(url, json=payload, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise _Failed(type(exc).__name__) from None
    if response.status_code >= 300:
        raise _Failed(f"HTTP {response.status_code}")


def _url(hook: Notify, name: str, environ: Mapping[str, str], base_dir: Path) -> str:
    found = resolve_source(
        "url",
        value=None,
        env=hook.url_env,
        file=hook.url_file,
        where=lambda key: f"{name}.{key}",
        environ=environ,
        base_dir=base_dir,
    )
    assert found is not None  # the model requires one source
    url, warnings = found
    for warning in warnings:
        log.warning("%s", warning)
    return url.strip()

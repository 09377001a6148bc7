"""How each step's outcome is told: one result per step, and failures kept to their step.

``Outcomes`` is apply's bookkeeping of results. ``finish`` records a result, logs it and
tells the listeners; ``errors`` turns whatever a step raises into its result (a ``DapctlError``
into ``failed`` with its message, a lost lease into ``held``, anything else into a short
"a bug" notice with the traceback at debug level) so one step's failure never stops the
others. A failed login or a refused account fails one step of its profile and skips the
profile's others (``skip_if_profile_failed``): every one of them would fail the same way.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator

from dapctl.errors import ApiError, AuthError, DapctlError
from dapctl.events import StepContext, StepEvent
from dapctl.plan import Step
from dapctl.results import Status, StepError, StepKind, StepResult, log_result
from dapctl.state.leases import FencedError

log = logging.getLogger("dapctl.apply")

# Errors after which a profile's other steps cannot succeed either.
ACCOUNT_ERRORS = frozenset(
    {"AccountNotOnboarded", "AccountDisabled", "AccountUnderMaintenance", "AuthenticationError"}
)


class Outcomes:
    """Every step's result, in the order they finished."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        context: StepContext,
        emit: Callable[[StepEvent], None],
        on_result: Callable[[StepResult], None],
        job_id_of: Callable[[str], str | None],
    ) -> None:
        self.clock = clock
        self.context = context
        self._emit = emit
        self._on_result = on_result
        self._job_id_of = job_id_of
        self.results: list[StepResult] = []
        self._failed_profiles: dict[str, StepError] = {}
        self._lock = threading.Lock()

    def finish(self, result: StepResult) -> None:
        with self._lock:
            self.results.append(result)
        log_result(result)
        self._emit(
            StepEvent(result.address, "finished", status=result.status, job_id=result.job_id)
        )
        self._on_result(result)

    def result(
        self, step: Step, kind: StepKind, status: Status, started: float, **kw: object
    ) -> StepResult:
        return StepResult.for_step(
            step,
            kind,
            status,
            duration=self.clock() - started,
            transient_errors=self.context.transient_errors(step.address),
            **kw,
        )

    def report(
        self, step: Step, kind: StepKind, status: Status, started: float, **kw: object
    ) -> None:
        self.finish(self.result(step, kind, status, started, **kw))

    @contextlib.contextmanager
    def errors(self, step: Step, started: float, kind: StepKind) -> Iterator[None]:
        """Turn a step's failure into a failed result; never let it stop the other steps."""
        try:
            yield
        except FencedError as exc:  # another worker took the step over: its result is theirs
            self.report(step, kind, "held", started, error=_lease_lost(exc))
        except DapctlError as exc:
            error = StepError.from_exception(exc)
            if _is_profile_fatal(exc):
                with self._lock:
                    first = self._failed_profiles.setdefault(step.profile, error) is error
                if not first:  # the threads that waited on the same failed login
                    self._skip(step, kind, started, self._failed_profiles[step.profile])
                    return
            job_id = self._job_id_of(step.address)
            self.report(step, kind, "failed", started, error=error, job_id=job_id)
        except Exception as exc:
            log.debug("unexpected error in %s", step.address, exc_info=True)
            error = StepError("InternalError", f"unexpected {type(exc).__name__} (a bug)", None)
            self.report(step, kind, "failed", started, error=error)

    def skip_if_profile_failed(self, step: Step) -> bool:
        with self._lock:
            error = self._failed_profiles.get(step.profile)
        if error is None:
            return False
        self._skip(step, step.action, self.clock(), error)
        return True

    def _skip(self, step: Step, kind: StepKind, started: float, cause: StepError) -> None:
        """The step's result when its profile failed (one step says why it failed)."""
        reason = StepError("Skipped", f"profile {step.profile} failed: {cause.message}", cause.uuid)
        self.report(step, kind, "skipped", started, error=reason)


def _lease_lost(exc: FencedError) -> StepError:
    return StepError("LeaseLost", exc.message, None, exc.hint)


def _is_profile_fatal(exc: DapctlError) -> bool:
    return isinstance(exc, AuthError) or (
        isinstance(exc, ApiError) and exc.error_type in ACCOUNT_ERRORS
    )

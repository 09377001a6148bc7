"""``run_apply``: the wiring of one apply, from a loaded config to the ``Applier``'s results.

It opens the state store (``[settings] state``), the config's databases and the
``StepRecords`` that keep table targets' records in them, then locks the state (or, with a
store that leases steps, joins the workers sharing it), reads the state as the records say,
sweeps what killed runs left, plans, resolves the credentials the plan needs, connects (an
embedded emulator for ``emulator = true`` profiles), and hands all of it to the core's
``Applier``, which never asks which kind of store, database or destination it holds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime

from dapctl.api.session import Connection, connect, interruptible
from dapctl.apply import Applier, ApplyOptions
from dapctl.config import Config, Target
from dapctl.credentials import resolve_used
from dapctl.databases.loads import RunRow
from dapctl.events import EventSink, StepContext, ignore
from dapctl.loading import LoadedConfig
from dapctl.outputs.destination import Destination, open_destination
from dapctl.outputs.records import DatabaseRecords
from dapctl.outputs.tables import Databases
from dapctl.plan import Plan, plan
from dapctl.results import StepResult, all_ok
from dapctl.runs import Recorder, Run, run_log
from dapctl.state import SharesBudgets, State, StateStore, open_store
from dapctl.wiring.embedded import embedded
from dapctl.workers import sharing_for

log = logging.getLogger("dapctl.apply")  # the apply's messages, whichever module says them


def run_apply(
    loaded: LoadedConfig,
    *,
    environ: Mapping[str, str],
    profiles: Sequence[str] = (),
    options: ApplyOptions | None = None,
    lock_timeout: float = 0.0,
    connection: Connection | None = None,
    store: StateStore | None = None,
    destinations: Callable[[Target], Destination] | None = None,
    on_plan: Callable[[Plan], None] = lambda plan: None,
    on_result: Callable[[StepResult], None] = lambda result: None,
    on_event: EventSink = ignore,
    on_run: Callable[[Run], None] = lambda run: None,
) -> list[StepResult]:
    """Lock the state (or, with a store that leases steps, join the workers sharing it),
    plan from it, and carry the plan out; return every step's result. The run is recorded
    in the state's run history as it goes (``on_run`` hears of it when it begins and when it
    ends)."""
    options = options or ApplyOptions()
    store = store or open_store(loaded)
    stop = threading.Event()
    conn = connection or Connection()
    round_name = environ.get("DAPCTL_ROUND", "").strip() or None  # an orchestrator's run
    run = Run.begin(loaded.path.name, round=round_name)
    recorder = Recorder(run_log(store), run, keep=loaded.config.settings.keep_runs)
    context = StepContext(recorder.observing(on_event))
    conn = dataclasses.replace(
        conn,
        sleep=interruptible(conn.sleep, stop),
        on_wait=context.waited,
        demo=conn.demo or embedded,
    )
    databases = Databases(loaded.config, base_dir=loaded.base_dir, environ=environ)
    records = DatabaseRecords(loaded.config, databases)
    sharing = sharing_for(
        store, loaded.config.settings, reread=records.reread, stop=stop, round=round_name
    )
    with sharing.session(store, timeout=lock_timeout), databases, _recorded(recorder, on_run):
        recorded = _recording(recorder, loaded.config, on_result)
        overlay = records.overlay(store.read() or State())
        state = overlay.state
        for orphan in records.sweep(skip=overlay.unreachable):
            log.info("dropped staging table %s, left by a dapctl that was killed", orphan)
        steps = plan(
            loaded.config,
            state,
            profiles=profiles,
            targets=options.targets,
            replace=options.replace,
            unreachable=overlay.unreachable,
        )
        on_plan(steps)
        used = sorted({step.profile for step in steps.steps})
        credentials = resolve_used(loaded, used, environ=environ)
        with (
            _shared_budgets(store, conn) as conn,
            connect(loaded.config, credentials, connection=conn) as clients,
        ):
            if destinations is None:
                destinations = functools.partial(
                    open_destination,
                    base_dir=loaded.base_dir,
                    databases=databases,
                    schema_of=lambda p, ns, t: clients[p].get_schema(ns, t).schema_,
                    file_mode=loaded.config.settings.file_mode_bits,
                    run=RunRow(run.run_id, run.config, run.host, run.pid, run.started),
                )
            applier = Applier(
                loaded.config,
                clients=clients,
                keeper=sharing.keeper(store, overlay.recorded, mirror=records.mirror),
                destinations=sharing.fenced(destinations),
                options=options,
                now=lambda: datetime.fromtimestamp(conn.clock(), tz=UTC),
                clock=conn.monotonic,
                on_result=recorded,
                on_event=on_event,
                context=context,
                stop=stop,
                sharing=sharing,
            )
            results = applier.run(steps.steps)
            recorder.outcome = "succeeded" if all_ok(results) else "failed"
            return results


@contextlib.contextmanager
def _recorded(recorder: Recorder, on_run: Callable[[Run], None]) -> Iterator[None]:
    """The run begun in the history; ended with the outcome set, ``interrupted`` on Ctrl-C
    or SIGTERM, ``failed`` on an error."""
    recorder.begin()
    on_run(recorder.run)
    try:
        yield
    except KeyboardInterrupt:
        recorder.outcome = "interrupted"
        raise
    except BaseException:
        recorder.outcome = "failed"
        raise
    finally:
        on_run(recorder.finish(recorder.outcome))


def _recording(
    recorder: Recorder, config: Config, on_result: Callable[[StepResult], None]
) -> Callable[[StepResult], None]:
    def recorded(result: StepResult) -> None:
        database = config.target(result.target).database if result.kind != "list" else None
        recorder.step(result, landed=f"database {database}" if database else None)
        on_result(result)

    return recorded


@contextlib.contextmanager
def _shared_budgets(store: StateStore, conn: Connection) -> Iterator[Connection]:
    """The connection, keeping its rate-limit budgets in ``store`` if every process can
    reach it (PostgreSQL): workers anywhere on one credential then share one budget."""
    if not isinstance(store, SharesBudgets) or conn.ledger is not None:
        yield conn
        return
    with store.send_ledger() as ledger:
        yield dataclasses.replace(conn, ledger=ledger)

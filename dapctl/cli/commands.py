"""One handler per command: ``cmd_NAME(args, ctx) -> exit status``, and the ``HANDLERS`` table.

A handler calls the library with explicit arguments, renders what it returns (text through
``render``, or one JSON document with ``--json``) and returns an ``ExitStatus``. Errors are
raised, never printed here: ``main`` turns them into a message and a status.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from dapctl import inspect
from dapctl.api.session import Connection, fetch_token
from dapctl.apply import ApplyOptions
from dapctl.cli.context import Context, emit_json, load
from dapctl.cli.progress import Progress
from dapctl.cli.render import (
    render_plan,
    render_result,
    render_state,
    render_step,
    summary,
    summary_table,
)
from dapctl.cli.starter import write_starter
from dapctl.cli.style import Style, is_terminal
from dapctl.config import Config
from dapctl.credentials import check_locations, check_used, resolve_used
from dapctl.errors import ConfigError, ExitStatus
from dapctl.events import EventSink, ignore
from dapctl.files import atomic_write_bytes
from dapctl.loading import LoadedConfig, require_extras
from dapctl.outputs.records import DatabaseRecords, used_databases
from dapctl.outputs.tables import Databases
from dapctl.plan import Plan, orphans, plan
from dapctl.results import StepResult, all_ok
from dapctl.state import Overlay, State, StateStore, StepState, open_store, store_at
from dapctl.state.filelock import describe_holder
from dapctl.state.migrate import describe, destination, migrate
from dapctl.state.ops import forget, is_glob, move, select, state_json
from dapctl.text import plural
from dapctl.wiring import run_apply
from dapctl.wiring.embedded import embedded
from dapctl.wiring.refresh import schema_changes

log = logging.getLogger("dapctl")

Handler = Callable[[argparse.Namespace, Context], int]


def cmd_init(args: argparse.Namespace, ctx: Context) -> int:
    path = write_starter(args.path)
    ctx.out(f"Wrote {path}. Set DAP_CLIENT_ID and DAP_CLIENT_SECRET, then:")
    ctx.out(f"  dapctl validate {path}\n  dapctl plan {path}\n  dapctl apply {path}")
    return ExitStatus.SUCCESS


def cmd_validate(args: argparse.Namespace, ctx: Context) -> int:
    loaded = load(args)
    require_extras(loaded, importer=ctx.importer)
    names = list(loaded.config.profiles)
    require = args.require_credentials
    warnings = check_used(loaded, names, environ=ctx.environ, require=require)
    warnings += check_locations(loaded, environ=ctx.environ, require=require)
    config = loaded.config
    if args.json:
        emit_json(ctx, _validated(loaded, warnings))
        return ExitStatus.SUCCESS
    counts = f"{plural(len(config.profiles), 'profile')}, {plural(len(config.targets), 'target')}"
    ctx.out(f"{loaded.path}: valid ({counts})")
    return ExitStatus.SUCCESS


def _validated(loaded: LoadedConfig, warnings: Sequence[str]) -> dict[str, Any]:
    config = loaded.config
    return {
        "ok": True,
        "config": str(loaded.path),
        "state": loaded.state_location,
        "profiles": list(config.profiles),
        "targets": [
            {"name": t.name, "namespace": t.namespace, "profiles": config.target_profiles(t)}
            for t in config.targets
        ],
        "warnings": [*loaded.warnings, *warnings],
    }


def cmd_plan(args: argparse.Namespace, ctx: Context) -> int:
    loaded = load(args)
    require_extras(loaded, importer=ctx.importer)
    with _databases(loaded, ctx) as databases:
        store = _store(loaded, ctx)
        overlay = DatabaseRecords(loaded.config, databases).overlay(store.read() or State())
        result: Plan = plan(
            loaded.config,
            overlay.state,
            profiles=args.profile,
            targets=args.target,
            replace=args.replace,
            unreachable=overlay.unreachable,
        )
        _warn_unreachable(overlay)
        lost = orphans(loaded.config, overlay.recorded)
        for address in lost:
            log.warning(
                "%s: in the state, but no target declares it any more; renamed? `dapctl "
                "state mv`; removed? `dapctl state rm`",
                address,
            )
        used = sorted({step.profile for step in result.steps})
        require = args.require_credentials or args.refresh  # --refresh logs in
        check_used(loaded, used, environ=ctx.environ, require=require)
        changes = (
            schema_changes(loaded, result, environ=ctx.environ, databases=databases)
            if args.refresh
            else None
        )
    if args.json:
        blocked = any(step.error for step in result.steps)
        document = {"ok": not blocked, **result.to_json(), "orphans": lost}
        if changes is not None:
            for step in document["steps"]:
                step["schema_changes"] = changes.get(step["address"])
        emit_json(ctx, document)
    else:
        ctx.out(render_plan(result, ctx.style, schema_changes=changes))
    if any(step.error for step in result.steps):
        return ExitStatus.ERROR  # each such step says which database it could not read
    if args.detailed_exitcode and result.has_changes:
        return ExitStatus.CHANGES_PENDING
    return ExitStatus.SUCCESS


def cmd_apply(args: argparse.Namespace, ctx: Context) -> int:
    loaded = load(args)
    require_extras(loaded, importer=ctx.importer)
    options = ApplyOptions(
        concurrency=args.concurrency or loaded.config.settings.concurrency,
        no_wait=args.no_wait,
        job_timeout=args.job_timeout,
        targets=args.target,
        replace=args.replace,
    )

    width = 0

    def show_plan(steps: Plan) -> None:
        nonlocal width
        width = max((len(s.address) for s in steps.steps if s.action != "list"), default=0)
        if not args.json:
            ctx.out(f"{render_plan(steps, ctx.style)}\n")

    def show(result: StepResult) -> None:
        if not args.json:
            ctx.out(render_result(result, ctx.style, width=width))

    with _progress(args, ctx) as on_event:
        results = run_apply(
            loaded,
            environ=ctx.environ,
            profiles=args.profile,
            options=options,
            lock_timeout=args.lock_timeout,
            store=_store(loaded, ctx),
            on_plan=show_plan,
            on_result=show,
            on_event=on_event,
        )
    ok = all_ok(results)
    if args.json:
        emit_json(ctx, {"ok": ok, "results": [r.to_json() for r in _in_plan_order(results)]})
    else:
        table = f"\n{summary_table(results, ctx.style)}\n" if results else ""
        ctx.out(f"{table}\n{ctx.style(summary(results), 'bold')}")
    return ExitStatus.SUCCESS if ok else ExitStatus.ERROR


@contextlib.contextmanager
def _progress(args: argparse.Namespace, ctx: Context) -> Iterator[EventSink]:
    """Live progress on stderr while the block runs, if stderr is a terminal that wants it."""
    wanted = not args.no_progress and ctx.environ.get("TERM") != "dumb"
    if not (wanted and is_terminal(ctx.stderr)):
        yield ignore
        return
    style = Style.for_stream(ctx.stderr, ctx.environ, disabled=args.no_color)
    with Progress(ctx.stderr, style=style) as progress:
        ctx.progress = progress
        try:
            yield progress.handle
        finally:
            ctx.progress = None


def _in_plan_order(results: Sequence[StepResult]) -> list[StepResult]:
    return sorted(results, key=lambda r: r.address)


def cmd_tables(args: argparse.Namespace, ctx: Context) -> int:
    loaded = load(args)
    profile = inspect.pick_profile(loaded.config, args.profile)
    namespaces = args.namespace or inspect.default_namespaces(loaded.config, profile)
    found = inspect.list_tables(
        loaded,
        profile=profile,
        namespaces=namespaces,
        environ=ctx.environ,
        connection=Connection(demo=embedded),
    )
    if args.json:
        emit_json(ctx, {"ok": True, "profile": profile, "namespaces": found})
    else:
        ctx.out(inspect.render_tables(profile, found))
    return ExitStatus.SUCCESS


def cmd_describe(args: argparse.Namespace, ctx: Context) -> int:
    loaded = load(args)
    profile = inspect.pick_profile(loaded.config, args.profile)
    namespace, table = inspect.split_table(args.table)
    described = inspect.describe_table(
        loaded,
        profile=profile,
        namespace=namespace,
        table=table,
        environ=ctx.environ,
        connection=Connection(demo=embedded),
    )
    document = {"ok": True, "profile": profile, **described.to_json()}
    if args.output is not None:
        text = json.dumps(document, indent=2) + "\n"
        try:
            atomic_write_bytes(args.output, text.encode())
        except OSError as exc:
            raise ConfigError(f"--output {args.output}: cannot write it: {exc.strerror}") from None
        log.info("wrote %s", args.output)
    if args.json:
        emit_json(ctx, document)
    elif args.output is not None:
        ctx.out(f"Wrote {namespace}.{table} schema version {described.version} to {args.output}")
    else:
        ctx.out(described.render_text())
    return ExitStatus.SUCCESS


def _read_state(loaded: LoadedConfig, ctx: Context, store: StateStore) -> Overlay | None:
    """The state as apply would see it: database targets' records from their databases (a
    database that cannot be read keeps the state's copies, and is named in ``unreachable``)."""
    state = store.read()
    if not used_databases(loaded.config):
        return Overlay(state) if state is not None else None
    with _databases(loaded, ctx) as databases:
        overlay = DatabaseRecords(loaded.config, databases).overlay(state or State())
    _warn_unreachable(overlay)
    return overlay


def _warn_unreachable(overlay: Overlay) -> None:
    for name, why in sorted(overlay.unreachable.items()):
        log.error("database %s could not be read, its targets' steps cannot run: %s", name, why)


def cmd_state_list(args: argparse.Namespace, ctx: Context) -> int:
    loaded = load(args)
    store = _store(loaded, ctx)
    overlay = _read_state(loaded, ctx, store)
    state = overlay.recorded if overlay is not None else None
    unreachable = overlay.unreachable if overlay is not None else {}
    if args.json:
        document = {"ok": True, **state_json(state, store.location)}
        emit_json(ctx, {**document, "unreachable_databases": unreachable})
    else:
        ctx.out(render_state(state, store.location))
        for name, why in sorted(unreachable.items()):
            ctx.out(
                f"\n! database {name} could not be read ({why}): its targets' rows are the "
                "state's cached copies"
            )
    return ExitStatus.SUCCESS


def cmd_state_show(args: argparse.Namespace, ctx: Context) -> int:
    loaded = load(args)
    store = _store(loaded, ctx)
    overlay = _read_state(loaded, ctx, store)
    state = overlay.recorded if overlay is not None else None
    picked = select(state, [args.address], where=store.location)
    assert state is not None  # select raised otherwise
    if args.json and not is_glob(args.address):
        step = state.steps[args.address]
        emit_json(ctx, {"ok": True, "address": args.address, **step.model_dump(mode="json")})
    elif args.json:
        steps = [{"address": a, **state.steps[a].model_dump(mode="json")} for a in picked]
        emit_json(ctx, {"ok": True, "steps": steps})
    else:
        ctx.out("\n\n".join(render_step(a, state.steps[a]) for a in picked))
    return ExitStatus.SUCCESS


def cmd_state_rm(args: argparse.Namespace, ctx: Context) -> int:
    loaded = load(args)
    store = _store(loaded, ctx)
    removed = forget(store, args.addresses, lock_timeout=args.lock_timeout)
    _mirror_records(loaded, ctx, {address: StepState() for address in removed})
    if args.json:
        emit_json(ctx, {"ok": True, "removed": removed})
    else:
        for address in removed:
            ctx.out(f"Removed {address}: the next apply takes a new snapshot of it.")
    return ExitStatus.SUCCESS


def cmd_state_mv(args: argparse.Namespace, ctx: Context) -> int:
    loaded = load(args)
    store = _store(loaded, ctx)
    pairs = move(store, args.old, args.new, lock_timeout=args.lock_timeout)
    state = store.read() or State()
    records = {old: StepState() for old, _ in pairs}
    records.update({new: state.step(new) for _, new in pairs})
    _mirror_records(loaded, ctx, records)
    undeclared = set(orphans(loaded.config, state))
    for _, new in pairs:
        if new in undeclared:
            log.warning("%s: no target declares this address; apply will not use it", new)
    if args.json:
        moved = [{"from": old, "to": new} for old, new in pairs]
        emit_json(ctx, {"ok": True, "moved": moved})
    else:
        for old, new in pairs:
            ctx.out(f"Moved {old} -> {new}: the next apply continues from its watermark.")
    return ExitStatus.SUCCESS


def _mirror_records(loaded: LoadedConfig, ctx: Context, records: dict[str, StepState]) -> None:
    """Write step records to the databases of the targets that keep them there (a database
    keeps its own record of each of its steps, committed with the data)."""
    if not used_databases(loaded.config):
        return
    with _databases(loaded, ctx) as databases:
        homes = DatabaseRecords(loaded.config, databases)
        for address, step in records.items():
            homes.mirror(address, step)


def cmd_state_migrate(args: argparse.Namespace, ctx: Context) -> int:
    loaded = load(args)
    source = open_store(loaded, environ=ctx.environ, importer=ctx.importer)
    to = destination(args.to)
    target = store_at(to, loaded=loaded, where="--to", importer=ctx.importer)
    done = migrate(source, target, force=args.force, lock_timeout=args.lock_timeout)
    if args.json:
        emit_json(ctx, {"ok": True, **done.to_json()})
        return ExitStatus.SUCCESS
    if done.unchanged:
        ctx.out(f"{done.destination} holds this state already ({describe(done.state)}).")
    else:
        if done.replaced is not None:
            ctx.out(f"Replaced the state {done.destination} held ({describe(done.replaced)}).")
        ctx.out(f"Copied {done.source} ({describe(done.state)}) to {done.destination}.")
    setting = loaded.config.settings.state_env or "[settings] state"
    ctx.out(f'Now set {setting} to "{to}" for {loaded.path}; the old state stays as it was.')
    return ExitStatus.SUCCESS


def cmd_force_unlock(args: argparse.Namespace, ctx: Context) -> int:
    store = _store(load(args), ctx)
    holder = store.force_unlock(force=args.force)
    if args.json:
        removed = holder is not None
        emit_json(ctx, {"ok": True, "state": store.location, "removed": removed, "holder": holder})
    elif holder is None:
        ctx.out(f"{store.location} is not locked: nothing to do.")
    else:
        ctx.out(f"Removed the lock on {store.location}, held by {describe_holder(holder)}.")
    return ExitStatus.SUCCESS


def cmd_token(args: argparse.Namespace, ctx: Context) -> int:
    loaded = load(args)
    profile = inspect.pick_profile(loaded.config, args.profile)
    if loaded.config.profiles[profile].emulator:
        raise ConfigError(
            f"profile {profile} uses the embedded emulator, which stops when this "
            "command does: its token would be useless",
            hint="run `dapctl emulator` and point a profile's base_url at it",
        )
    credentials = resolve_used(loaded, environ=ctx.environ, names=[profile])[profile]
    assert credentials is not None  # only emulator profiles resolve to None
    ctx.out(fetch_token(loaded.config, credentials))
    return ExitStatus.SUCCESS


def cmd_config_schema(args: argparse.Namespace, ctx: Context) -> int:
    ctx.out(config_schema_text())
    return ExitStatus.SUCCESS


def cmd_emulator(args: argparse.Namespace, ctx: Context) -> int:
    from dapctl.emulator import cli as emulator_cli

    return emulator_cli.run(args)


def config_schema_text() -> str:
    """The config's JSON Schema, exactly as ``schemas/dapctl.schema.json`` holds it."""
    return json.dumps(Config.model_json_schema(), indent=2, ensure_ascii=False)


HANDLERS: dict[str, Handler] = {
    "init": cmd_init,
    "validate": cmd_validate,
    "plan": cmd_plan,
    "apply": cmd_apply,
    "tables": cmd_tables,
    "describe": cmd_describe,
    "state list": cmd_state_list,
    "state show": cmd_state_show,
    "state rm": cmd_state_rm,
    "state mv": cmd_state_mv,
    "state migrate": cmd_state_migrate,
    "force-unlock": cmd_force_unlock,
    "token": cmd_token,
    "config-schema": cmd_config_schema,
    "emulator": cmd_emulator,
}


def _store(loaded: LoadedConfig, ctx: Context) -> StateStore:
    return open_store(loaded, environ=ctx.environ, importer=ctx.importer)


def _databases(loaded: LoadedConfig, ctx: Context) -> Databases:
    return Databases(loaded.config, base_dir=loaded.base_dir, environ=ctx.environ)

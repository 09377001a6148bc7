"""The commands that work on the state: ``state list``, ``show``, ``rm``, ``mv``,
``migrate`` and ``force-unlock``.

They read the state as apply would see it (``stores.read_state``: database targets' records
over the store's) and change it only through ``state.ops`` and ``state.migrate``, under the
state's lock; ``rm`` and ``mv`` write what they changed to the databases that keep their
own records too. Each renders text or one JSON document and returns an ``ExitStatus``.
"""

from __future__ import annotations

import argparse
import logging

from dapctl.cli.context import Context, emit_json, load
from dapctl.cli.render import render_state, render_step
from dapctl.cli.stores import mirror_records, read_state, state_store
from dapctl.errors import ExitStatus
from dapctl.plan import orphans
from dapctl.state import State, StepState, open_store, store_at
from dapctl.state.filelock import describe_holder
from dapctl.state.migrate import describe, destination, migrate
from dapctl.state.ops import forget, is_glob, move, select, state_json

log = logging.getLogger("dapctl")


def cmd_state_list(args: argparse.Namespace, ctx: Context) -> int:
    loaded = load(args)
    store = state_store(loaded, ctx)
    overlay = read_state(loaded, ctx, store)
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
    store = state_store(loaded, ctx)
    overlay = read_state(loaded, ctx, store)
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
    store = state_store(loaded, ctx)
    removed = forget(store, args.addresses, lock_timeout=args.lock_timeout)
    mirror_records(loaded, ctx, {address: StepState() for address in removed})
    if args.json:
        emit_json(ctx, {"ok": True, "removed": removed})
    else:
        for address in removed:
            ctx.out(f"Removed {address}: the next apply takes a new snapshot of it.")
    return ExitStatus.SUCCESS


def cmd_state_mv(args: argparse.Namespace, ctx: Context) -> int:
    loaded = load(args)
    store = state_store(loaded, ctx)
    pairs = move(store, args.old, args.new, lock_timeout=args.lock_timeout)
    state = store.read() or State()
    records = {old: StepState() for old, _ in pairs}
    records.update({new: state.step(new) for _, new in pairs})
    mirror_records(loaded, ctx, records)
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
    store = state_store(load(args), ctx)
    holder = store.force_unlock(force=args.force)
    if args.json:
        removed = holder is not None
        emit_json(ctx, {"ok": True, "state": store.location, "removed": removed, "holder": holder})
    elif holder is None:
        ctx.out(f"{store.location} is not locked: nothing to do.")
    else:
        ctx.out(f"Removed the lock on {store.location}, held by {describe_holder(holder)}.")
    return ExitStatus.SUCCESS

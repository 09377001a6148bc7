"""The commands that inspect rather than run: ``init``, ``tables``, ``describe``,
``token``, ``config-schema`` and ``emulator``.

``tables``, ``describe`` and ``token`` ask the DAP API as one profile (``inspect``; an
``emulator = true`` profile starts the embedded emulator, except for ``token``, whose token
would die with it); ``init`` writes the starter config, ``config-schema`` prints the JSON
Schema ``schemas/dapctl.schema.json`` holds, and ``emulator`` runs the emulator's own command.
"""

from __future__ import annotations

import argparse
import json
import logging

from dapctl import inspect
from dapctl.api.session import Connection, fetch_token
from dapctl.cli.context import Context, emit_json, load
from dapctl.cli.starter import write_starter
from dapctl.config import Config
from dapctl.credentials import resolve_used
from dapctl.errors import ConfigError, ExitStatus
from dapctl.files import atomic_write_bytes
from dapctl.wiring.embedded import embedded

log = logging.getLogger("dapctl")


def cmd_init(args: argparse.Namespace, ctx: Context) -> int:
    path = write_starter(args.path)
    ctx.out(f"Wrote {path}. Set DAP_CLIENT_ID and DAP_CLIENT_SECRET, then:")
    ctx.out(f"  dapctl validate {path}\n  dapctl plan {path}\n  dapctl apply {path}")
    return ExitStatus.SUCCESS


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
